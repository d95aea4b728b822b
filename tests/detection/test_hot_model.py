"""A hot model (one model over several partitions, on several workers): one alert per real drift."""

from __future__ import annotations

import numpy as np
import orjson

from driftline.config import load_settings
from driftline.contract.event import SourceRecord, build
from driftline.detection.alerts import FIRING, AlertBook
from driftline.detection.findings import Finding, WindowSpan
from driftline.detection.pipeline import Pipeline
from driftline.detection.published import alert_key
from driftline.transport.alert_feed import _firing
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000


def _records(partition: int, n: int, *, drift_at: int, seed: int) -> list[SourceRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shift = 1.5 if i >= drift_at else 0.0
        event = {"model": "hot", "model_version": "v1", "timestamp": T0 + i * 50,
                 "features": {"x": float(rng.normal(shift, 1)), "y": float(rng.normal(0, 1))}}
        out.append(build(SourceRecord, ("in", partition, i, None, b"hot", orjson.dumps(event), ())))
    return out


def _pipeline() -> Pipeline:
    return Pipeline(pipeline_settings(load_settings(bootstrap_servers="x:1", warmup=500, window_events=500, labels_topic="")))


def _firing_keys(alerts: list[dict]) -> dict[str, str]:
    return {alert_key(a): a["alert_id"] for a in alerts if a["status"] == FIRING}


def test_two_workers_finding_the_same_drift_publish_the_same_alert_ids():
    one = _pipeline().process(_records(0, 4_000, drift_at=2_000, seed=1))
    two = _pipeline().process(_records(1, 4_000, drift_at=2_000, seed=2))
    a, b = _firing_keys(one.alerts), _firing_keys(two.alerts)
    assert "hot/v1/x/data_drift" in a and "hot/v1/x/data_drift" in b
    shared = set(a) & set(b)
    assert shared and all(a[k] == b[k] for k in shared), (a, b)  # a consumer keeps one of each


def test_a_firing_seen_on_the_alerts_topic_holds_the_key_in_cooldown():
    first = _pipeline().process(_records(0, 4_000, drift_at=2_000, seed=1))
    second = _pipeline()
    for alert in first.alerts:
        firing = _firing(orjson.dumps(alert))
        if firing is not None:
            second.alerts.note_remote(firing.key, firing.event_time_ms)
    # the same drift on the other partition, a little later in event time
    out = second.process(_records(1, 4_000, drift_at=2_100, seed=2))
    assert not set(_firing_keys(out.alerts)) & set(_firing_keys(first.alerts))
    assert out.suppressed_findings > 0


def _finding(t: float, partition: int = 0) -> Finding:
    return Finding(model="m", model_version="v", feature="x", kind="data_drift", detector="psi", severity="warning",
                   statistic=1.0, threshold=0.2, summary="s", reference="warmup",
                   window=WindowSpan("in", partition, 0, 10, t, t), event_time_ms=t, details={})


def test_remote_firing_expires_after_the_cooldown_and_never_resolves_here():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    assert book.note_remote("m/v/x/data_drift", 1_000_000.0)
    assert not book.note_remote("m/v/x/data_drift", 999_000.0)  # older news changes nothing
    assert book.observe(_finding(1_100_000.0), 1_100_000.0) == []  # in the other worker's cooldown
    assert book.tick(2_000_000.0) == []  # not ours to resolve
    fired = book.observe(_finding(2_000_000.0), 2_000_000.0)
    assert [a["status"] for a in fired] == [FIRING]


def test_alert_ids_differ_between_episodes_and_statuses():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    a = book.observe(_finding(0.0), 0.0)[0]
    assert book.observe(_finding(300_000.0), 300_000.0) == []  # the same episode: absorbed
    book.health("m/v/x/data_drift", True, 310_000.0, _finding(310_000.0).window)
    resolved = book.tick(1_000_000.0)
    assert resolved and resolved[0]["firing_alert_id"] == a["alert_id"] != resolved[0]["alert_id"]
    b = book.observe(_finding(1_100_000.0), 1_100_000.0)[0]  # a new episode in another span
    assert b["alert_id"] not in (a["alert_id"], resolved[0]["alert_id"])
    book.health("m/v/x/data_drift", True, 1_100_100.0, _finding(1_100_100.0).window)
    assert book.tick(1_800_000.0)
    c = book.observe(_finding(1_800_000.0), 1_800_000.0)[0]  # and one more, in the same span as b
    assert c["status"] == FIRING and c["alert_id"] != b["alert_id"]
