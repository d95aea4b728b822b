"""No record stops a worker (real broker): a record whose processing raises, and outputs over Kafka's limit.

A fault-injected pipeline raises for records carrying a marker, after it has
applied the whole batch to its state (the worst case: a partially applied
batch).  The worker must rewind, process the suspects one at a time,
dead-letter the culprit (``processing_error``, exception in
``driftline.error``), commit past it and count every other record once.

The oversize triggers of issue 11: a ``too_large`` input (its dead letter
carries a 64 KiB prefix), an invalid 999,990-byte record, a 900 KB feature
name, two 600 KB category values in one window.  Whatever bounds the pure
path puts on names and categories, each ends as an output that fits: a
bounded summary, or an ``oversized_output`` record in its place.  A second
worker (at_least_once, no state topic) writes dead letters to a topic whose
``max.message.bytes`` is 20,000, so that they must be replaced whatever
those bounds are.
"""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import Env, wait_for
from driftline.detection.pipeline import Pipeline
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import Worker, pipeline_settings

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
MARK = b"POISON-MARK"


class Faulty(Pipeline):
    """Applies every batch, then raises if a record of it carries the marker."""

    def process(self, records):
        result = super().process(records)
        if any(r.value is not None and MARK in r.value for r in records):
            raise ValueError("injected fault \ud800 for a marked record " + "x" * 3000)
        return result


def event(i, model="m", features=None, at=None, event_id=None):
    return orjson.dumps({"model": model, "event_id": event_id or f"e{i}", "timestamp": T0 + (i * 10 if at is None else at),
                         "features": features if features is not None else {"a": float(i % 7)}})


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 3_000_000})
    for key, value in values:
        p.produce(topic, key=key, value=value, partition=0)
    assert p.flush(30) == 0


def read(bootstrap, topic, timeout=20.0, expected=1):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}", "enable.partition.eof": True,
                  "isolation.level": "read_uncommitted"})
    c.assign([TopicPartition(topic, p, 0) for p in range(1)])
    out, done = [], False
    try:
        def more():
            nonlocal done
            for m in c.consume(500, 0.2):
                if m.error() is None:
                    out.append(m)
                elif len(out) >= expected:
                    done = True
            return done
        wait_for(more, timeout, f"{expected} record(s) on {topic}")
    finally:
        c.close()
    return out


