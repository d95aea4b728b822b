"""Latency of ``PredictionLogger.log()`` with the broker up, killed, and back: the serving path must not notice.

One logger, one embedded broker (tansu), calls paced at ``--rate`` per second
like a model server's requests, ``--calls`` per phase:

1. broker up                      the baseline of the ratios
2. broker killed (SIGKILL), buffering: records queue locally (the buffer holds exactly one phase)
3. broker still down, buffer full: every record is dropped (drop-newest) and counted
4. broker back (same port): the backlog of phase 2 is delivered while calls go on

Only the ``log()`` call is timed (``perf_counter_ns``), never the pacing.  The
table gives p50 / p99 / p99.9 / max in microseconds and each phase's p99 and
max as a ratio of phase 1's.
Usage: python benchmarks/client_outage.py [--calls 10000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from driftline.client import PredictionLogger
from driftline.demo.broker import EmbeddedBroker

TOPIC = "ml.inferences"


def features(rng: random.Random) -> dict[str, object]:
    return {"income": round(rng.lognormvariate(10.5, 0.4), 2), "age": float(rng.randint(18, 79)),
            "debt_ratio": rng.betavariate(2, 5), "open_accounts": float(rng.randint(0, 9)),
            "channel": rng.choice(("web", "mobile", "branch", "partner"))}


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)]).values():
        f.result(10)


def phase(logger: PredictionLogger, calls: int, rate: float, rng: random.Random) -> tuple[list[int], int, int]:
    """Time ``calls`` paced log() calls; return the latencies (ns), how many were queued and dropped."""
    inputs = [(features(rng), {"default_probability": rng.random()}) for _ in range(calls)]
    latencies = [0] * calls
    dropped_before = logger.dropped
    queued = 0
    start = time.perf_counter()
    clock = time.perf_counter_ns
    for i, (f, p) in enumerate(inputs):
        if rate > 0:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        t = clock()
        event_id = logger.log(f, p)
        latencies[i] = clock() - t
        queued += event_id is not None
    return latencies, queued, logger.dropped - dropped_before


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000, help="log() calls per phase (default 10000)")
    ap.add_argument("--rate", type=float, default=2000.0, help="calls per second (default 2000; 0: back to back)")
    args = ap.parse_args()
    rng = random.Random(1)
    console = Console(width=150)

    broker = EmbeddedBroker().start()
    create_topic(broker.bootstrap_servers)
    logger = PredictionLogger(broker.bootstrap_servers, model="credit-risk", model_version="v2", topic=TOPIC,
                              max_buffered_records=args.calls, kafka={"log_level": 0})
    rows = []
    try:
        phase(logger, min(1000, args.calls), args.rate, rng)  # warm-up: connections, topic metadata
        assert logger.flush(30) == 0, "warm-up records not delivered"
        gc.collect()

        rows.append(("1 broker up", *phase(logger, args.calls, args.rate, rng)))
        assert logger.flush(30) == 0, "phase 1 records not delivered"
        delivered_up = logger.delivered

        broker.kill()
        rows.append(("2 broker killed, buffering", *phase(logger, args.calls, args.rate, rng)))
        rows.append(("3 broker down, buffer full", *phase(logger, args.calls, args.rate, rng)))
        backlog = logger.buffered

        broker.start()  # same port; memory storage, so the topic is created again
        create_topic(broker.bootstrap_servers)
        recovery_start = time.monotonic()
        rows.append(("4 broker back, backlog draining", *phase(logger, args.calls, args.rate, rng)))
        remaining = logger.flush(60)
        recovery = time.monotonic() - recovery_start
    finally:
        logger.close(5)
        broker.stop()

    base = sorted(rows[0][1])
    base_p99, base_max = percentile(base, 0.99), base[-1] / 1000.0
    pace = f"at {args.rate:,.0f}/s" if args.rate > 0 else "back to back"
    table = Table(title=f"PredictionLogger.log() latency, {args.calls:,} calls per phase {pace} (µs)")
    for col in ("phase", "queued", "dropped", "p50", "p99", "p99.9", "max", "p99 / up", "max / up"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for name, lat, queued, dropped in rows:
        s = sorted(lat)
        p99, mx = percentile(s, 0.99), s[-1] / 1000.0
        table.add_row(name, f"{queued:,}", f"{dropped:,}", f"{percentile(s, 0.5):.1f}", f"{p99:.1f}",
                      f"{percentile(s, 0.999):.1f}", f"{mx:.1f}", f"{p99 / base_p99:.2f}", f"{mx / base_max:.2f}")
    console.print(table)
    stats = logger.stats()
    console.print(f"counters: {stats}")
    console.print(f"phase 1 delivered: {delivered_up:,}; backlog when the broker came back: {backlog:,}; "
                  f"after it: {stats.delivered - delivered_up:,} more delivered, {remaining} undelivered, "
                  f"{recovery:.1f} s from restart to the last delivery report")


if __name__ == "__main__":
    main()
