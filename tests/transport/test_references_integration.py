"""Reference profiles over a real broker: start-up load, hot reload, rejection of bad records."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from conftest import wait_for
from driftline.cli.main import main
from driftline.reference.profile import ReferenceProfile

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def events(n, start, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        doc = {"model": "fraud", "model_version": "v3", "timestamp": T0 + i * 10,
               "features": {"amount": float(rng.normal() + shift), "country": str(rng.choice(["de", "fr"]))}}
        yield b"fraud", orjson.dumps(doc)


def build_profile(tmp_path, kenv, shift, *, publish):
    rng = np.random.default_rng(99)
    n = 20_000
    path = tmp_path / f"train{shift}.parquet"
    pq.write_table(pa.table({"amount": rng.normal(size=n) + shift, "country": rng.choice(["de", "fr"], n)}), path)
    out = tmp_path / f"p{shift}.json"
    args = ["reference", "build", str(path), "--model", "fraud", "--model-version", "v3", "-o", str(out)]
    if publish:
        args += ["--publish", "--bootstrap-servers", kenv.broker.bootstrap_servers,
                 "--references-topic", kenv.references, "--topic-replication-factor", "1"]
    assert main(args) == 0
    return ReferenceProfile.from_bytes(out.read_bytes())


def sample(worker, name, **labels):
    value = worker.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def published(worker):
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_alerts_total")


def processed(worker):
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_records_total")


def test_hot_reload_new_profile_is_used_without_restart_and_named_in_alerts(kenv, tmp_path):
    worker = kenv.start_worker(window_seconds=0)
    kenv.produce(events(1500, 0, seed=1))
    wait_for(lambda: processed(worker) >= 1500, 60, "first records processed")
    assert published(worker) == 0  # stationary against its warm-up

    # A profile whose amount sits 3 sd higher (say the model was retrained on other data).
    profile = build_profile(tmp_path, kenv, 3.0, publish=True)
    wait_for(lambda: sample(worker, "driftline_reference_updates_total", outcome="applied") >= 1, 30, "profile applied")
    assert sample(worker, "driftline_reference_info", model="fraud", model_version="v3", reference=profile.name) == 1.0

    # A record that is not a profile is counted and skipped; the worker carries on.
    p = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers})
    p.produce(kenv.references, key=b"fraud/v3", value=b'{"format": "driftline.reference/999"}')
    p.flush(10)
    wait_for(lambda: sample(worker, "driftline_reference_updates_total", outcome="rejected") >= 1, 30, "bad profile rejected")

    kenv.produce(events(1500, 1500, seed=2))
    wait_for(lambda: processed(worker) >= 3000, 60, "second records processed")
    alerts = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, published(worker), timeout=20)]
    assert len(alerts) == published(worker) > 0
    drift = [a for a in alerts if a["kind"] == "data_drift"]
    assert drift and {a["feature"] for a in drift} == {"amount"}
    assert {a["reference"] for a in alerts} == {profile.name}
    assert min(a["window"]["last_offset"] for a in drift) >= 1500  # only records after the reload
    assert worker.ready()[0]


def test_profile_on_the_topic_at_start_is_used_from_the_first_record(kenv, tmp_path):
    profile = build_profile(tmp_path, kenv, 0.0, publish=True)
    worker = kenv.start_worker(window_seconds=0)
    assert sample(worker, "driftline_reference_info", model="fraud", model_version="v3", reference=profile.name) == 1.0
    kenv.produce(events(1000, 0, seed=3, shift=1.0))  # drifted from the very first record
    wait_for(lambda: processed(worker) >= 1000, 60, "records processed")
    alerts = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, published(worker), timeout=20)]
    assert alerts and {a["feature"] for a in alerts} == {"amount"} and {a["reference"] for a in alerts} == {profile.name}
    # window summaries name it too
    summaries = [orjson.loads(m.value()) for m in kenv.read_all(kenv.metrics_topic, 4, timeout=20)]
    assert summaries and {s["reference"] for s in summaries} == {profile.name}

    # a tombstone withdraws it: back to warm-up
    assert main(["reference", "withdraw", "--model", "fraud", "--model-version", "v3",
                 "--bootstrap-servers", kenv.broker.bootstrap_servers, "--references-topic", kenv.references]) == 0
    wait_for(lambda: sample(worker, "driftline_reference_updates_total", outcome="withdrawn") >= 1, 30, "withdrawn")
    assert sample(worker, "driftline_reference_info", model="fraud", model_version="v3", reference=profile.name) == 0.0


def test_a_references_topic_created_after_start_is_followed(kenv, tmp_path, monkeypatch):
    from driftline.transport import references

    monkeypatch.setattr(references, "LOOK_AGAIN_SECONDS", 0.2)
    worker = kenv.start_worker(create_topics=False, state_topic="")  # no topic may be created: run without checkpoints
    assert worker._references is not None and not worker._references._assigned
    profile = build_profile(tmp_path, kenv, 0.0, publish=True)  # creates the topic
    wait_for(lambda: sample(worker, "driftline_reference_updates_total", outcome="applied") >= 1, 30, "profile applied")
    assert worker.pipeline.references[("fraud", "v3")].id == profile.id
