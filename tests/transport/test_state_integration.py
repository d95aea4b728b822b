"""State follows the partition: checkpoints, SIGKILL, rolling restarts, broker restart (real broker).

Workers run as ``driftline run`` processes so they can be killed with SIGKILL.

What the test broker (tansu 0.6) does differently from Kafka, and how these
tests deal with it (see ../shared/BROKER.md):

* ``read_committed`` still delivers records of aborted transactions, and the
  open transaction of a SIGKILLed worker is never aborted (Kafka aborts it
  after ``transaction_timeout_ms``).  The tests therefore read the output
  topics ``read_uncommitted`` and drop exact repeats by their deterministic
  identity (``alert_id``; the window of a summary), which is what an
  at-least-once consumer does; on Kafka a ``read_committed`` reader would
  see each once.  What must hold either way: no *conflicting* windows, no
  gap, no record counted twice.
* Compaction never runs, so the state topic keeps every checkpoint; the
  worker picks the newest usable one, as it would after compaction.
* The offsets of a transaction that wrote no record (a batch without any
  output) are applied only with the next transaction that writes one
  (measured: 300 offsets committed in three transactions, the last one
  empty, read back as 200).  A new owner then re-reads those records live;
  they produced no output the first time and produce none again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.demo.broker import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 6
PER_PARTITION = 6_006  # 6 bad records: 6,000 events fill twelve 500-event windows exactly
DRIFT_AT = 2_500
BAD_EVERY = 1_000  # offsets i % BAD_EVERY == 500 carry a record that is not JSON
T0 = 1_700_000_000_000


class Topics:
    def __init__(self, bootstrap: str, partitions: int = PARTITIONS) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.input, self.alerts, self.metrics, self.dead = f"in-{tag}", f"alerts-{tag}", f"metrics-{tag}", f"dead-{tag}"
        self.references, self.state, self.group = f"refs-{tag}", f"state-{tag}", f"g-{tag}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(self.input, num_partitions=partitions, replication_factor=1)]).values():
            f.result(10)

    def env(self, name: str, port: int, **extra: object) -> dict[str, str]:
        settings = dict(bootstrap_servers=self.bootstrap, input_topics=self.input, group_id=self.group,
                        alerts_topic=self.alerts, metrics_topic=self.metrics, deadletter_topic=self.dead,
                        references_topic=self.references, state_topic=self.state, labels_topic="",
                        session_timeout_ms=2000, heartbeat_interval_ms=500, metrics_port=port, metrics_host="127.0.0.1",
                        topic_replication_factor=1, topic_partitions=1, warmup=500, window_events=500,
                        batch_size=500, checkpoint_interval_records=1500, checkpoint_interval_seconds=1,
                        transactional_id=f"{self.group}-{name}", broker_timeout_seconds=10, log_level="INFO")
        settings.update(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env.update({f"DRIFTLINE_{k.upper()}": str(v) for k, v in settings.items()})
        return env


class WorkerProcess:
    def __init__(self, topics: Topics, name: str, **extra: object) -> None:
        self.name = name
        self.port = free_port()
        self.log = open(f"/tmp/driftline-{topics.group}-{name}-{self.port}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "driftline.cli.main", "run"], env=topics.env(name, self.port, **extra),
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def metric(self, name: str, **labels: str) -> float:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2).read().decode()
        except OSError:
            return -1.0
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    total += float(line.rsplit(" ", 1)[1])
                    found = True
        return total if found else 0.0

    def logs(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        assert self.proc.returncode in (0, -signal.SIGKILL), f"{self.name} exited with {self.proc.returncode}: {self.logs()}"


def _event(p: int, i: int, rng: np.random.Generator) -> bytes:
    if i % BAD_EVERY == 500:
        return b"not json"
    shift = 1.5 if i >= DRIFT_AT else 0.0
    return orjson.dumps({"model": f"m{p}", "model_version": "v1", "timestamp": T0 + i * 50,
                         "features": {"x": float(rng.normal(shift, 1)), "y": float(rng.normal(0, 1)),
                                      "colour": str(rng.choice(["a", "b", "c"]))}})


def produce(bootstrap: str, topic: str, start: int, stop: int, *, rate: float = 0.0, seed: int = 0) -> None:
    """Offsets start..stop-1 of every partition (model m<p> on partition p), interleaved."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    rngs = [np.random.default_rng((seed, p, start)) for p in range(PARTITIONS)]
    for i in range(start, stop):
        for p in range(PARTITIONS):
            producer.produce(topic, key=f"m{p}".encode(), value=_event(p, i, rngs[p]), partition=p)
        if i % 100 == 0:
            producer.poll(0)
            if rate:
                time.sleep(100 * PARTITIONS / rate)
    assert producer.flush(60) == 0


