"""Incidents: one firing and one resolved record per episode, resolved only when the data is back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from driftline.contract.event import SourceRecord
from driftline.detection.alerts import (BACK_TO_REFERENCE, FIRING, QUIET, REFERENCE_CHANGED, RESOLVED, AlertBook)
from driftline.detection.findings import Finding, WindowSpan
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.settings import MonitorSettings

T0 = 1_700_000_000_000


def _finding(t: float, feature: str = "x", kind: str = "data_drift", detector: str = "page_hinkley",
             version: str = "v") -> Finding:
    return Finding(model="m", model_version=version, feature=feature, kind=kind, detector=detector,
                   severity="warning", statistic=t, threshold=1.0, summary="s", reference="warmup",
                   window=WindowSpan("in", 0, int(t), int(t) + 10, int(t), int(t)), event_time_ms=int(t))


def _span(t: float) -> WindowSpan:
    return WindowSpan("in", 0, int(t), int(t) + 5, int(t), int(t) + 5)


def test_a_persisting_drift_is_one_firing_and_resolves_only_once_the_data_is_back():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    key = _finding(0).key
    out = book.observe(_finding(0), 0)
    assert [a["status"] for a in out] == [FIRING]
    # findings every minute for an hour, by three detectors: nothing more is published
    for i, t in enumerate(range(60_000, 3_600_000, 60_000)):
        detector = ("page_hinkley", "psi", "adwin")[i % 3]
        assert book.observe(_finding(t, detector=detector), t) == []
        assert book.health(key, False, t, _span(t)) == []
        assert book.tick(float(t)) == []
    assert book.open_incident(key)["detectors"] == ["page_hinkley", "psi", "adwin"]
    # the data is back from 3,600 s on; a "differs" report at 3,900 s restarts the span
    assert book.health(key, True, 3_600_000, _span(3_600_000)) == []
    assert book.tick(4_000_000.0) == []
    book.health(key, False, 3_900_000, _span(3_900_000))
    assert book.tick(4_300_000.0) == []  # 600 s after 3,600 s, but it differed at 3,900 s
    book.health(key, True, 4_000_000, _span(4_000_000))
    book.health(key, True, 4_300_000, _span(4_300_000))
    assert book.tick(4_599_000.0) == []
    (resolved,) = book.tick(4_600_000.0)
    assert resolved["status"] == RESOLVED and resolved["resolution"] == BACK_TO_REFERENCE
    assert resolved["firing_alert_id"] == out[0]["alert_id"]
    assert resolved["resolved_event_time"] == "2001-11-09T23:46:40.000Z" or resolved["resolved_event_time"]
    assert resolved["window"]["first_offset"] == 4_000_000 and resolved["window"]["last_offset"] == 4_300_005
    assert resolved["detectors"] == ["page_hinkley", "psi", "adwin"] and resolved["findings"] == 60
    assert book.open_incident(key) is None


def test_a_drift_without_health_reports_stays_open():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    book.observe(_finding(0), 0)
    assert book.tick(10_000_000.0) == []  # quiet for hours, but nobody said the data is back
    assert len(book.firing()) == 1


def test_checks_resolve_after_quiet_and_reopen_as_a_new_incident():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    f = _finding(0, kind="data_quality", detector="non_finite")
    assert f.key == "m/v/x/data_quality/non_finite"
    (first,) = book.observe(f, 0)
    assert book.observe(_finding(500_000, kind="data_quality", detector="non_finite"), 500_000) == []
    assert book.tick(1_000_000.0) == []
    (resolved,) = book.tick(1_100_000.0)
    assert resolved["resolution"] == QUIET
    (again,) = book.observe(_finding(2_000_000, kind="data_quality", detector="non_finite"), 2_000_000)
    assert again["status"] == FIRING and again["alert_id"] != first["alert_id"]
    assert again["incident_id"] != first["incident_id"]


def test_each_check_is_its_own_incident_but_drift_detectors_share_one():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    opened = []
    for detector in ("page_hinkley", "adwin", "psi"):
        opened += book.observe(_finding(1_000, detector=detector), 1_000)
    for check in ("non_finite", "type_change"):
        opened += book.observe(_finding(1_000, kind="data_quality", detector=check), 1_000)
    assert [a["detector"] for a in opened] == ["page_hinkley", "non_finite", "type_change"]


def test_features_opening_together_are_one_model_incident():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600, group_seconds=120)
    fired = []
    for i in range(8):
        fired += book.observe(_finding(10_000 + i * 5_000, feature=f"f{i}"), 10_000 + i * 5_000)
    fired += book.observe(_finding(20_000, feature="f0", kind="data_quality", detector="vanished_feature"), 20_000)
    assert len(fired) == 9 and len({a["incident_id"] for a in fired}) == 1
    incident = fired[0]["incident_id"]
    assert book.incidents() == {("m", "v", incident): 9}
    # another model version, and a feature opening long after, get incidents of their own
    (other,) = book.observe(_finding(20_000, feature="f0", version="w"), 20_000)
    (late,) = book.observe(_finding(900_000, feature="late"), 900_000)
    assert len({incident, other["incident_id"], late["incident_id"]}) == 3


def test_a_model_incident_closes_when_all_its_features_resolved():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=60, group_seconds=600)
    (a,) = book.observe(_finding(0, feature="a"), 0)
    for name in ("a",):
        book.health(_finding(0, feature=name).key, True, 1_000, _span(1_000))
    assert len(book.tick(100_000.0)) == 1
    assert book.incidents() == {}
    (b,) = book.observe(_finding(120_000, feature="b"), 120_000)  # within the group span, but a is over
    assert b["incident_id"] != a["incident_id"]


def test_a_new_reference_closes_the_open_drift_incidents_of_its_model_version():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    book.observe(_finding(0, feature="a"), 0)
    book.observe(_finding(0, feature="b", version="other"), 0)
    book.observe(_finding(0, feature="a", kind="data_quality", detector="non_finite"), 0)
    closed = book.close_model("m", "v", 50_000.0)
    assert [(a["feature"], a["resolution"]) for a in closed] == [("a", REFERENCE_CHANGED)]
    assert {f.model_version for f in book.firing()} == {"other", "v"}  # the check and the other version stay


def test_reminders_are_off_by_default_and_repeat_the_open_incident_when_on():
    quiet = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    quiet.observe(_finding(0), 0)
    assert quiet.tick(10_000_000.0) == []
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600, reminder_seconds=3600)
    (first,) = book.observe(_finding(0), 0)
    assert book.tick(3_599_000.0) == []
    (reminder,) = book.tick(3_600_000.0)
    assert reminder["status"] == FIRING and reminder["reminder"] is True
    assert reminder["incident_id"] == first["incident_id"] and reminder["alert_id"] != first["alert_id"]


# ------------------------------------------------------------- whole pipeline
def _stream(n: int, *, shifted: range, features: int = 1, moved: int = 1, step_ms: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shift = 1.0 if i in shifted else 0.0
        doc = {"model": "m", "model_version": "v", "timestamp": T0 + i * step_ms,
               "features": {f"f{j}": float(rng.normal() + (shift if j < moved else 0.0)) for j in range(features)}}
        out.append(SourceRecord("in", 0, i, None, b"m", orjson.dumps(doc)))
    return out


def _pipeline(**kw) -> Pipeline:
    monitor = MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=2000, window_events=5000, window_seconds=60.0)
    return Pipeline(PipelineSettings(monitor=monitor, cooldown_seconds=300.0, resolve_after_seconds=600.0, **kw))


def _run(p: Pipeline, recs, chunk: int = 1000):
    alerts = []
    summaries = []
    for i in range(0, len(recs), chunk):
        r = p.process(recs[i:i + chunk])
        alerts += r.alerts
        summaries += r.summaries
    return alerts, summaries


@pytest.mark.parametrize("seed", [1, 2])
def test_one_sd_shift_for_30000_events_is_one_firing_and_one_resolved_after_the_return(seed):
    """The issue's episode at 10 events/s: +1 sd from event 5,000 to 35,000, then back, until 60,000."""
    alerts, summaries = _run(_pipeline(), _stream(60_000, shifted=range(5_000, 35_000), seed=seed))
    drift = [a for a in alerts if a["kind"] == "data_drift"]
    assert [a["status"] for a in drift] == [FIRING, RESOLVED], [(a["status"], a["detector"]) for a in drift]
    firing, resolved = drift
    assert 5_000 <= firing["window"]["last_offset"] < 5_100
    assert resolved["window"]["first_offset"] >= 35_000  # the data that showed it back
    assert resolved["resolution"] == BACK_TO_REFERENCE and resolved["incident_id"] == firing["incident_id"]
    shown = [s["incident"] for s in summaries if "incident" in s]
    assert shown and all(i["alert_id"] == firing["alert_id"] for i in shown)
    assert max(i["findings"] for i in shown) > 1


def test_a_profile_rebuilt_from_the_same_data_changes_nothing_in_force():
    """Deterministic ids: republishing an unchanged profile neither restarts the detectors nor closes incidents."""
    from driftline.contract.event import InferenceEvent
    from driftline.reference.builder import ProfileBuilder

    rows = np.random.default_rng(3).normal(size=(20_000, 2))

    def build():
        builder = ProfileBuilder()
        builder.add(InferenceEvent("m", "v", None, None, {"f0": float(a), "f1": float(b)}, None) for a, b in rows)
        (profile,) = builder.result()
        return profile

    first, again = build(), build()
    assert first.id == again.id
    p = _pipeline()
    assert p.set_reference(first)
    alerts, _ = _run(p, _stream(3_000, shifted=range(0, 10**9), features=2))
    assert [a["status"] for a in alerts if a["kind"] == "data_drift"] == [FIRING]
    assert not p.set_reference(again)  # the same id: nothing to do
    later, _ = _run(p, [r._replace(offset=r.offset + 3_000) for r in _stream(1_000, shifted=range(0, 10**9), features=2)])
    assert [a for a in later if a["kind"] == "data_drift"] == []  # the incident stays open, nothing restarted
