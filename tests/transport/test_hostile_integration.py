"""A hostile corpus against a running ``driftline run`` process (real broker).

Records a careless producer or an attacker would send (issue 11), interleaved
with ordinary traffic of one model. Judged from outside, as an operator would:
the worker never exits, its committed offsets reach the end of every input and
labels partition, every hostile record is a dead letter or a monitored event,
the ordinary model's windows cover every one of its records, no output record
is larger than the producer's limit and every one is valid UTF-8 JSON.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import wait_for
from tests.transport.test_state_integration import Topics, WorkerProcess, read_all

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
NORMAL = 1_200  # ordinary records of model "base", partition 0; windows of 200
HUGE = "1" + "0" * 400  # 401 digits


def _j(text: str) -> bytes:
    return text.encode()


def hostile_records() -> list[tuple[str, bytes, set[str]]]:
    """(name, value, acceptable outcomes): 'event' or 'dead:<reason>'."""
    ts = T0 + 1000
    any_outcome = {"event", "dead:*"}
    big_name = "f" * 900_000
    return [
        ("401-digit feature", _j(f'{{"model":"h1","timestamp":{ts},"features":{{"x":{HUGE}}}}}'), {"event"}),
        ("401-digit prediction", _j(f'{{"model":"h1","timestamp":{ts},"features":{{"x":1}},"prediction":{HUGE}}}'), {"event"}),
        ("401-digit named output", _j(f'{{"model":"h1","timestamp":{ts},"prediction":{{"score":-{HUGE}}}}}'), {"event"}),
        ("surrogate model", _j(f'{{"model":"\\ud800","timestamp":{ts},"features":{{"x":1}}}}'), any_outcome),
        ("surrogate version", _j(f'{{"model":"h2","model_version":"\\udfff","timestamp":{ts},"features":{{"x":1}}}}'), any_outcome),
        ("surrogate feature name", _j(f'{{"model":"h2","timestamp":{ts},"features":{{"\\ud800":1.5}}}}'), {"event"}),
        ("surrogate category", _j(f'{{"model":"h2","timestamp":{ts},"features":{{"c":"\\ud800"}}}}'), {"event"}),
        ("surrogate event_id", _j(f'{{"model":"h2","event_id":"\\ud800","timestamp":{ts},"features":{{"x":1}}}}'), any_outcome),
        ("newline in model", _j(f'{{"model":"evil\\n2026-12-01 INFO forged line","timestamp":{ts},"features":{{"x":1}}}}'), any_outcome),
        ("escape in feature", _j(f'{{"model":"h3","timestamp":{ts},"features":{{"\\u001b[31mred":1}}}}'), {"event"}),
        ("utf-16", '{"model":"h3","features":{"x":1}}'.encode("utf-16"), {"dead:invalid_json"}),
        ("utf-32", '{"model":"h3","features":{"x":1}}'.encode("utf-32"), {"dead:invalid_json"}),
        ("utf-16-le no bom", '{"model":"h3","features":{"x":1}}'.encode("utf-16-le"), {"dead:invalid_json"}),
        ("year 1", _j('{"model":"h3","timestamp":"0001-01-01T00:00:00Z","features":{"x":1}}'), {"dead:invalid_timestamp"}),
        ("year 1969", _j('{"model":"h3","timestamp":"1969-12-31T23:59:59Z","features":{"x":1}}'), {"dead:invalid_timestamp"}),
        ("year 9999 other model", _j('{"model":"h4","timestamp":"9999-12-31T23:59:59Z","features":{"x":1}}'), any_outcome),
        ("slash collision a", _j(f'{{"model":"col/a","model_version":"v","timestamp":{ts},"features":{{"x":1}}}}'), {"event"}),
        ("slash collision b", _j(f'{{"model":"col","model_version":"a/v","timestamp":{ts},"features":{{"x":1}}}}'), {"event"}),
        ("feature shadows output", _j(f'{{"model":"h5","timestamp":{ts},"features":{{"prediction.score":1}},"prediction":{{"score":0.5}}}}'), {"event"}),
        ("deep nesting", b'{"model":"h5","features":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}", any_outcome),
        ("deep nesting unclosed", b"[" * 1_000_000, {"dead:invalid_json"}),
        ("900 KB feature name", _j(f'{{"model":"h6","timestamp":{ts},"features":{{"{big_name}":1}}}}'), {"event", "dead:*"}),
        ("600 KB category 1", _j(f'{{"model":"h7","timestamp":{ts},"features":{{"c":"{"a" * 600_000}"}}}}'), {"event", "dead:*"}),
        ("600 KB category 2", _j(f'{{"model":"h7","timestamp":{ts},"features":{{"c":"{"b" * 600_000}"}}}}'), {"event", "dead:*"}),
        ("invalid 999,990 bytes", b"{" + b"x" * 999_989, {"dead:invalid_json"}),
        ("too large", _j(f'{{"model":"h8","features":{{"x":"{"z" * 1_100_000}"}}}}'), {"dead:too_large"}),
        ("random bytes", bytes(range(256)) * 4, {"dead:invalid_json"}),
        ("empty", b"", {"dead:empty_value"}),
        ("NaN literal", _j(f'{{"model":"h9","timestamp":{ts},"features":{{"x":NaN,"y":Infinity}}}}'), {"event"}),
        ("1e999", _j(f'{{"model":"h9","timestamp":{ts},"features":{{"x":1e999}}}}'), {"event", "dead:invalid_json"}),
        ("duplicate keys", _j(f'{{"model":"h9","model":"h10","timestamp":{ts},"features":{{"x":1,"x":"a"}}}}'), {"event"}),
        ("many features", orjson.dumps({"model": "h11", "timestamp": ts, "features": {f"f{i}": i for i in range(5_000)}}), {"event"}),
        ("huge int timestamp", _j(f'{{"model":"h12","timestamp":{HUGE},"features":{{"x":1}}}}'), {"dead:invalid_timestamp"}),
        ("float timestamp inf", _j('{"model":"h12","timestamp":1e999,"features":{"x":1}}'), {"dead:invalid_timestamp", "dead:invalid_json"}),
        ("control chars everywhere", orjson.dumps({"model": "h\x00\x1b\x7f", "model_version": "\r\n", "timestamp": ts,
                                                   "features": {"\x00": "\x1b", "\u2028": 1}}), any_outcome),
    ]


def hostile_labels() -> list[tuple[str, bytes, set[str]]]:
    ts = T0 + 2000
    any_outcome = {"label", "dead:*"}
    return [
        ("401-digit label", _j(f'{{"model":"base","event_id":"e1","label":{HUGE},"timestamp":{ts}}}'), {"dead:invalid_label"}),
        ("surrogate label", _j(f'{{"model":"base","event_id":"e2","label":"\\ud800","timestamp":{ts}}}'), any_outcome),
        ("surrogate label event_id", _j(f'{{"model":"base","event_id":"\\ud800","label":1,"timestamp":{ts}}}'), any_outcome),
        ("surrogate label model", _j(f'{{"model":"\\ud800","event_id":"e3","label":1,"timestamp":{ts}}}'), any_outcome),
        ("label utf-16", '{"model":"base","event_id":"e4","label":1}'.encode("utf-16"), {"dead:invalid_json"}),
        ("label year 1", _j('{"model":"base","event_id":"e5","label":1,"timestamp":"0001-01-01T00:00:00Z"}'), {"dead:invalid_timestamp"}),
    ] + [(f"label of new model {i}", orjson.dumps({"model": f"nomodel{i}", "event_id": "e", "label": 1, "timestamp": ts}), any_outcome)
         for i in range(300)]


def _normal(i: int) -> bytes:
    return orjson.dumps({"model": "base", "model_version": "v1", "event_id": f"b{i}", "timestamp": T0 + i * 100,
                         "features": {"x": (i * 7919 % 1000) / 1000.0, "colour": "abc"[i % 3]},
                         "prediction": {"score": (i * 31 % 100) / 100.0}})


def _committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()


def test_a_hostile_corpus_is_accounted_for_and_the_worker_keeps_running(broker, tmp_path):
    bootstrap = broker.bootstrap_servers
    topics = Topics(bootstrap, partitions=1)
    labels = f"labels-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(labels, num_partitions=1, replication_factor=1)]).values():
        f.result(10)

    events, label_records = hostile_records(), hostile_labels()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 4_000_000})
    expected: dict[int, tuple[str, set[str]]] = {}
    offset = 0
    step = NORMAL // (len(events) + 1)
    hostile = iter(events)
    for i in range(NORMAL):
        producer.produce(topics.input, value=_normal(i), partition=0)
        offset += 1
        if i % step == step - 1:
            item = next(hostile, None)
            if item is not None:
                producer.produce(topics.input, value=item[1], partition=0)
                expected[offset] = (item[0], item[2])
                offset += 1
        producer.poll(0)
    total_inputs = offset
    label_expected = {}
    for j, (name, value, outcomes) in enumerate(label_records):
        producer.produce(labels, value=value, partition=0)
        label_expected[j] = (name, outcomes)
    assert producer.flush(60) == 0

    worker = WorkerProcess(topics, "w1", labels_topic=labels, warmup=100, window_events=200, batch_size=200,
                           max_models=50, checkpoint_interval_records=300, max_record_bytes=1_000_000)
    try:
        tps = [TopicPartition(topics.input, 0), TopicPartition(labels, 0)]
        wait_for(lambda: _committed(bootstrap, topics.group, tps) == {(topics.input, 0): total_inputs,
                                                                      (labels, 0): len(label_records)}
                 or worker.proc.poll() is not None, 120, "offsets committed to the end of input and labels")
        assert worker.proc.poll() is None, f"the worker exited with {worker.proc.returncode}: {worker.logs()}"

        dead: dict[tuple[str, int], str] = {}
        for m in read_all(bootstrap, topics.dead):
            h = {k: v for k, v in m.headers()}
            dead[(h["driftline.source.topic"].decode(), int(h["driftline.source.offset"]))] = h["driftline.reason"].decode()
            assert len(m.value() or b"") <= 1_000_000
            if h["driftline.reason"] == b"too_large":
                assert h["driftline.value.truncated"] == b"true" and int(h["driftline.value.size"]) > 1_000_000
        problems = []
        for off, (name, outcomes) in expected.items():
            got = f"dead:{dead[(topics.input, off)]}" if (topics.input, off) in dead else "event"
            if got not in outcomes and not (got.startswith("dead:") and "dead:*" in outcomes):
                problems.append(f"{name}: {got}, expected one of {sorted(outcomes)}")
        for off, (name, outcomes) in label_expected.items():
            got = f"dead:{dead[(labels, off)]}" if (labels, off) in dead else "label"
            if got not in outcomes and not (got.startswith("dead:") and "dead:*" in outcomes):
                problems.append(f"{name}: {got}, expected one of {sorted(outcomes)}")
        assert not problems, problems
        normal_offsets = set(range(total_inputs)) - set(expected)
        assert not {off for (t, off) in dead if t == topics.input} & normal_offsets, "an ordinary record was dead-lettered"
        assert "processing_error" not in dead.values(), "a record reached the worker's last-resort isolation (a bug)"

        # the ordinary model's windows of x cover every one of its records, once
        covered = 0
        seen = set()
        for m in read_all(bootstrap, topics.metrics):
            assert len(m.value()) <= 1_000_000
            s = orjson.loads(m.value())
            m.key().decode("utf-8")
            if s.get("model") == "base" and s.get("feature") == "x" and "records" in s:
                span = (s["window"]["first_offset"], s["window"]["last_offset"])
                if span not in seen:
                    seen.add(span)
                    covered += s["records"]
        assert covered >= NORMAL - 200, (covered, NORMAL)  # the last, open window may not have closed
        for m in read_all(bootstrap, topics.alerts):
            orjson.loads(m.value())
            m.key().decode("utf-8")
        assert worker.metric("driftline_records_total") == total_inputs + len(label_records)
        logs = worker.logs()
        assert "Traceback" not in logs, logs
        assert "\nforged line" not in logs and "\n2026-12-01 INFO forged line" not in logs
    finally:
        worker.stop()
