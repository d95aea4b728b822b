"""A forged checkpoint on the state topic (real broker): refused, counted, nothing runs, the partition
starts clean and its records are processed.

Both forgeries carry a correct digest: without ``state_secret`` it is a plain SHA-256 that anyone who can
write the state topic computes.  Partition 0 gets a pickle that would run a command (format 1's hole);
partition 1 a well-formed checkpoint of the current format whose monitor cannot be taken over.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from driftline.state.checkpoint import STATE_FORMAT, encode_state
from driftline.transport import kafka
from driftline.transport.checkpoints import CheckpointStore
from tests.conftest import wait_for
from tests.state.test_checkpoint_forgery import PICKLES, envelope, nodes, payload, split

pytestmark = pytest.mark.integration

MARKER = Path(f"/tmp/driftline-forged-checkpoint-ran-{STATE_FORMAT}")


def _well_formed_but_unusable(kenv, settings) -> bytes:
    from driftline.contract.event import SourceRecord
    from driftline.detection.pipeline import Pipeline
    from driftline.transport.worker import pipeline_settings

    p = Pipeline(pipeline_settings(settings))
    p.process([SourceRecord(kenv.input, 1, i, None, None, orjson.dumps({"model": "m", "features": {"x": float(i)}}), ())
               for i in range(50)])
    table, tree, blob = split(encode_state(p.snapshot(kenv.input, 1, 50)))
    monitor, _, _ = next(nodes(tree, table, "ModelMonitor"))
    names = dict(table)["ModelMonitor"]
    features = monitor[1 + names.index("features")]  # ["d", key, feature, ...]: made a list of the features
    monitor[1 + names.index("features")] = ["l", *features[2::2]]  # (data of the forger's choosing)
    monitor[1 + names.index("profile")] = "a profile this worker does not hold"
    return envelope(payload(table, tree, bytes(blob)))


def test_a_forged_checkpoint_is_refused_counted_and_the_partitions_start_clean(kenv, caplog):
    MARKER.unlink(missing_ok=True)
    settings = kenv.settings(labels_topic="")
    admin = kafka.make_admin(settings)
    kafka.create_topics(admin, [settings.state_topic], {settings.state_topic: kafka.OUTPUT_TOPIC_CONFIGS["state"]}, 2, 1, 10)
    store = CheckpointStore(settings, 2)
    evil = PICKLES["STACK_GLOBAL driftline.transport.worker os.system"]
    forged = {0: (envelope(struct.pack(">Q", len(evil)) + evil), 0),
              1: (_well_formed_but_unusable(kenv, settings), 50)}
    assert hashlib.sha256(forged[0][0][:7] + forged[0][0][39:]).digest() == forged[0][0][7:39]  # a valid digest
    producer = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers})
    for partition, (value, offset) in forged.items():
        base = store.key(kenv.input, partition)
        producer.produce(settings.state_topic, key=f"{base}#0".encode(), value=value, partition=store._state_partition(base),
                         headers=[("driftline.checkpoint.id", b"forged"), ("driftline.checkpoint.chunks", b"1"),
                                  ("driftline.checkpoint.offset", str(offset).encode())])
    assert producer.flush(10) == 0

    with caplog.at_level(logging.WARNING):
        worker = kenv.start_worker(labels_topic="")
    registry = worker.metrics.registry
    wait_for(lambda: registry.get_sample_value("driftline_state_restores_total", {"outcome": "rejected"}) == 2, 30,
             "both forged checkpoints rejected")
    assert not registry.get_sample_value("driftline_state_restores_total", {"outcome": "restored"})
    messages = [r.getMessage() for r in caplog.records]
    assert f"checkpoints are not signed: anyone who can write {settings.state_topic} can change this worker's state; " \
           "set state_secret" in messages
    errors = {r.ctx["partition"]: r.ctx["error"] for r in caplog.records if "may be forged or corrupt" in r.getMessage()}
    assert errors.keys() == {f"{kenv.input}[0]", f"{kenv.input}[1]"}
    assert "not readable" in errors[f"{kenv.input}[0]"]  # the pickle is not even parsed
    assert "cannot restore it" in errors[f"{kenv.input}[1]"]

    for partition in (0, 1):
        for i in range(20):
            producer.produce(kenv.input, key=b"m", partition=partition,
                             value=orjson.dumps({"model": "m", "features": {"x": float(i)}}))
        producer.produce(kenv.input, key=b"m", value=b"not json", partition=partition)
    assert producer.flush(10) == 0
    wait_for(lambda: registry.get_sample_value("driftline_events_total", {"model": "m", "topic": kenv.input}) == 40,
             30, "events of both partitions processed from offset 0")
    dead = kenv.read_all(kenv.deadletter, 2, timeout=30)
    assert sorted(dict(m.headers())["driftline.source.partition"] for m in dead) == [b"0", b"1"]
    assert not MARKER.exists()
