"""End-to-end events per second on one core: driftline beside a naive loop.

Both read the same topic of 200,000 inference records (20 numeric and 2
categorical features) from the embedded broker, in the same run:

* naive: consume, ``orjson.loads``, then river's ``ADWIN`` and ``PageHinkley``
  (defaults) updated with every numeric value — no sketches, windows,
  categorical tests, summaries, alerts or commits;
* driftline: the real worker (decode, dead-letter checks, per-feature
  sketches and moments, reference-relative CUSUMs on location and spread,
  ADWIN, category CUSUMs and categorical windows, data-quality checks, window summaries produced to Kafka, offsets
  committed after delivery).

The Python process is pinned to one core and the broker to the other; rounds
alternate the two so machine noise hits both, and the median ratio is the figure.
Usage: python benchmarks/throughput.py [--records 200000]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table
from river import drift

from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import Worker

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = ["country", "device"]


def produce(bootstrap: str, topic: str, n: int) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(n, len(NUMERIC)))
    countries = rng.choice(["de", "fr", "it", "es", "nl"], size=n)
    devices = rng.choice(["ios", "android", "web"], size=n)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000, "compression.type": "lz4"})
    for i in range(n):
        feats = dict(zip(NUMERIC, values[i].tolist()))
        feats["country"] = str(countries[i])
        feats["device"] = str(devices[i])
        doc = {"model": "bench", "model_version": "v1", "event_id": str(i), "timestamp": 1_700_000_000_000 + i, "features": feats}
        while True:
            try:
                p.produce(topic, key=b"bench", value=orjson.dumps(doc))
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0


def naive(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"naive-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 3000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    detectors = {f: (drift.ADWIN(), drift.PageHinkley()) for f in NUMERIC}
    seen = 0
    start = None
    while seen < n:
        for m in c.consume(1000, 1.0):
            if m.error() is not None:
                continue
            if start is None:
                start = time.perf_counter()
                cpu_start = time.process_time()
            doc = orjson.loads(m.value())
            for name, value in doc["features"].items():
                d = detectors.get(name)
                if d is not None:
                    d[0].update(value)
                    d[1].update(value)
            seen += 1
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    c.close()
    return n / elapsed, n / cpu


DETECTOR_BLOCK = 32


def driftline_worker(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:6]
    settings = load_settings(bootstrap_servers=bootstrap, input_topics=topic, group_id=f"dl-{tag}", metrics_port=0,
                             alerts_topic=f"a-{tag}", metrics_topic=f"m-{tag}", deadletter_topic=f"d-{tag}",
                             topic_replication_factor=1, session_timeout_ms=3000, heartbeat_interval_ms=500,
                             log_level="WARNING", detector_block=DETECTOR_BLOCK)
    metrics = WorkerMetrics(process_metrics=False)
    marks: dict[str, float] = {}
    done = threading.Event()

    class TimedWorker(Worker):
        """Notes when the first batch and the last record are processed, without
        a polling thread competing for the GIL."""

        seen = 0

        def _observe(self, result, records, positions, elapsed):
            super()._observe(result, records, positions, elapsed)
            if not marks:
                marks["start"] = time.perf_counter()
                marks["cpu_start"] = time.process_time()
                marks["first"] = len(records)
            self.seen += len(records)
            if self.seen >= n:
                marks["end"] = time.perf_counter()
                marks["cpu_end"] = time.process_time()
                done.set()

    worker = TimedWorker(settings, metrics=metrics)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
    thread.start()
    done.wait(600)
    worker.stop()
    thread.join(30)
    todo = n - marks["first"]
    return todo / (marks["end"] - marks["start"]), todo / (marks["cpu_end"] - marks["cpu_start"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--detector-block", type=int, default=32, help="setting detector_block of the worker")
    args = parser.parse_args()
    global DETECTOR_BLOCK
    DETECTOR_BLOCK = args.detector_block
    console = Console()
    cpus = sorted(os.sched_getaffinity(0))
    with EmbeddedBroker() as broker:
        if len(cpus) >= 2:
            os.sched_setaffinity(broker._proc.pid, {cpus[-1]})  # noqa: SLF001
            os.sched_setaffinity(0, {cpus[0]})
        topic = f"bench-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
            f.result(10)
        t = time.perf_counter()
        produce(broker.bootstrap_servers, topic, args.records)
        console.print(f"produced {args.records:,} records in {time.perf_counter() - t:.1f} s")
        rows = []
        for r in range(args.rounds):
            base = naive(broker.bootstrap_servers, topic, args.records)
            ours = driftline_worker(broker.bootstrap_servers, topic, args.records)
            rows.append((r + 1, base, ours))
    table = Table(title=f"End-to-end events/s on one core ({args.records:,} records, 20 numeric + 2 categorical features)")
    table.add_column("round")
    table.add_column("naive: wall", justify="right")
    table.add_column("driftline: wall", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("naive: per CPU-s", justify="right")
    table.add_column("driftline: per CPU-s", justify="right")
    table.add_column("ratio", justify="right")
    for r, (bw, bc), (ow, oc) in rows:
        table.add_row(str(r), f"{bw:,.0f}", f"{ow:,.0f}", f"{ow / bw:.2f}×", f"{bc:,.0f}", f"{oc:,.0f}", f"{oc / bc:.2f}×")
    mid = len(rows) // 2
    wall = sorted(o[0] / b[0] for _, b, o in rows)[mid]
    cpu = sorted(o[1] / b[1] for _, b, o in rows)[mid]
    table.add_row("median ratio", "", "", f"{wall:.2f}×", "", "", f"{cpu:.2f}×")
    console.print(table)
    console.print("naive loop = consume + orjson + river ADWIN and PageHinkley (defaults) per numeric value; "
                  "CPU-s counts every thread of the process (librdkafka included), which removes time "
                  "stolen by other tenants of the machine")


if __name__ == "__main__":
    main()
