"""``driftline alerts tail``: follow the alerts topic, filtered, pretty or as JSON lines."""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from rich.text import Text

from driftline.cli.output import diagnostics, results
from driftline.config import Settings
from driftline.errors import ConfigError

__all__ = ["tail", "matches", "format_alert"]

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


def tail(settings: Settings, args: argparse.Namespace) -> int:
    """Print alerts as they arrive (or from the beginning), until interrupted, ``--max`` or ``--duration``."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

    from driftline.transport import kafka

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
        reader.assign([TopicPartition(settings.alerts_topic, p, start)
                       for p in sorted(metadata.topics[settings.alerts_topic].partitions)])
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
