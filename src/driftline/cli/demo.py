"""``driftline demo``: embedded broker, synthetic model server with a drift, one worker, and a live terminal view."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from contextlib import ExitStack

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.live import Live
from rich.table import Table

from driftline.cli.output import results
from driftline.cli.demo_view import DemoView, format_alert
from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker, free_port
from driftline.demo.traffic import DRIFTING_FEATURES, TrafficSpec
from driftline.demo.traffic import events as traffic
from driftline.errors import ConfigError
from driftline.observability.logging import configure_logging
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import Worker

__all__ = ["run_demo", "check_arguments", "checks"]

#: Events of the demo that form the warm-up reference (the worker's default ``warmup``).
DEMO_WARMUP = 2000
#: Drifted events the detectors need to find the drift for certain.
DRIFTED_EVENTS = 1000

_kafka_log = logging.getLogger("driftline.kafka")

BAD_RECORDS = (b"not json at all", b'["an", "array"]', b'{"features": {"x": 1}}', b'{"model": "credit-risk", "features": 3}')


def _port(preferred: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def check_arguments(events: int, drift_at: int, *, warmup: int = DEMO_WARMUP) -> None:
    """Raise :class:`ConfigError` (one line per problem) for arguments with which the demo cannot pass.

    >>> check_arguments(1000, 5000)
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigError: invalid --drift-at 5000 with --events 1000: the drift starts after the last event, so none is sent; set --drift-at below --events (e.g. --events 12000 --drift-at 7000)
    """
    problems = []
    if drift_at >= events:
        problems.append(f"invalid --drift-at {drift_at} with --events {events}: the drift starts after the last event, "
                        "so none is sent; set --drift-at below --events (e.g. --events 12000 --drift-at 7000)")
    else:
        if drift_at < warmup:
            problems.append(f"invalid --drift-at {drift_at}: the first {warmup} events form the warm-up reference, "
                            f"a drift within them becomes part of it; set --drift-at {warmup} or more")
        if events - drift_at < DRIFTED_EVENTS:
            problems.append(f"invalid --events {events} with --drift-at {drift_at}: {events - drift_at} drifted "
                            f"event(s), the detectors need about {DRIFTED_EVENTS}; set --events {drift_at + DRIFTED_EVENTS} "
                            "or more, or an earlier --drift-at")
    if problems:
        raise ConfigError("\n".join(problems))


def checks(*, processed: float, total: int, by_feature: Counter[str], expected: set[str],
           unexpected: list[str]) -> list[tuple[bool, str]]:
    """The demo's checks: (passed, what was checked and what was seen).

    >>> [ok for ok, _ in checks(processed=10, total=10, by_feature=Counter(income=2), expected={"income", "channel"},
    ...                         unexpected=[])]
    [True, False, True]
    """
    found = sorted(f for f in expected if f in by_feature)
    return [
        (processed >= total, f"every record processed: {processed:,.0f} of {total:,}"),
        (expected <= set(by_feature), f"the drift found in {', '.join(sorted(expected))}: "
                                      f"alerts on {', '.join(found) or 'none of them'}"),
        (not unexpected, "no alert on stationary features: " + (", ".join(sorted(unexpected)) or "none")),
    ]


def run_demo(*, events: int = 12_000, drift_at: int = 7_000, rate: float = 4_000.0, metrics_port: int = 9188,
             console: Console | None = None, live: bool | None = None) -> int:
    """Run the demo; 0 when the drift is found and nothing stationary alerts.

    ``live`` (default: whether ``console`` is a terminal) shows a
    ``rich.live.Live`` view while it runs: progress of the events sent and
    processed, events/s, the features' drift statistics and alert counts,
    with each alert printed above it as it fires.  Otherwise (output piped
    to a file or a CI log) the same information comes as plain lines: the
    alerts as they fire, a progress line every quarter of the events, and
    the features table once at the end, so logs stay readable.
    """
    check_arguments(events, drift_at)
    console = console if console is not None else results()  # full width when piped
    live = console.is_terminal if live is None else live
    configure_logging("WARNING")

    with EmbeddedBroker() as broker:
        console.print(f"embedded Kafka-protocol broker (tansu) on [bold]{broker.bootstrap_servers}[/]")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers}, logger=_kafka_log)
        for f in admin.create_topics([NewTopic("ml.inferences", num_partitions=1, replication_factor=1)]).values():
            f.result(timeout=10)
        port = _port(metrics_port)
        settings = load_settings(bootstrap_servers=broker.bootstrap_servers, metrics_port=port, metrics_host="127.0.0.1",
                                 session_timeout_ms=6000, heartbeat_interval_ms=500, topic_replication_factor=1, log_level="WARNING")
        metrics = WorkerMetrics()
        total = events + len(BAD_RECORDS)
        view = DemoView(metrics, total=total)
        worker = Worker(settings, metrics=metrics, on_alert=view.add_alert)
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        worker.started.wait(30)
        console.print(f"worker running; metrics at [bold]http://127.0.0.1:{port}/metrics[/]")
        console.print(f"model server: {events:,} events of credit-risk v2; drift in {', '.join(DRIFTING_FEATURES)} "
                      f"(and so in the prediction) from event {drift_at:,}")

        marks = [0, 0]  # quarters of the events sent and processed reported so far (plain output)

        def print_alerts() -> None:
            for alert in view.new_alerts():
                console.print(format_alert(alert), highlight=False)
            if live:
                return
            sent, processed = view.sent * 4 // total, int(view.processed) * 4 // total
            if [sent, processed] != marks:
                marks[:] = [sent, processed]
                _, done_rate = view.rates()
                console.print(f"sent {view.sent:,} of {total:,} events; processed {view.processed:,.0f} "
                              f"({done_rate:,.0f} events/s)", highlight=False)

        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 10}, logger=_kafka_log)
        spec = TrafficSpec(total=events, drift_at=drift_at)
        with ExitStack() as stack:
            if live:
                stack.enter_context(Live(console=console, get_renderable=view.render, refresh_per_second=4))
            view.start()
            started = view.started
            for i, (key, value) in enumerate(traffic(spec)):
                producer.produce("ml.inferences", key=key, value=value)
                view.sent = i + 1
                if i % 500 == 0:
                    producer.poll(0)
                    print_alerts()
                    if rate > 0:
                        ahead = i / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
            for bad in BAD_RECORDS:
                producer.produce("ml.inferences", key=b"credit-risk", value=bad)
            producer.flush(30)
            view.sent = total

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and _processed(metrics) < total:
                print_alerts()
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            worker.stop()
            thread.join(30)
            print_alerts()
        if not live:
            console.print(view.features())
        # Close the clients before the broker goes away: the worker's sit in reference cycles (delivery
        # callbacks), and tansu waits 5 s for open connections on SIGTERM.
        del producer, admin, worker
        gc.collect()

    fired = view.alerts
    processed = _processed(metrics)
    firing = [a for a in fired if a["status"] == "firing"]
    by_feature = Counter(str(a["feature"]) for a in firing)
    expected = {"income", "channel"}
    unexpected = [f for f in by_feature if f not in expected and not f.startswith("prediction")]
    table = Table(title="driftline demo: summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("records processed", f"{processed:,.0f} of {total:,}")
    table.add_row("dead letters", f"{_sum(metrics, 'driftline_dead_letters_total'):,.0f} (of {len(BAD_RECORDS)} bad records sent)")
    table.add_row("firing alerts", str(len(firing)))
    for feature, n in sorted(by_feature.items()):
        table.add_row(f"  {feature}", str(n))
    table.add_row("alerts on stationary features", str(len(unexpected)))
    table.add_row("wall time", f"{elapsed:.1f} s")
    console.print(table)
    outcomes = checks(processed=processed, total=total, by_feature=by_feature, expected=expected, unexpected=unexpected)
    ok = all(passed for passed, _ in outcomes)
    if ok:
        console.print("[green]demo passed: the drift was found and nothing else alerted[/]")
    else:
        console.print("[red]demo did not behave as expected:[/]")
        for passed, what in outcomes:
            console.print(f"  {'[green]passed[/]' if passed else '[red]FAILED[/]'}  {what}", highlight=False)
    return 0 if ok else 1


def _sum(metrics: WorkerMetrics, name: str) -> float:
    total = 0.0
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def _processed(metrics: WorkerMetrics) -> float:
    return _sum(metrics, "driftline_records_total")
