"""How fast ``driftline notify`` drains the alerts topic into a webhook.

Three rates over the same local HTTP receiver (stdlib, answers 200), with a
same-run baseline:

* ``POST only``: the bare ``urllib`` request per alert (the baseline);
* ``handle()``: decode, cooldown gate, payload and POST, no Kafka;
* ``end to end``: records on the embedded broker's alerts topic, consumed in a
  group and committed one by one, from the first post to the last.

Each alert has its own key, so none is suppressed.
Usage: python benchmarks/notify.py [--alerts 1000] [--endpoints 1]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker
from driftline.notify.messages import alert_key, request_body, request_headers
from driftline.notify.settings import load_notify_settings
from driftline.observability.notify_metrics import NotifyMetrics
from driftline.transport.notifier import Notifier
from driftline.transport.webhooks import post


class Receiver:
    """Counts POSTs; remembers when the first and the last arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.perf_counter()
                outer.count += 1
                outer.first = outer.first or now
                outer.last = now
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


def alerts(n: int, tag: str) -> list[dict[str, object]]:
    return [{"schema_version": 1, "alert_id": f"{tag}{i:08d}", "status": "firing", "model": "bench", "model_version": "v1",
             "feature": f"f{i}", "kind": "data_drift", "detector": "psi", "severity": "warning", "statistic": 0.3,
             "threshold": 0.2, "summary": f"PSI of f{i} above 0.2", "reference": "warmup",
             "window": {"topic": "in", "partition": 0, "first_offset": 0, "last_offset": 99},
             "event_time": None, "detected_at": "2026-11-26T10:00:00.000Z", "details": {}} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=1)
    args = parser.parse_args()
    n, k = args.alerts, args.endpoints
    receiver = Receiver()
    rows: list[tuple[str, float]] = []

    for alert in alerts(50, "w"):  # warm-up: imports, sockets, allocator
        post(receiver.url, request_body("webhook", alert), request_headers(alert), 5.0)
    batch = alerts(n, "p")
    started = time.perf_counter()
    for alert in batch:
        for _ in range(k):
            assert post(receiver.url, request_body("webhook", alert), request_headers(alert), 5.0).status == 200
    rows.append(("POST only", n / (time.perf_counter() - started)))

    notify = load_notify_settings(webhooks=[receiver.url] * k, cooldown_seconds=300, group=f"bench-{uuid.uuid4().hex[:6]}")
    notifier = Notifier(load_settings(metrics_port=0), notify, metrics=NotifyMetrics(process_metrics=False))
    values = [orjson.dumps(a) for a in alerts(n, "h")]
    started = time.perf_counter()
    for value in values:
        notifier.handle(value)
    rows.append(("handle()", n / (time.perf_counter() - started)))

    with EmbeddedBroker() as broker:
        topic = f"alerts-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
            f.result(10)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
        for alert in alerts(n, "e"):
            producer.produce(topic, key=alert_key(alert).encode(), value=orjson.dumps(alert))
        producer.flush(30)
        settings = load_settings(bootstrap_servers=broker.bootstrap_servers, alerts_topic=topic, metrics_port=0,
                                 auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=500)
        notifier = Notifier(settings, notify, metrics=NotifyMetrics(process_metrics=False))
        before = receiver.count
        receiver.first = 0.0
        thread = threading.Thread(target=notifier.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 300
        while receiver.count < before + n * k and time.monotonic() < deadline:
            time.sleep(0.05)
        notifier.stop()
        thread.join(30)
        posted = (receiver.count - before) // k
        rows.append(("end to end", posted / max(1e-9, receiver.last - receiver.first)))

    table = Table(title=f"driftline notify: {n} alerts, {k} endpoint(s), local receiver")
    for col in ("path", "alerts/s", "vs POST only"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / rows[0][1]:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
