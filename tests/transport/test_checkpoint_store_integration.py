"""The state topic over a real broker: chunked checkpoints, which one is used, and rejected ones."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.state.checkpoint import STATE_FORMAT, encode_state
from driftline.transport import kafka
from driftline.transport.checkpoints import CHUNK_BYTES, CheckpointStore
from driftline.transport.worker import pipeline_settings
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def _pipeline_with_state(settings, features: int, events: int) -> Pipeline:
    rng = np.random.default_rng(0)
    p = Pipeline(pipeline_settings(settings))
    values = rng.normal(size=(events, features))
    p.process([SourceRecord(settings.input_topics[0], 0, i, None, None, orjson.dumps(
        {"model": "m", "features": {f"f{k}": float(values[i, k]) for k in range(features)}}), ()) for i in range(events)])
    return p


def _store(kenv, settings) -> CheckpointStore:
    admin = kafka.make_admin(settings)
    kafka.create_topics(admin, [settings.state_topic], {settings.state_topic: kafka.OUTPUT_TOPIC_CONFIGS["state"]}, 2, 1, 10)
    return CheckpointStore(settings, 2)


def test_a_large_checkpoint_goes_in_chunks_and_the_newest_usable_one_is_restored(kenv):
    settings = kenv.settings(labels_topic="")
    store = _store(kenv, settings)
    pipeline = _pipeline_with_state(settings, features=150, events=1_200)  # (about 8 KB a feature: more than one chunk)
    producer = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers})
    errors = []
    on_delivery = lambda err, msg: errors.append(err) if err else None  # noqa: E731
    first = store.write(producer, pipeline.snapshot(kenv.input, 0, 1_200), on_delivery)
    assert first > CHUNK_BYTES  # more than one chunk
    second = store.write(producer, pipeline.snapshot(kenv.input, 0, 1_500), on_delivery)
    assert producer.flush(30) == 0 and not errors and second > CHUNK_BYTES

    reader = CheckpointStore(settings, 2)
    newest = reader.read([(kenv.input, 0), (kenv.input, 1)], {}, exactly_once=False)
    assert newest[(kenv.input, 0)].state.offset == 1_500
    assert newest[(kenv.input, 1)].outcome == "none"
    # exactly_once: a checkpoint past the committed offset belongs to an aborted transaction
    committed_only = reader.read([(kenv.input, 0)], {(kenv.input, 0): 1_300}, exactly_once=True)
    assert committed_only[(kenv.input, 0)].state.offset == 1_200
    restored = Pipeline(pipeline_settings(settings))
    restored.restore(newest[(kenv.input, 0)].state)
    assert restored.feature_count == pipeline.feature_count == 150


def test_a_worker_rejects_an_old_format_checkpoint_and_starts_clean(kenv):
    settings = kenv.settings(labels_topic="")
    store = _store(kenv, settings)
    data = bytearray(encode_state(_pipeline_with_state(settings, 3, 600).snapshot(kenv.input, 0, 600)))
    struct.pack_into(">H", data, 4, STATE_FORMAT + 1 if STATE_FORMAT == 0 else STATE_FORMAT - 1 or 99)
    producer = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers})
    producer.produce(settings.state_topic, key=f"{settings.group_id}/{kenv.input}/0#0".encode(), value=bytes(data),
                     partition=store._state_partition(store.key(kenv.input, 0)),
                     headers=[("driftline.checkpoint.id", b"old"), ("driftline.checkpoint.chunks", b"1"),
                              ("driftline.checkpoint.offset", b"600")])
    assert producer.flush(10) == 0
    worker = kenv.start_worker(labels_topic="")
    registry = worker.metrics.registry
    assert registry.get_sample_value("driftline_state_restores_total", {"outcome": "rejected"}) == 1
    for i in range(50):
        producer.produce(kenv.input, key=b"m", value=orjson.dumps({"model": "m", "features": {"x": float(i)}}), partition=0)
    assert producer.flush(10) == 0
    wait_for(lambda: registry.get_sample_value("driftline_events_total", {"model": "m", "topic": kenv.input}) == 50,
             30, "events processed from the start (offset 0), not from the rejected checkpoint's 600")