def read_all(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` now (read_uncommitted: see the module docstring)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "enable.auto.commit": False,
                  "isolation.level": "read_uncommitted", "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        c.close()
        return []
    c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
    pending, out = set(md.partitions), []
    deadline = time.monotonic() + 20
    while pending and time.monotonic() < deadline:
        for m in c.consume(1000, 0.3):
            if m.error() is not None:
                pending.discard(m.partition())
            else:
                out.append(m)
    c.close()
    return out


def feature_windows(bootstrap: str, topics: Topics, feature: str = "x") -> dict[int, dict[tuple[int, int], int]]:
    """partition -> {(first_offset, last_offset): records} of the feature's window summaries (exact repeats merged)."""
    windows: dict[int, dict[tuple[int, int], set[int]]] = defaultdict(lambda: defaultdict(set))
    for m in read_all(bootstrap, topics.metrics):
        s = orjson.loads(m.value())
        if s.get("feature") == feature and "records" in s:
            w = s["window"]
            windows[w["partition"]][(w["first_offset"], w["last_offset"])].add(s["records"])
    out = {}
    for p, by_span in windows.items():
        for span, counts in by_span.items():
            assert len(counts) == 1, f"partition {p} window {span} published with different counts {counts}"
        out[p] = {span: counts.pop() for span, counts in by_span.items()}
    return out


def dead_offsets(bootstrap: str, topics: Topics) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for m in read_all(bootstrap, topics.dead):
        h = dict(m.headers())
        out[int(h["driftline.source.partition"])].add(int(h["driftline.source.offset"]))
    return out


def complete(bootstrap: str, topics: Topics) -> bool:
    windows = feature_windows(bootstrap, topics)
    return len(windows) == PARTITIONS and all(max(last for _, last in spans) >= PER_PARTITION - 1 for spans in windows.values())


def assert_every_record_once(bootstrap: str, topics: Topics,
                             lost: dict[int, dict[tuple[int, int], int]] | None = None) -> None:
    """Every record of every partition in exactly one window (or a dead letter).  ``lost``: windows the
    worker published in transactions that committed, which the broker no longer has (see the broker-kill test)."""
    windows, dead = feature_windows(bootstrap, topics), dead_offsets(bootstrap, topics)
    for p, spans in (lost or {}).items():
        for span, records in spans.items():
            windows.setdefault(p, {}).setdefault(span, records)
    for p in range(PARTITIONS):
        spans = sorted(windows[p])
        covered: set[int] = set()
        for first, last in spans:
            span = set(range(first, last + 1))
            assert not covered & span, f"partition {p}: window {first}..{last} overlaps an earlier one: {spans}"
            covered |= span
        expected_dead = {i for i in range(PER_PARTITION) if i % BAD_EVERY == 500}
        assert dead[p] == expected_dead
        assert covered | dead[p] == set(range(PER_PARTITION)), f"partition {p}: offsets in no window: {sorted(set(range(PER_PARTITION)) - covered - dead[p])[:10]}"
        assert sum(windows[p].values()) + len(dead[p]) == PER_PARTITION, (p, sum(windows[p].values()), len(dead[p]))


def firing_per_key(bootstrap: str, topics: Topics) -> dict[str, int]:
    ids: dict[str, set[str]] = defaultdict(set)
    for m in read_all(bootstrap, topics.alerts):
        a = orjson.loads(m.value())
        if a["status"] == "firing":
            ids[f"{a['model']}/{a['feature']}/{a['detector']}"].add(a["alert_id"])
    return {k: len(v) for k, v in ids.items()}


# ---------------------------------------------------------------------------
def test_sigkill_one_of_two_workers_mid_stream_loses_and_doubles_nothing(broker):
    topics = Topics(broker.bootstrap_servers)
    a, b = WorkerProcess(topics, "a"), WorkerProcess(topics, "b")
    try:
        wait_for(lambda: a.metric("driftline_assigned_partitions") == 3 and b.metric("driftline_assigned_partitions") == 3,
                 90, "the 6 partitions split 3 / 3")
        feeder = threading.Thread(target=produce, args=(broker.bootstrap_servers, topics.input, 0, PER_PARTITION),
                                  kwargs={"rate": 3_000.0})
        feeder.start()
        # mid-stream: after a's first checkpoints and past the drift, long before the end
        wait_for(lambda: a.metric("driftline_checkpoints_total") >= 3 and a.metric("driftline_records_total") >= 3 * (DRIFT_AT + 300),
                 120, "worker a checkpointing past the drift")
        processed_by_a = a.metric("driftline_records_total")
        a.kill()
        assert processed_by_a < 3 * PER_PARTITION
        wait_for(lambda: b.metric("driftline_assigned_partitions") == 6, 60, "worker b taking over a's partitions")
        feeder.join(120)
        wait_for(lambda: complete(broker.bootstrap_servers, topics), 180, "every window of every partition")
        assert b.metric("driftline_state_restores_total", outcome="restored") >= 3, b.logs()
        assert_every_record_once(broker.bootstrap_servers, topics)
        fired = firing_per_key(broker.bootstrap_servers, topics)
        x_keys = {k: n for k, n in fired.items() if k.split("/")[1] == "x"}
        assert {k.split("/")[0] for k in x_keys} == {f"m{p}" for p in range(PARTITIONS)}, fired
        assert all(n == 1 for n in x_keys.values()), x_keys
    finally:
        for w in (a, b):
            if w.proc.poll() is None:
                w.stop()


def test_rolling_restart_keeps_the_warm_state_and_still_catches_the_drift(broker):
    topics = Topics(broker.bootstrap_servers)
    workers = {"a": WorkerProcess(topics, "a", warmup=2000), "b": WorkerProcess(topics, "b", warmup=2000)}
    try:
        wait_for(lambda: all(w.metric("driftline_assigned_partitions") == 3 for w in workers.values()), 90, "3 / 3 split")
        feeder = threading.Thread(target=produce, args=(broker.bootstrap_servers, topics.input, 0, PER_PARTITION),
                                  kwargs={"rate": 2_000.0, "seed": 1})
        feeder.start()
        restored = 0.0
        for name in ("a", "b"):
            # restart each worker once, after the warm-up, around the start of the drift (offset 2,500)
            old = workers[name]
            wait_for(lambda: old.metric("driftline_records_total") >= 3 * 2_100, 120, f"{name} past its warm-up")
            old.stop()
            workers[name] = WorkerProcess(topics, name, warmup=2000)
            wait_for(lambda: workers[name].metric("driftline_assigned_partitions") >= 1, 90, f"{name} back in the group")
        feeder.join(120)
        wait_for(lambda: complete(broker.bootstrap_servers, topics), 180, "every window of every partition")
        restored = sum(w.metric("driftline_state_restores_total", outcome="restored") for w in workers.values())
        assert restored >= 1
        assert_every_record_once(broker.bootstrap_servers, topics)
        # no warm-up restart: once warm, every later window of x is warm
        by_partition: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        for m in read_all(broker.bootstrap_servers, topics.metrics):
            s = orjson.loads(m.value())
            if s.get("feature") == "x" and "warmed_up" in s:
                by_partition[s["window"]["partition"]].append((s["window"]["first_offset"], s["warmed_up"]))
        for p, flags in by_partition.items():
            flags.sort()
            first_warm = next(i for i, (_, warm) in enumerate(flags) if warm)
            assert all(warm for _, warm in flags[first_warm:]), (p, flags)
            assert flags[first_warm][0] <= 2_500, (p, flags)
        fired = firing_per_key(broker.bootstrap_servers, topics)
        assert {k.split("/")[0] for k in fired if k.split("/")[1] == "x"} == {f"m{p}" for p in range(PARTITIONS)}, fired
    finally:
        for w in workers.values():
            w.stop()


def test_a_new_owner_rereads_from_the_checkpoint_and_publishes_nothing_twice(broker):
    """Committed offset past the checkpoint: the records in between rebuild the state, muted."""
    topics = Topics(broker.bootstrap_servers, partitions=1)
    settings = dict(batch_size=100, checkpoint_interval_records=1_000, checkpoint_interval_seconds=0)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5})
    rng = np.random.default_rng(3)

    def send(start: int, stop: int) -> None:
        for i in range(start, stop):
            producer.produce(topics.input, key=b"m0", value=_event(0, i, rng), partition=0)
        assert producer.flush(30) == 0

    send(0, 1_700)
    a = WorkerProcess(topics, "a", **settings)
    b = None
    try:
        wait_for(lambda: a.metric("driftline_records_total") >= 1_700, 90, "worker a through offset 1,700")
        a.kill()  # last checkpoint at about offset 1,000, offsets committed to 1,700
        b = WorkerProcess(topics, "b", **settings)
        wait_for(lambda: b.metric("driftline_assigned_partitions") == 1, 60, "worker b assigned")
        send(1_700, 3_003)  # 3 bad records: 3,000 events, six full windows
        wait_for(lambda: max((last for _, last in feature_windows(broker.bootstrap_servers, topics).get(0, {})), default=0) >= 3_002,
                 90, "the last window")
        replayed = b.metric("driftline_replayed_records_total")
        assert 0 < replayed <= 1_000, replayed
        spans = [orjson.loads(m.value())["window"] for m in read_all(broker.bootstrap_servers, topics.metrics)
                 if orjson.loads(m.value()).get("feature") == "x"]
        keys = [(w["first_offset"], w["last_offset"]) for w in spans]
        assert len(keys) == len(set(keys)) == 6, keys  # every window once: the re-read published nothing
        assert sorted(keys)[0][0] == 0 and sorted(keys)[-1][1] == 3_002
    finally:
        for w in (a, b):
            if w is not None and w.proc.poll() is None:
                w.stop()


def test_cooperative_rebalance_moves_only_the_partitions_that_change_owner(broker):
    """A second worker joins with cooperative-sticky assignment: the first keeps three partitions
    without a revoke, hands over three with their checkpoints, and every record is counted once."""
    topics = Topics(broker.bootstrap_servers)
    cooperative = {"kafka__partition_assignment_strategy": "cooperative-sticky"}
    a = WorkerProcess(topics, "a", **cooperative)
    b = None
    try:
        wait_for(lambda: a.metric("driftline_assigned_partitions") == 6, 90, "a owning all 6 partitions")
        feeder = threading.Thread(target=produce, args=(broker.bootstrap_servers, topics.input, 0, PER_PARTITION),
                                  kwargs={"rate": 3_000.0, "seed": 2})
        feeder.start()
        wait_for(lambda: a.metric("driftline_records_total") >= 6 * 1_000, 120, "a past its first windows")
        b = WorkerProcess(topics, "b", **cooperative)
        wait_for(lambda: a.metric("driftline_assigned_partitions") == 3 and b.metric("driftline_assigned_partitions") == 3,
                 90, "the 6 partitions split 3 / 3")
        feeder.join(120)
        wait_for(lambda: complete(broker.bootstrap_servers, topics), 180, "every window of every partition")
        # eager would revoke all 6 and take 3 straight back ("kept"); cooperative revokes only the 3 that move
        # (each checkpointed unless an interval checkpoint already covered it)
        assert a.metric("driftline_state_restores_total", outcome="kept") == 0, a.logs()
        assert a.metric("driftline_checkpoints_total", trigger="revoke") <= 3, a.logs()
        assert b.metric("driftline_state_restores_total", outcome="restored") == 3, b.logs()
        assert_every_record_once(broker.bootstrap_servers, topics)
    finally:
        for w in (a, b):
            if w is not None and w.proc.poll() is None:
                w.stop()
