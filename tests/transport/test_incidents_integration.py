"""Incidents through a real worker and broker: records per drift episode, counted from the alerts topic."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import wait_for
from driftline.cli.main import main

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
STEP_MS = 100  # 10 events per second of event time


def _events(n: int, *, model: str, features: int, moved: int, shifted: range, seed: int, start: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        shift = 1.0 if i in shifted else 0.0
        doc = {"model": model, "model_version": "v1", "timestamp": T0 + i * STEP_MS,
               "features": {f"f{j}": float(rng.normal() + (shift if j < moved else 0.0)) for j in range(features)}}
        yield model.encode(), orjson.dumps(doc)


def _processed(worker) -> float:
    return worker.metrics.registry.get_sample_value("driftline_records_total", {"topic": worker.settings.input_topics[0]}) or 0


def _alerts(kenv, worker) -> list[dict]:
    published = sum(s.value for f in worker.metrics.registry.collect() for s in f.samples
                    if s.name == "driftline_alerts_total")
    return [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, int(published), timeout=20)]


def test_an_episode_past_several_cooldowns_is_one_firing_and_one_resolved_after_the_data_returned(kenv):
    # +1 sd on f0 for 1,200 s of event time (four cooldowns of 300 s), then back for 1,300 s
    worker = kenv.start_worker(labels_topic="", window_events=5000, window_seconds=60)
    n = 25_000
    kenv.produce(_events(n, model="m", features=3, moved=1, shifted=range(3_000, 15_000), seed=1))
    wait_for(lambda: _processed(worker) >= n, 90, "all records processed")
    alerts = _alerts(kenv, worker)
    drift = [a for a in alerts if a["kind"] == "data_drift"]
    assert [(a["feature"], a["status"]) for a in drift] == [("f0", "firing"), ("f0", "resolved")], \
        [(a["feature"], a["status"], a["detector"], a["window"]["last_offset"]) for a in alerts]
    firing, resolved = drift
    assert 3_000 <= firing["window"]["last_offset"] < 3_300
    assert resolved["resolution"] == "back_to_reference" and resolved["firing_alert_id"] == firing["alert_id"]
    assert resolved["window"]["first_offset"] >= 15_000  # the data that showed it back
    assert len(firing["detectors"]) >= 1 and set(firing["detectors"]) <= set(resolved["detectors"])
    keys = {m.key() for m in kenv.read_all(kenv.alerts, len(alerts), timeout=5)}
    assert keys == {b"m/v1/f0/data_drift"}


def test_an_upstream_break_of_eight_features_is_one_incident_that_stays_open(kenv):
    worker = kenv.start_worker(labels_topic="", window_events=5000, window_seconds=60)
    # model "broken": 8 of 10 features move at event 3,000 and never come back; model "calm" is stationary
    broken = list(_events(6_000, model="broken", features=10, moved=8, shifted=range(3_000, 10**9), seed=2))
    calm = list(_events(6_000, model="calm", features=10, moved=0, shifted=range(0), seed=3))
    kenv.produce([r for pair in zip(broken, calm) for r in pair])
    wait_for(lambda: _processed(worker) >= 12_000, 90, "all records processed")
    alerts = _alerts(kenv, worker)
    assert {a["model"] for a in alerts} == {"broken"}
    assert sorted(a["feature"] for a in alerts) == [f"f{j}" for j in range(8)]
    assert {a["status"] for a in alerts} == {"firing"}
    (incident,) = {a["incident_id"] for a in alerts}
    assert worker.metrics.registry.get_sample_value(
        "driftline_incident_features", {"model": "broken", "model_version": "v1", "incident_id": incident}) == 8
    assert len({m.partition() for m in kenv.read_all(kenv.alerts, len(alerts), timeout=5)}) == 1


def test_a_drift_present_from_the_first_record_against_a_profile_fires_at_once(kenv, tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({f"f{j}": rng.normal(size=20_000) for j in range(3)}), path)
    assert main(["reference", "build", str(path), "--model", "m", "--model-version", "v1", "-o",
                 str(tmp_path / "p.json"), "--publish", "--bootstrap-servers", kenv.broker.bootstrap_servers,
                 "--references-topic", kenv.references, "--topic-replication-factor", "1"]) == 0
    worker = kenv.start_worker(labels_topic="", window_events=5000, window_seconds=60)
    wait_for(lambda: worker.pipeline.references, 30, "the profile loaded")
    kenv.produce(_events(3_000, model="m", features=3, moved=1, shifted=range(0, 10**9), seed=8))
    wait_for(lambda: _processed(worker) >= 3_000, 60, "all records processed")
    alerts = _alerts(kenv, worker)
    assert [(a["feature"], a["status"]) for a in alerts] == [("f0", "firing")]
    assert alerts[0]["window"]["last_offset"] < 200, alerts[0]  # +1 sd: found within a couple of hundred events
    assert alerts[0]["reference"].startswith("profile@")


def test_accepting_the_new_normal_closes_the_incident_and_the_drift_stays_quiet(kenv, capsys):
    worker = kenv.start_worker(labels_topic="", window_events=5000, window_seconds=60)
    moved = range(2_000, 10**9)  # f0 moves by +1 sd at event 2,000 and stays there: the intended change
    kenv.produce(_events(9_000, model="m", features=2, moved=1, shifted=moved, seed=4))
    wait_for(lambda: _processed(worker) >= 9_000, 60, "the drifted records processed")
    (firing,) = [a for a in _alerts(kenv, worker)]
    assert (firing["feature"], firing["status"]) == ("f0", "firing")
    flags = ["--bootstrap-servers", kenv.broker.bootstrap_servers, "--alerts-topic", kenv.alerts,
             "--metrics-topic", kenv.metrics_topic, "--references-topic", kenv.references, "--group-id", kenv.group,
             "--topic-replication-factor", "1", "--broker-timeout-seconds", "10", "--timeout", "20"]
    assert main(["reference", "accept", "--model", "m", "--model-version", "v1", *flags]) == 0
    wait_for(lambda: ("m", "v1") in worker.pipeline.references, 30, "the accepted profile in force")
    kenv.produce(_events(6_000, model="m", features=2, moved=1, shifted=moved, seed=5, start=9_000))
    wait_for(lambda: _processed(worker) >= 15_000, 60, "the records after the accept processed")
    alerts = _alerts(kenv, worker)
    assert [(a["feature"], a["status"], a.get("resolution")) for a in alerts] == [
        ("f0", "firing", None), ("f0", "resolved", "reference_changed")], alerts
    assert alerts[1]["firing_alert_id"] == firing["alert_id"]
