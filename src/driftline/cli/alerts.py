"""``driftline alerts tail``: follow the alerts topic, filtered, pretty or as JSON lines."""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from rich.text import Text

from driftline.cli.output import diagnostics, results
from driftline.cli.unknown import unknown_value
from driftline.config import Settings
from driftline.detection.findings import Kind
from driftline.errors import ConfigError

__all__ = ["tail", "matches", "format_alert", "KINDS", "check_filters", "starting_line"]

#: Values of an alert's ``kind`` (what ``--kind`` may be).
KINDS = (Kind.DATA_DRIFT, Kind.PREDICTION_DRIFT, Kind.DATA_QUALITY, Kind.CONCEPT_DRIFT, Kind.OUTPUT_QUALITY,
         Kind.VERSION_DIVERGENCE)
STATUSES = ("firing", "resolved")

_COLOURS = {"firing": "bold red", "resolved": "green"}


def matches(alert: dict[str, object], *, model: str | None = None, feature: str | None = None,
            status: str | None = None, kind: str | None = None) -> bool:
    """Whether an alert passes the filters (``None`` = any).

    >>> matches({"model": "fraud", "feature": "amount", "status": "firing", "kind": "data_drift"}, model="fraud", status="resolved")
    False
    """
    return all(want is None or alert.get(field) == want
               for field, want in (("model", model), ("feature", feature), ("status", status), ("kind", kind)))


def format_alert(alert: dict[str, object]) -> Text:
    """One line for people: time, status, where, what (control characters in the record escaped).

    >>> format_alert({"status": "firing", "model": "a\\x1b[2Jb", "summary": "x\\ny"}).plain.count("\\x1b")
    0
    """
    from driftline.redact import escape

    alert = {k: escape(v) if isinstance(v, str) else v for k, v in alert.items()}
    status = str(alert.get("status", "?"))
    line = Text()
    # (every field as text: a record on the alerts topic can hold any JSON value anywhere)
    line.append(f"{str(alert.get('event_time') or alert.get('detected_at') or '-'):24} ", style="dim")
    line.append(f"{status.upper():8} ", style=_COLOURS.get(status, ""))
    line.append(f"{str(alert.get('severity', '-')):8} ", style="yellow" if alert.get("severity") == "critical" else "")
    line.append(f"{alert.get('model')}/{alert.get('model_version')} {alert.get('feature')} ", style="bold")
    line.append(f"{alert.get('kind')}/{alert.get('detector')}: ")
    line.append(str(alert.get("summary", "")))
    return line


def check_filters(*, kind: str | None, status: str | None) -> None:
    """Raise :class:`ConfigError` for a ``--kind`` or ``--status`` no alert can have (it would match nothing).

    >>> check_filters(kind="concpt_drift", status=None)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigError: invalid --kind 'concpt_drift': did you mean 'concept_drift'? (allowed: 'data_drift', 'prediction_drift', 'data_quality', 'concept_drift', 'output_quality', 'version_divergence')
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(unknown_value("--kind", kind, KINDS, allowed=True))
    if status is not None and status not in STATUSES:
        raise ConfigError(unknown_value("--status", status, STATUSES, allowed=True))


def starting_line(topic: str, partitions: int, *, from_beginning: bool, filters: dict[str, str | None],
                  timeout: float = 0.0, most: int = 0) -> str:
    """What ``alerts tail`` follows, from where, with which filters, until when (printed on stderr).

    >>> starting_line("ml.alerts", 3, from_beginning=False, filters={"kind": "concept_drift", "model": None})
    "following 'ml.alerts' (3 partitions) from its end: new alerts only; kind=concept_drift; until Ctrl-C"
    """
    from driftline.cli.unknown import shown

    where = "from the oldest alert kept" if from_beginning else "from its end: new alerts only"
    chosen = [f"{k}={v}" for k, v in filters.items() if v is not None]
    until = [f"{most} alert(s)" if most else "", f"{timeout:g} s" if timeout else ""]
    text = f"following {shown(topic)} ({partitions} partition{'s' if partitions != 1 else ''}) {where}; "
    text += ("; ".join(chosen) if chosen else "no filter") + "; until " + (" or ".join(u for u in until if u) or "Ctrl-C")
    return text


def tail(settings: Settings, args: argparse.Namespace) -> int:
    """Print alerts as they arrive (or from the beginning), until interrupted, ``--max`` or ``--duration``."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

    from driftline.redact import escape
    from driftline.transport import kafka

    check_filters(kind=args.kind, status=args.status)
    admin = kafka.make_admin(settings)
    if settings.alerts_topic not in kafka.check_broker(admin, settings):
        raise ConfigError(f"alerts topic {settings.alerts_topic!r} does not exist (setting alerts_topic)")
    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.tail", client_id="driftline-alerts-tail",
                               follow=True)
    console = results(highlight=False)
    shown = 0
    filters = {"model": args.model, "feature": args.feature, "status": args.status, "kind": args.kind}
    try:
        metadata = reader.list_topics(settings.alerts_topic, timeout=settings.broker_timeout_seconds)
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        partitions = sorted(metadata.topics[settings.alerts_topic].partitions)
        reader.assign([TopicPartition(settings.alerts_topic, p, start) for p in partitions])
        print(escape(starting_line(settings.alerts_topic, len(partitions), from_beginning=args.from_beginning,
                                   filters=filters, timeout=args.duration, most=args.max)), file=sys.stderr, flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            for msg in reader.consume(100, 0.5):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        diagnostics(highlight=False, markup=False).print(Text(f"consumer error: {msg.error().str()}",
                                                                              style="yellow"))
                    continue
                try:
                    alert = orjson.loads(msg.value() or b"")
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(alert, dict) or not matches(alert, **filters):
                    continue
                if args.json:
                    sys.stdout.write(orjson.dumps(alert).decode() + "\n")
                    sys.stdout.flush()
                else:
                    console.print(format_alert(alert))
                shown += 1
                if args.max and shown >= args.max:
                    return 0
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0
