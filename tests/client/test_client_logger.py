"""PredictionLogger against the embedded broker (tansu): arrival, keys, counters, outages, asyncio."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from conftest import wait_for
from driftline.client import PredictionLogger
from driftline.contract.decode import decode_event
from driftline.contract.event import InferenceEvent
from driftline.contract.label import LabelEvent, decode_label
from driftline.demo.broker import EmbeddedBroker, free_port
from driftline.errors import ConfigError

pytestmark = pytest.mark.integration
QUIET = {"log_level": 0}  # librdkafka's connection-refused lines add nothing here


def read_topic(bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 30.0, idle: float | None = None):
    """Records of a topic, read by assignment (no group join), until ``expected`` arrived
    (or, with ``idle``, until nothing new arrived for ``idle`` seconds after the first)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + timeout
    try:
        last_new = time.monotonic()
        while len(out) < expected and time.monotonic() < deadline:
            batch = [m for m in c.consume(max(1, min(500, expected - len(out))), 0.5) if m.error() is None]
            out += batch
            if batch:
                last_new = time.monotonic()
            elif idle is not None and out and time.monotonic() - last_new > idle:
                break
    finally:
        c.close()
    return out


def decoded(msg) -> InferenceEvent:
    event = decode_event(msg.value(), max_bytes=1_000_000, record_timestamp_ms=msg.timestamp()[1])
    assert isinstance(event, InferenceEvent), f"dead letter {event} for {msg.value()!r}"
    return event


def test_records_arrive_keyed_by_model_and_decode_cleanly(kenv):
    registry = CollectorRegistry()
    with PredictionLogger(kenv.broker.bootstrap_servers, topic=kenv.input, model="fraud", model_version="v3",
                          registry=registry, linger_ms=5) as logger:
        ids = [logger.log({"amount": float(i), "country": "de" if i % 2 else "fr", "new": i % 3 == 0, "age": None},
                          {"score": i / 100}) for i in range(100)]
        ids += [logger.log({"tenure": i}, "stay", model="churn") for i in range(50)]
        assert logger.flush(20) == 0
        stats = logger.stats()
    assert all(ids) and len(set(ids)) == 150
    assert (stats.sent, stats.delivered, stats.failed, stats.dropped, stats.invalid, stats.buffered) == (150, 150, 0, 0, 0, 0)
    for name in ("sent", "delivered"):
        assert registry.get_sample_value(f"driftline_client_records_{name}_total") == 150
    assert registry.get_sample_value("driftline_client_records_failed_total") == 0

    msgs = read_topic(kenv.broker.bootstrap_servers, kenv.input, 2, 150)
    assert len(msgs) == 150
    events = {m.key(): [] for m in msgs}
    partitions = {m.key(): set() for m in msgs}
    for m in msgs:
        events[m.key()].append(decoded(m))
        partitions[m.key()].add(m.partition())
    assert set(events) == {b"fraud", b"churn"}
    assert all(len(p) == 1 for p in partitions.values()), partitions  # one model, one partition
    fraud = events[b"fraud"]
    assert [e.event_id for e in fraud] == ids[:100]  # in order, with the ids log() returned
    assert all(e.model == "fraud" and e.model_version == "v3" and e.timestamp_ms is not None for e in fraud)
    assert fraud[3].features == {"amount": 3.0, "country": "de", "new": True, "age": None}
    assert fraud[3].outputs == {"prediction.score": 0.03}
    churn = events[b"churn"]
    assert all(e.model == "churn" and e.model_version == "v3" and e.outputs == {"prediction": "stay"} for e in churn)


