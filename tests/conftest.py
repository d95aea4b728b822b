"""Shared fixtures: the embedded Kafka-protocol broker (tansu) and worker helpers.

tansu answers a consumer-group join after about session.timeout.ms / 2
(``../shared/BROKER.md``), so workers in tests use a short session timeout and
tests wait for the partition assignment, never a fixed sleep.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker, free_port
from driftline.observability.metrics import WorkerMetrics
from driftline.redact import forget_secrets
from driftline.transport.worker import Worker


@pytest.fixture(autouse=True)
def _forget_registered_secrets():
    """Secrets a test's settings registered for log scrubbing (a process-wide safety net) end with the test:
    a one-letter test secret must not scrub that letter from the next test's log lines."""
    yield
    forget_secrets()


@pytest.fixture(scope="session")
def broker():
    b = EmbeddedBroker().start()
    try:
        yield b
    finally:
        b.kill()  # what stop() ends in too, after a 5 s SIGTERM grace tansu waits out while a client is connected
        b.stop()


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Env:
    """Unique topics and group per test, plus produce / consume / worker helpers."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        tag = uuid.uuid4().hex[:8]
        self.input = f"in-{tag}"
        self.alerts = f"alerts-{tag}"
        self.metrics_topic = f"metrics-{tag}"
        self.deadletter = f"dead-{tag}"
        self.references = f"refs-{tag}"
        self.labels = f"labels-{tag}"
        self.state = f"state-{tag}"
        self.group = f"g-{tag}"
        self.admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        for f in self.admin.create_topics([NewTopic(self.input, num_partitions=2, replication_factor=1)]).values():
            f.result(10)
        self.workers: list[tuple[Worker, threading.Thread]] = []

    def settings(self, **kw):
        base = dict(bootstrap_servers=self.broker.bootstrap_servers, input_topics=self.input, group_id=self.group,
                    alerts_topic=self.alerts, metrics_topic=self.metrics_topic, deadletter_topic=self.deadletter,
                    references_topic=self.references, labels_topic=self.labels, state_topic=self.state,
                    session_timeout_ms=2000, heartbeat_interval_ms=500, metrics_port=free_port(), metrics_host="127.0.0.1",
                    topic_replication_factor=1, topic_partitions=1, warmup=500, window_events=500,
                    broker_timeout_seconds=10)
        base.update(kw)
        return load_settings(**base)

    def produce(self, items, topic=None):
        p = Producer({"bootstrap.servers": self.broker.bootstrap_servers, "linger.ms": 5})
        for key, value, *headers in items:
            p.produce(topic or self.input, key=key, value=value, headers=headers[0] if headers else None)
        assert p.flush(30) == 0

    def start_worker(self, **kw) -> Worker:
        worker = Worker(self.settings(**kw), metrics=WorkerMetrics())
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        wait_for(lambda: worker.started.is_set() and worker._assigned, 60, "partition assignment")
        self.workers.append((worker, thread))
        return worker

    def stop_workers(self):
        for worker, thread in self.workers:
            worker.stop()
            thread.join(30)
            assert not thread.is_alive()
        self.workers = []

    def read_all(self, topic: str, expected: int, timeout: float = 60.0):
        """Up to ``expected`` records of ``topic`` from its beginning, waiting at most ``timeout`` s (for the
        topic too). Partitions are assigned, not subscribed: a group join costs session.timeout.ms / 2 on tansu."""
        c = Consumer({"bootstrap.servers": self.broker.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        out = []
        deadline = time.monotonic() + timeout
        try:
            partitions = None
            while partitions is None and time.monotonic() < deadline:
                md = c.list_topics(topic, timeout=5).topics.get(topic)
                if md is not None and md.error is None and md.partitions:
                    partitions = sorted(md.partitions)
                else:
                    time.sleep(0.1)  # not created yet (the worker creates its output topics at start)
            if partitions is None:
                return out
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            while time.monotonic() < deadline and len(out) < expected:
                for m in c.consume(500, 0.5):
                    if m.error() is None:
                        out.append(m)
        finally:
            c.close()
        return out


@pytest.fixture
def kenv(broker):
    env = Env(broker)
    yield env
    env.stop_workers()
