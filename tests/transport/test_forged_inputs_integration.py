"""Records no driftline client writes, on every topic a running ``driftline run`` reads (real broker).

* a header whose *name* is not UTF-8 (any client can write one: the protocol
  carries bytes): confluent-kafka's ``Message.headers()`` raises
  ``SystemError`` on it; on the state topic that stopped every worker at
  every start, on the alerts topic at the next poll, on the input at the next
  batch;
* a reference profile whose quantile sketch has one byte changed:
  DataSketches trusted it and crashed the process (segmentation fault);
* a firing dated year 9999 on the alerts topic (it held its key forever).

Judged from outside: the worker keeps running, commits to the end of its input,
counts the refused profile and checkpoint.
"""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.contract.event import InferenceEvent
from driftline.reference.builder import ProfileBuilder
from tests.conftest import wait_for
from tests.transport.raw_producer import Raw
from tests.transport.test_state_integration import Topics, WorkerProcess

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
BAD_NAME = [(b"\xff\xfe", b"x")]


def _event(i: int) -> bytes:
    return orjson.dumps({"model": "base", "timestamp": T0 + i * 10, "features": {"x": float(i % 7), "c": "ab"[i % 2]}})


def _crashing_profile() -> bytes:
    rng = np.random.default_rng(0)
    b = ProfileBuilder()
    b.add([InferenceEvent("base", "unversioned", None, None, {"x": float(rng.normal()), "c": "ab"[i % 2]}, None)
           for i in range(5000)])
    (profile,) = b.result()
    doc = profile.to_dict()
    feature = next(f for f in doc["features"] if f["name"] == "x")
    raw = bytearray(base64.b64decode(feature["kll"]))
    raw[27] = 0xF7  # the high byte of the second level's offset: DataSketches read far out of its buffer
    feature["kll"] = base64.b64encode(bytes(raw)).decode()
    doc.pop("id")
    return orjson.dumps(doc)


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_records_no_client_of_ours_writes_stop_nothing(broker):
    bootstrap = broker.bootstrap_servers
    topics = Topics(bootstrap, partitions=1)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                                  for t in (topics.alerts, topics.references, topics.state)]).values():
        f.result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    producer.produce(topics.references, key=b"base/unversioned", value=_crashing_profile())
    forged_alert = orjson.dumps({"status": "firing", "model": "base", "model_version": "unversioned", "feature": "x",
                                 "source": "features", "kind": "data_drift", "detector": "psi",
                                 "event_time": "9999-12-31T23:59:59Z"})
    producer.produce(topics.alerts, value=forged_alert)
    for i in range(300):
        producer.produce(topics.input, value=_event(i), partition=0)
    assert producer.flush(30) == 0
    raw = Raw(bootstrap)
    raw.produce(topics.state, b"anything", BAD_NAME, key=f"{topics.group}/{topics.input}/0#0".encode())
    raw.produce(topics.alerts, forged_alert, BAD_NAME)
    assert raw.flush() == 0

    worker = WorkerProcess(topics, "w1", labels_topic="", warmup=100, window_events=100, batch_size=100,
                           cooldown_seconds=1)
    try:
        wait_for(lambda: worker.proc.poll() is not None or _committed(bootstrap, topics.group, topics.input) == 300,
                 60, "the first records committed")
        assert worker.proc.poll() is None, f"the worker exited with {worker.proc.returncode}: {worker.logs()}"
        assert worker.metric("driftline_reference_updates_total", outcome="rejected") == 1
        assert worker.metric("driftline_reference_updates_total", outcome="applied") == 0

        # an input record with a header name that is not UTF-8: the worker reads past it
        raw.produce(topics.input, _event(300), BAD_NAME)
        assert raw.flush() == 0
        for i in range(301, 400):
            producer.produce(topics.input, value=_event(i), partition=0)
        assert producer.flush(30) == 0
        wait_for(lambda: worker.proc.poll() is not None or _committed(bootstrap, topics.group, topics.input) == 400,
                 60, "every record committed")
        assert worker.proc.poll() is None, f"the worker exited with {worker.proc.returncode}: {worker.logs()}"
        assert worker.metric("driftline_records_total") == 400
        assert "Traceback" not in worker.logs()
    finally:
        raw.close()
        worker.stop()