def test_labels_go_to_the_labels_topic_keyed_by_model(kenv):
    from confluent_kafka.admin import NewTopic

    for f in kenv.admin.create_topics([NewTopic(kenv.labels, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    with PredictionLogger(kenv.broker.bootstrap_servers, topic=kenv.input, labels_topic=kenv.labels, model="fraud") as logger:
        event_id = logger.log({"amount": 1.0}, 1)
        assert logger.log_label(event_id, 1) is True
        assert logger.log_label("", 1) is False  # invalid: counted, not sent
        assert logger.flush(20) == 0
        assert (logger.sent, logger.delivered, logger.invalid) == (2, 2, 1)
    [label] = read_topic(kenv.broker.bootstrap_servers, kenv.labels, 2, 1)
    [inference] = read_topic(kenv.broker.bootstrap_servers, kenv.input, 2, 1)
    event = decode_label(label.value(), max_bytes=1_000_000)
    assert isinstance(event, LabelEvent) and (event.model, event.event_id, event.label) == ("fraud", event_id, 1.0)
    assert label.key() == b"fraud" and label.partition() == inference.partition()


def test_invalid_input_is_counted_never_raised():
    with PredictionLogger(f"127.0.0.1:{free_port()}", model="m", kafka=QUIET) as logger:
        assert logger.log(None, None) is None
        assert logger.log({"a": 1}, [0.1, 0.9]) is None
        assert logger.log({"a": 1}, model="") is None
        assert logger.log({"a": object()}) is None
        assert logger.log({"a": 1}, timestamp="yesterday") is None
        assert logger.log_label("e", None) is False
        assert (logger.invalid, logger.sent, logger.dropped) == (6, 0, 0)
        assert "'label'" in logger.last_error
    without_model = PredictionLogger(f"127.0.0.1:{free_port()}", kafka=QUIET)
    assert without_model.log({"a": 1}) is None and "'model' is required" in without_model.last_error
    assert without_model.log({"a": 1}, model="m") is not None
    without_model.close(0)


def test_bad_settings_fail_at_start_naming_the_setting():
    with pytest.raises(ConfigError, match="max_buffered_records"):
        PredictionLogger("127.0.0.1:1", max_buffered_records=0)
    with pytest.raises(ConfigError, match="report_interval_seconds"):
        PredictionLogger("127.0.0.1:1", report_interval_seconds=0)
    with pytest.raises(ConfigError, match="model / model_version"):
        PredictionLogger("127.0.0.1:1", model="")
    with pytest.raises(ConfigError, match="argument 'kafka'"):
        PredictionLogger("127.0.0.1:1", kafka={"no.such.property": 1})
    registry = CollectorRegistry()
    PredictionLogger("127.0.0.1:1", registry=registry, kafka=QUIET).close(0)
    with pytest.raises(ConfigError, match="registry"):
        PredictionLogger("127.0.0.1:1", registry=registry, kafka=QUIET)


def test_broker_unreachable_log_returns_buffer_overflow_drops_newest_and_failures_are_counted():
    """Nothing listens on the port: every call returns; beyond the buffer the newest are dropped; the rest time out."""
    registry = CollectorRegistry()
    logger = PredictionLogger(f"127.0.0.1:{free_port()}", model="m", max_buffered_records=50,
                              delivery_timeout_seconds=1.0, registry=registry, kafka=QUIET)
    latencies = []
    results = []
    for i in range(200):
        t = time.perf_counter()
        results.append(logger.log({"i": i}))
        latencies.append(time.perf_counter() - t)
    # drop-newest: the first 50 were queued, the 150 after them were not
    assert all(r is not None for r in results[:50]) and all(r is None for r in results[50:])
    assert (logger.sent, logger.dropped, logger.invalid) == (50, 150, 0)
    assert "buffer full" in logger.last_error
    wait_for(lambda: logger.failed == 50, 30, "delivery failures after the 1 s delivery timeout")
    assert logger.delivered == 0 and logger.buffered == 0
    assert registry.get_sample_value("driftline_client_records_dropped_total") == 150
    assert registry.get_sample_value("driftline_client_records_failed_total") == 50
    # the buffer has room again: new records are queued, not dropped
    assert logger.log({"i": 200}) is not None and logger.sent == 51
    assert logger.close(0.2) == 1
    assert logger.log({"i": 201}) is None and logger.dropped == 151  # closed: dropped, no exception
    latencies.sort()
    print(f"\nlog() with nothing listening: p50 {latencies[100] * 1e6:.1f} us, max {latencies[-1] * 1e6:.1f} us")


def test_broker_killed_mid_stream_log_keeps_returning_and_failures_are_counted(caplog):
    broker = EmbeddedBroker().start()
    try:
        logger = PredictionLogger(broker.bootstrap_servers, topic="client-kill", model="m", linger_ms=5,
                                  delivery_timeout_seconds=2.0, report_interval_seconds=0.2, kafka=QUIET)
        for i in range(20):
            logger.log({"i": i})
        assert logger.flush(20) == 0 and logger.delivered == 20
        broker.kill()
        caplog.set_level(logging.WARNING, logger="driftline.client")
        worst = 0.0
        for i in range(300):
            t = time.perf_counter()
            assert logger.log({"i": i}) is not None
            worst = max(worst, time.perf_counter() - t)
        assert logger.sent == 320
        wait_for(lambda: logger.failed == 300, 30, "the 300 records sent after the kill to fail")
        assert logger.delivered == 20 and logger.dropped == 0
        # the failures may be reported in several lines (every report_interval); the totals add up
        wait_for(lambda: any("totals 300 / 0 / 0" in r.getMessage() for r in caplog.records), 10, "the loss report in the log")
        assert logger.close(1) == 0
        print(f"\nlog() after the broker was killed: max {worst * 1e6:.1f} us")
    finally:
        broker.stop()


def test_async_usage_from_many_tasks(kenv):
    async def main():
        async with PredictionLogger(kenv.broker.bootstrap_servers, topic=kenv.input, model="asyncm", linger_ms=5) as logger:
            loop_blocked = []

            async def request(i: int) -> str | None:
                await asyncio.sleep(0)
                return logger.log({"x": i}, i % 2 == 0)

            async def ticker():  # the loop keeps running while flush waits in a thread
                for _ in range(5):
                    t = time.perf_counter()
                    await asyncio.sleep(0.001)
                    loop_blocked.append(time.perf_counter() - t)

            ids = await asyncio.gather(*(request(i) for i in range(200)))
            remaining, _ = await asyncio.gather(logger.aflush(20), ticker())
            assert remaining == 0 and len(loop_blocked) == 5
            return ids, logger.stats(), logger

    ids, stats, logger = asyncio.run(main())
    assert all(ids) and stats.sent == stats.delivered == 200
    assert logger.log({"x": 1}) is None and logger.dropped == 1  # __aexit__ closed it
    msgs = read_topic(kenv.broker.bootstrap_servers, kenv.input, 2, 200)
    assert sorted(decoded(m).features["x"] for m in msgs) == list(range(200))


def test_concurrent_threads_are_all_counted(kenv):
    with PredictionLogger(kenv.broker.bootstrap_servers, topic=kenv.input, model="threads", linger_ms=5) as logger:
        threads = [threading.Thread(target=lambda: [logger.log({"x": 1.0}) for _ in range(250)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert logger.flush(20) == 0
        assert logger.sent == logger.delivered == 1000


def _log_in_child(logger: PredictionLogger, conn) -> None:
    conn.send((logger.log({"x": 1.0}), logger.dropped, logger.sent, logger.last_error))


def test_a_logger_inherited_through_fork_drops_and_says_why():
    import multiprocessing

    logger = PredictionLogger(f"127.0.0.1:{free_port()}", model="m", kafka=QUIET)
    try:
        parent_end, child_end = multiprocessing.get_context("fork").Pipe()
        child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(logger, child_end))
        child.start()
        assert parent_end.poll(30), "the child did not answer"
        event_id, dropped, sent, why = parent_end.recv()
        child.join(30)
        assert (event_id, dropped, sent) == (None, 1, 0) and "another process" in why
        assert logger.log({"x": 1.0}) is not None and logger.sent == 1  # the parent's logger still works
    finally:
        logger.close(0)


def test_a_logger_never_closed_is_flushed_at_interpreter_exit(kenv):
    import subprocess
    import sys

    code = (f"from driftline.client import PredictionLogger\n"
            f"logger = PredictionLogger({kenv.broker.bootstrap_servers!r}, model='m', topic={kenv.input!r}, linger_ms=3000)\n"
            f"for i in range(50): logger.log({{'x': i}})\n")  # linger 3 s: only the exit flush sends them
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(read_topic(kenv.broker.bootstrap_servers, kenv.input, 2, 50, timeout=10)) == 50
