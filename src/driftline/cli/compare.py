"""``driftline compare``: champion / challenger side by side, from the window summaries."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import orjson
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from driftline.cli.output import diagnostics, escaped, results
from driftline.config import Settings
from driftline.errors import ConfigError
from driftline.redact import escape

__all__ = ["compare", "comparison_table", "comparison_blocks", "print_comparisons", "latest_comparisons"]


def latest_comparisons(summaries: list[dict[str, object]], model: str | None = None) -> list[dict[str, object]]:
    """The newest ``version_comparison`` summary per (model, champion, challenger)."""
    latest: dict[tuple[str, str, str], dict[str, object]] = {}
    for s in summaries:
        if not isinstance(s, dict) or s.get("type") != "version_comparison" or \
                (model is not None and s.get("model") != model):
            continue  # (a file may hold any JSON)
        latest[(str(s.get("model")), str(s.get("champion")), str(s.get("challenger")))] = s
    return [latest[k] for k in sorted(latest)]


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


class _Row(NamedTuple):
    """One comparison, as text."""

    model: str
    champion: str
    challenger: str
    pairs: str
    disagreement: str
    mean_diff: str
    metric: str
    champion_value: str
    challenger_value: str
    difference: str


def _row(c: dict[str, object]) -> _Row:
    perf = c.get("performance_difference")
    perf = perf if isinstance(perf, dict) else {}
    metric = perf.get("metric")
    metric = metric if isinstance(metric, str) and metric else None

    def value(side: str) -> object:
        scores = c.get(side)
        return scores.get(metric) if metric and isinstance(scores, dict) else None

    diff = perf.get("challenger_minus_champion")
    interval = perf.get("interval_95")
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        span = f"{_fmt(diff, '+.3f')} [{_fmt(interval[0], '+.3f')}, {_fmt(interval[1], '+.3f')}]"
    else:
        span = _fmt(diff, "+.3f")
    pairs = c.get("pairs", 0)
    return _Row(escape(str(c.get("model"))), escape(str(c.get("champion"))), escape(str(c.get("challenger"))),
                f"{pairs:,}" if type(pairs) is int else escape(str(pairs)), _fmt(c.get("disagreement_rate"), ".1%"),
                _fmt(c.get("mean_difference_sd"), "+.2f"), escape(metric or "-"), _fmt(value("champion_performance")),
                _fmt(value("challenger_performance")), span)


_TITLE = "champion / challenger (latest window)"


def comparison_table(comparisons: list[dict[str, object]]) -> Table:
    """All the figures of each comparison in one row (for a wide terminal, or a pipe)."""
    table = Table(title=_TITLE, title_justify="left")
    for column in ("model", "champion", "challenger", "pairs", "disagreement", "mean diff (sd)", "metric",
                   "champion", "challenger", "difference (95 %)"):
        table.add_column(column, justify="left" if column in ("model", "champion", "challenger", "metric") else "right")
    for c in comparisons:
        table.add_row(*(Text(cell) for cell in _row(c)))
    return table


def comparison_blocks(comparisons: list[dict[str, object]]) -> Group:
    """The same figures as :func:`comparison_table`, a short block per comparison (for a narrow terminal):

    fraud: champion v1, challenger v2
      500 pairs, disagreement 25.0%, mean difference +0.40 sd
      accuracy: champion 0.810, challenger 0.840
      difference +0.030 [-0.020, +0.080] (95 %)
    """
    parts: list[Text] = [Text(_TITLE, style="italic")]
    for c in comparisons:
        r = _row(c)
        parts.append(Text.assemble((r.model, "bold"), f": champion {r.champion}, challenger {r.challenger}"))
        parts.append(Text(f"  {r.pairs} pairs, disagreement {r.disagreement}, mean difference {r.mean_diff} sd"))
        if r.metric != "-":
            parts.append(Text(f"  {r.metric}: champion {r.champion_value}, challenger {r.challenger_value}"))
            parts.append(Text(f"  difference {r.difference} (95 %)"))
        else:
            parts.append(Text("  performance: no comparison in this window"))
    return Group(*parts)


def print_comparisons(console: Console, comparisons: list[dict[str, object]]) -> None:
    """The table when it fits the console's width, else the blocks: never a cut figure."""
    table = comparison_table(comparisons)
    if console.measure(table, options=console.options.update_width(10**6)).maximum <= console.width:
        console.print(table)
    else:
        console.print(comparison_blocks(comparisons))


def compare(settings: Settings, args: argparse.Namespace) -> int:
    """Print the newest comparison of every champion / challenger pair."""
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"summaries file {args.file!r} does not exist")
        summaries = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                record = orjson.loads(line) if line.strip() else None
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"--file: line {number} of {args.file!r} is not JSON ({exc})") from None
            if isinstance(record, dict):
                summaries.append(record)
    else:
        summaries = _read_topic(settings, args.timeout)
    comparisons = latest_comparisons(summaries, args.model)
    if args.json:
        for c in comparisons:
            sys.stdout.write(orjson.dumps(c).decode() + "\n")
        sys.stdout.flush()
        return 0
    if not comparisons:
        others = sorted({str(s.get("model")) for s in summaries if s.get("type") == "version_comparison"})
        if args.model is not None and others:  # a mistyped --model, not "no comparison yet"
            from driftline.cli.unknown import unknown_value

            raise ConfigError(unknown_value("--model", args.model, others) + ": no comparison of it")
        diagnostics().print("no champion / challenger comparisons yet (two versions must score the same event_id)")
        return 0
    # names are data: control characters escaped, no markup; the table when it fits, else blocks
    print_comparisons(results(highlight=False, markup=False), [escaped(c) for c in comparisons])
    return 0


def _read_topic(settings: Settings, timeout: float) -> list[dict[str, object]]:
    """Comparison summaries on the metrics topic (filtered by record key, read to its end)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from driftline.transport import kafka

    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    if settings.metrics_topic not in existing:
        raise ConfigError(f"metrics topic {settings.metrics_topic!r} does not exist (setting metrics_topic)")
    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.compare", client_id="driftline-compare")
    try:
        metadata = reader.list_topics(settings.metrics_topic, timeout=settings.broker_timeout_seconds)
        partitions = sorted(metadata.topics[settings.metrics_topic].partitions)
        out = []
        for msg in kafka.ReadToEnd(reader, [TopicPartition(settings.metrics_topic, p, OFFSET_BEGINNING) for p in partitions],
                                   timeout):
            if (msg.key() or b"").endswith(b"/comparison") and msg.value() is not None:
                out.append(orjson.loads(msg.value()))
        return out
    finally:
        reader.close()
