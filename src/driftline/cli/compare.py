"""``driftline compare``: champion / challenger side by side, from the window summaries."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from rich.table import Table

from driftline.cli.output import diagnostics, escaped, results
from driftline.config import Settings
from driftline.errors import ConfigError

__all__ = ["compare", "comparison_table", "latest_comparisons"]


def latest_comparisons(summaries: list[dict[str, object]], model: str | None = None) -> list[dict[str, object]]:
    """The newest ``version_comparison`` summary per (model, champion, challenger)."""
    latest: dict[tuple[str, str, str], dict[str, object]] = {}
    for s in summaries:
        if s.get("type") != "version_comparison" or (model is not None and s.get("model") != model):
            continue
        latest[(str(s["model"]), str(s["champion"]), str(s["challenger"]))] = s
    return [latest[k] for k in sorted(latest)]


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def comparison_table(comparisons: list[dict[str, object]]) -> Table:
    table = Table(title="champion / challenger (latest window)", title_justify="left")
    for column in ("model", "champion", "challenger", "pairs", "disagreement", "mean diff (sd)", "metric",
                   "champion", "challenger", "difference (95 %)"):
        table.add_column(column, justify="left" if column in ("model", "champion", "challenger", "metric") else "right")
    for c in comparisons:
        perf = c.get("performance_difference") or {}
        metric = perf.get("metric") if isinstance(perf, dict) else None
        a = (c.get("champion_performance") or {}).get(metric) if metric else None  # type: ignore[union-attr]
        b = (c.get("challenger_performance") or {}).get(metric) if metric else None  # type: ignore[union-attr]
        diff = perf.get("challenger_minus_champion") if isinstance(perf, dict) else None
        interval = perf.get("interval_95") if isinstance(perf, dict) else None
        span = f"{_fmt(diff, '+.3f')} [{_fmt(interval[0], '+.3f')}, {_fmt(interval[1], '+.3f')}]" if interval else _fmt(diff, "+.3f")
        table.add_row(str(c["model"]), str(c["champion"]), str(c["challenger"]), str(c.get("pairs", 0)),
                      _fmt(c.get("disagreement_rate"), ".1%"), _fmt(c.get("mean_difference_sd"), "+.2f"),
                      str(metric or "-"), _fmt(a), _fmt(b), span)
    return table


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
        diagnostics().print("no champion / challenger comparisons yet (two versions must score the same event_id)")
        return 0
    # names are data: control characters escaped, no markup
    results(highlight=False, markup=False).print(comparison_table([escaped(c) for c in comparisons]))
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
