"""The worker against a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import gc
import urllib.request

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for
from driftline.collector import WORKER_THRESHOLDS
from driftline.errors import BrokerUnreachableError
from driftline.transport.worker import DEADLETTER_HEADERS, Worker

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def stream(n, shift_at, seed=0, model="fraud"):
    rng = np.random.default_rng(seed)
    for i in range(n):
        doc = {"model": model, "model_version": "v3", "event_id": f"e{i}", "timestamp": T0 + i * 10,
               "features": {"amount": float(rng.lognormal(3, 1) + (40.0 if i >= shift_at else 0.0)),
                            "age": float(rng.normal(40, 10)), "country": str(rng.choice(["de", "fr", "it"]))},
               "prediction": float(rng.random())}
        yield model.encode(), orjson.dumps(doc)


def processed(worker: Worker) -> float:
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_records_total")


def test_drift_alerts_only_the_shifted_feature_and_metrics_show_it(kenv):
    worker = kenv.start_worker()
    kenv.produce(stream(4000, 2500))
    wait_for(lambda: processed(worker) >= 4000, 60, "all records processed")
    alerts = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, 1, timeout=20)]
    assert alerts and {a["feature"] for a in alerts} == {"amount"}
    assert all(a["status"] == "firing" and a["kind"] == "data_drift" for a in alerts)
    a = alerts[0]
    assert a["window"]["last_offset"] >= 2500 and a["model"] == "fraud" and a["model_version"] == "v3"
    msgs = kenv.read_all(kenv.alerts, len(alerts), timeout=5)
    assert msgs[0].key() == f"fraud/v3/amount/{a['kind']}".encode()

    summaries = kenv.read_all(kenv.metrics_topic, 8 * 4, timeout=20)
    assert len(summaries) >= 8 * 4  # 4 features (3 + prediction) × 8 windows
    body = urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    alert_samples = [s for s in families["driftline_alerts"].samples if s.name == "driftline_alerts_total"]
    assert {s.labels["feature"] for s in alert_samples} == {"amount"}
    stat = [s for s in families["driftline_feature_drift_statistic"].samples if s.labels["feature"] == "amount"]
    assert stat
    events = [s for s in families["driftline_events"].samples if s.name == "driftline_events_total"]
    assert sum(s.value for s in events) == 4000
    assert "process_resident_memory_bytes" in families
    assert urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/readyz", timeout=5).status == 200


def test_every_bad_record_lands_in_the_dead_letter_topic_with_its_reason(kenv):
    bad = {
        "invalid_json": b"{nope",
        "not_an_object": b"[1]",
        "missing_model": b'{"features": {"a": 1}}',
        "invalid_model": b'{"model": 1, "features": {"a": 1}}',
        "invalid_features": b'{"model": "m", "features": 1}',
        "invalid_prediction": b'{"model": "m", "prediction": [1]}',
        "no_payload": b'{"model": "m"}',
        "too_large": b'{"model": "m", "features": {"a": "' + b"x" * 2000 + b'"}}',
        "empty_value": None,
    }
    worker = kenv.start_worker(max_record_bytes=1000)
    good = list(stream(20, 10**9, model="m"))
    items = [(b"k-" + r.encode(), v, [("trace", r.encode())]) for r, v in bad.items()]
    kenv.produce(good[:10] + items + good[10:])
    wait_for(lambda: processed(worker) >= 20 + len(bad), 60, "all records processed")
    dead = kenv.read_all(kenv.deadletter, len(bad), timeout=20)
    assert len(dead) == len(bad)
    for m in dead:
        headers = dict(m.headers())
        reason = headers["driftline.reason"].decode()
        assert m.key() == b"k-" + reason.encode()
        assert m.value() == bad[reason]
        assert headers["trace"] == reason.encode()  # original headers kept
        assert set(DEADLETTER_HEADERS) <= set(headers)
        assert headers["driftline.source.topic"].decode() == kenv.input
    samples = {s.labels["reason"]: s.value for f in worker.metrics.registry.collect() for s in f.samples
               if s.name == "driftline_dead_letters_total"}
    assert samples == {r: 1.0 for r in bad}
    events = [s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_events_total"]
    assert sum(events) == 20  # the good records around the bad ones were all monitored


def test_restarted_worker_resumes_from_committed_offsets(kenv):
    worker = kenv.start_worker()
    kenv.produce(stream(1500, 10**9, seed=1))
    wait_for(lambda: processed(worker) >= 1500, 60, "first part processed")
    kenv.stop_workers()
    kenv.produce(stream(1000, 10**9, seed=2))
    worker2 = kenv.start_worker()
    wait_for(lambda: processed(worker2) >= 1000, 60, "second part processed")
    kenv.stop_workers()
    # records come in offset order: a re-read of the first part would have
    # been counted before the second part was complete
    assert processed(worker2) == 1000
    assert processed(worker) == 1500


def test_unreachable_broker_is_reported_clearly(kenv):
    from driftline.demo.broker import free_port

    settings = kenv.settings(bootstrap_servers=f"127.0.0.1:{free_port()}", broker_timeout_seconds=2)
    with pytest.raises(BrokerUnreachableError, match="cannot reach Kafka at .*DRIFTLINE_BOOTSTRAP_SERVERS"):
        Worker(settings).run(install_signal_handlers=False)


def test_worker_runs_with_the_collector_tuned_and_restores_it(kenv):
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, whatever an earlier test left
    try:
        kenv.start_worker()
        assert gc.get_threshold() == WORKER_THRESHOLDS
        kenv.stop_workers()
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_worker_creates_missing_output_topics(kenv):
    kenv.start_worker()
    topics = kenv.admin.list_topics(timeout=10).topics
    assert {kenv.alerts, kenv.metrics_topic, kenv.deadletter} <= set(topics)
