"""``driftline demo``: embedded broker, synthetic model server with a drift, one worker."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker, free_port
from driftline.demo.traffic import DRIFTING_FEATURES, TrafficSpec
from driftline.demo.traffic import events as traffic
from driftline.observability.logging import configure_logging
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import Worker

__all__ = ["run_demo"]

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


def run_demo(*, events: int = 12_000, drift_at: int = 7_000, rate: float = 4_000.0, metrics_port: int = 9188) -> int:
    console = Console()
    configure_logging("WARNING")
    fired: list[dict[str, object]] = []

    def on_alert(alert: dict[str, object]) -> None:
        fired.append(alert)
        colour = "red" if alert["status"] == "firing" else "green"
        console.print(f"[{colour}]{alert['status'].upper():8}[/] [bold]{alert['kind']}[/] "  # type: ignore[union-attr]
                      f"{alert['feature']} / {alert['detector']} at offset {alert['window']['last_offset']}: "  # type: ignore[index]
                      f"{alert['summary']}", highlight=False)

    with EmbeddedBroker() as broker:
        console.print(f"embedded Kafka-protocol broker (tansu) on [bold]{broker.bootstrap_servers}[/]")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers}, logger=_kafka_log)
        for f in admin.create_topics([NewTopic("ml.inferences", num_partitions=1, replication_factor=1)]).values():
            f.result(timeout=10)
        port = _port(metrics_port)
        settings = load_settings(bootstrap_servers=broker.bootstrap_servers, metrics_port=port, metrics_host="127.0.0.1",
                                 session_timeout_ms=6000, heartbeat_interval_ms=500, topic_replication_factor=1, log_level="WARNING")
        metrics = WorkerMetrics()
        worker = Worker(settings, metrics=metrics, on_alert=on_alert)
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        worker.started.wait(30)
        console.print(f"worker running; metrics at [bold]http://127.0.0.1:{port}/metrics[/]")
        console.print(f"model server: {events:,} events of credit-risk v2; drift in {', '.join(DRIFTING_FEATURES)} "
                      f"(and so in the prediction) from event {drift_at:,}")

        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 10}, logger=_kafka_log)
        spec = TrafficSpec(total=events, drift_at=drift_at)
        started = time.monotonic()
        for i, (key, value) in enumerate(traffic(spec)):
            producer.produce("ml.inferences", key=key, value=value)
            if i % 500 == 0:
                producer.poll(0)
                if rate > 0:
                    ahead = i / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        for bad in BAD_RECORDS:
            producer.produce("ml.inferences", key=b"credit-risk", value=bad)
        producer.flush(30)

        total = events + len(BAD_RECORDS)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _processed(metrics) < total:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        worker.stop()
        thread.join(30)
        del producer, admin  # close the clients before the broker goes away

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
    ok = processed >= total and expected <= set(by_feature) and not unexpected
    console.print("[green]demo passed: the drift was found and nothing else alerted[/]" if ok
                  else "[red]demo did not behave as expected[/]")
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