def committed(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def start(env, pipeline_class=Faulty, **kw):
    worker = Worker(env.settings(labels_topic="", window_events=50, warmup=50, **kw), metrics=WorkerMetrics())
    worker.pipeline = pipeline_class(pipeline_settings(worker.settings))
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
    thread.start()
    env.workers.append((worker, thread))
    return worker


def total(worker, name, **labels):
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def windows(messages, model, feature):
    """(first_offset, last_offset, records) of the window summaries of one feature, repeats dropped."""
    out = set()
    for m in messages:
        doc = orjson.loads(m.value())
        if doc.get("type") == "window_summary" and doc["model"] == model and doc["feature"] == feature:
            out.add((doc["window"]["first_offset"], doc["window"]["last_offset"], doc["records"]))
    return sorted(out)


def inputs():
    """(name, key, value) in offset order: 50 good, the marked one, 50 good, then the oversize triggers."""
    good = [(f"m{i}", b"m", event(i)) for i in range(50)]
    good += [("poison", b"m", event(50, event_id=MARK.decode()))]
    good += [(f"m{i}", b"m", event(i)) for i in range(51, 101)]
    big = [
        ("too_large", b'{"model":"m","features":{"a":"' + b"x" * 1_200_000 + b'"}}'),
        ("invalid_999990", b"{" + b"x" * 999_989),
        ("feature_900k", event(0, "big", {"n" * 900_000: 1.0}, at=0)),
        ("feature_900k_close", event(0, "big", {"z": 1.0}, at=120_000)),
        ("category_a", event(0, "cat", {"c": "a" * 600_000}, at=0)),
        ("category_b", event(0, "cat", {"c": "b" * 600_000}, at=1)),
        ("category_close", event(0, "cat", {"c": "z"}, at=120_000)),
        ("after", event(200, "m", {"a": 1.0}, at=2000)),
    ]
    return good + [(name, name.encode(), value) for name, value in big]


@pytest.fixture(scope="module")
def runs(broker):
    """Both workers, each on its own topics, fed the same input; shared by the tests of this module."""
    eos, alo = Env(broker), Env(broker)
    items = inputs()
    try:
        for env in (eos, alo):
            produce(broker.bootstrap_servers, env.input, [(k, v) for _, k, v in items])
        # the second worker's dead-letter topic takes 20,000 bytes (max.message.bytes, read at start-up)
        topic = NewTopic(alo.deadletter, num_partitions=1, replication_factor=1, config={"max.message.bytes": "20000"})
        for f in alo.admin.create_topics([topic]).values():
            f.result(10)
        w1 = start(eos, checkpoint_interval_seconds=1)
        w2 = start(alo, processing_guarantee="at_least_once", state_topic="")
        for env, w in ((eos, w1), (alo, w2)):
            wait_for(lambda: committed(broker.bootstrap_servers, env.group, env.input) == len(items), 60,
                     "every input offset committed")
        yield {"eos": (eos, w1), "alo": (alo, w2), "n": len(items), "broker": broker}
    finally:
        eos.stop_workers()
        alo.stop_workers()


@pytest.mark.parametrize("mode", ["eos", "alo"])
def test_the_culprit_is_dead_lettered_with_its_exception_and_the_others_count_once(runs, mode):
    env, worker = runs[mode]
    bootstrap = runs["broker"].bootstrap_servers
    dead = read(bootstrap, env.deadletter, expected=3)
    by_key = {}
    for m in dead:
        by_key.setdefault(m.key(), []).append(m)
    (poison,) = by_key[b"m"]  # the only dead letter keyed m: the marked record
    h = dict(poison.headers())
    assert h["driftline.reason"] == b"processing_error" and h["driftline.source.offset"] == b"50"
    assert h["driftline.error"].startswith(b"ValueError: injected fault \\ud800 for a marked record xxx")
    assert len(h["driftline.error"]) <= 1010  # bounded
    assert MARK in poison.value()
    assert total(worker, "driftline_dead_letters_total", reason="processing_error") == 1
    assert worker.stalled() is None and worker.alive()[0]

    summaries = read(bootstrap, env.metrics_topic, expected=2)
    spans = windows(summaries, "m", "a")
    # the marked record is in no window, the 100 around it each in exactly one
    assert spans[:2] == [(0, 49, 50), (51, 100, 50)], spans
    events = total(worker, "driftline_events_total", model="m")
    assert events == 100 + 1  # 50 + 50 around the culprit, and the record after the triggers


def test_every_oversize_trigger_ends_as_a_record_that_fits_exactly_once(runs):
    env, worker = runs["eos"]
    bootstrap = runs["broker"].bootstrap_servers
    dead = {m.key(): m for m in read(bootstrap, env.deadletter, expected=3)}
    too_large = dead[b"too_large"]
    h = dict(too_large.headers())
    assert h["driftline.reason"] == b"too_large" and h["driftline.value.truncated"] == b"true"
    assert int(h["driftline.value.size"]) == 1_200_033 and len(too_large.value()) <= 64 * 1024
    invalid = dead[b"invalid_999990"]
    h = dict(invalid.headers())
    assert h["driftline.reason"] == b"invalid_json" and int(h["driftline.value.size"]) == 999_990
    assert len(invalid.value()) <= 64 * 1024

    summaries = [orjson.loads(m.value()) for m in read(bootstrap, env.metrics_topic, expected=4)]
    for m in read(bootstrap, env.metrics_topic, expected=4):
        assert len(m.value()) + len(m.key() or b"") < 1_000_000
    for model, feature in (("big", "n"), ("cat", "c")):
        found = [s for s in summaries
                 if (s.get("type") == "window_summary" and s["model"] == model and s["feature"].startswith(feature))
                 or (s.get("type") == "oversized_output" and s["fields"].get("model") == model
                     and str(s["fields"].get("feature", "")).startswith(feature))]
        assert found, f"no summary (or oversized_output record) for {model}/{feature}"
        for s in found:
            if s["type"] == "oversized_output":
                assert s["output"] == "window_summary" and s["size"] > 1_000_000 and len(s["sha256"]) == 64
    assert total(worker, "driftline_transactions_total", outcome="aborted") == 0  # nothing was retried in a loop


def test_with_a_small_topic_limit_the_dead_letters_are_replaced_and_counted(runs):
    env, worker = runs["alo"]
    bootstrap = runs["broker"].bootstrap_servers
    dead = {m.key(): m for m in read(bootstrap, env.deadletter, expected=3)}
    for key, reason in ((b"too_large", "too_large"), (b"invalid_999990", "invalid_json")):
        doc = orjson.loads(dead[key].value())
        assert doc["type"] == "oversized_output" and doc["output"] == "dead_letter"
        assert doc["fields"]["reason"] == reason and doc["limit"] == 20_000 and doc["size"] > 64 * 1024
        assert dict(dead[key].headers())["driftline.reason"] == reason.encode()
        assert len(dead[key].value()) < 8 * 1024
    assert total(worker, "driftline_oversized_outputs_total", topic=env.deadletter) >= 2
    assert total(worker, "driftline_records_total") == runs["n"]
