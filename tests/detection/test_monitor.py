import numpy as np

from driftline.contract.event import InferenceEvent
from driftline.detection.findings import Kind
from driftline.detection.monitor import Check, LocatedEvent, ModelMonitor
from driftline.detection.settings import MonitorSettings

T0 = 1_700_000_000_000


def monitor(**kw):
    settings = MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=kw.pop("warmup", 500),
                                          window_events=kw.pop("window_events", 500), **kw)
    return ModelMonitor(topic="in", partition=2, model="m", model_version="v1", settings=settings)


def ev(i, features=None, outputs=None):
    return LocatedEvent(i, InferenceEvent("m", "v1", None, T0 + i * 10, features, outputs))


def run(mon, events, chunk=250):
    findings, summaries = [], []
    for i in range(0, len(events), chunk):
        out = mon.process(events[i:i + chunk])
        findings += out.findings
        summaries += out.summaries
    return findings, summaries


def test_drift_on_one_feature_only_and_prediction_drift_kind():
    rng = np.random.default_rng(1)
    events = [ev(i, {"x": float(rng.normal() + (1.0 if i >= 3000 else 0.0)), "y": float(rng.normal()),
                     "c": str(rng.choice(["a", "b"]))},
                 {"prediction": float(rng.normal() + (1.0 if i >= 3000 else 0.0))}) for i in range(5000)]
    findings, summaries = run(monitor(), events)
    assert {f.feature for f in findings} == {"x", "prediction"}
    assert all(f.window.last_offset >= 3000 for f in findings)
    kinds = {f.feature: f.kind for f in findings}
    assert kinds == {"x": Kind.DATA_DRIFT, "prediction": Kind.PREDICTION_DRIFT}
    first = min(f.window.last_offset for f in findings if f.feature == "x")
    assert first < 3100
    f = next(f for f in findings if f.feature == "x")
    assert f.window.partition == 2 and f.window.topic == "in" and f.window.first_offset <= f.window.last_offset
    assert "moved up" in f.summary or "ADWIN" in f.summary or "Spread" in f.summary
    # one summary per feature per window of 500
    assert len(summaries) == 4 * 10
    s = summaries[-1]
    assert {"count", "missing_ratio", "window", "drift"} <= set(s)


def test_category_mix_change_alerts_within_two_windows():
    rng = np.random.default_rng(2)
    events = [ev(i, {"c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2] if i < 2250 else [0.2, 0.6, 0.2]))})
              for i in range(4000)]
    findings, _ = run(monitor(), events)
    hits = [f for f in findings if f.detector == Check.CHI_SQUARE]
    assert hits and hits[0].window.last_offset <= 2999  # window 2000-2499 or 2500-2999


def test_data_quality_findings():
    rng = np.random.default_rng(3)
    events = []
    for i in range(3000):
        feats = {"num": float(rng.normal()), "gone": float(rng.normal()), "sparse": float(rng.normal())}
        if i >= 1500:
            del feats["gone"]
        if i >= 1500 and rng.random() < 0.5:
            feats["sparse"] = None
        if i == 1700:
            feats["num"] = "oops"
        if i == 1800:
            feats["num"] = float("nan")
        if i == 1900:
            feats["num"] = [1, 2]
        if i >= 2000:
            feats["brand_new"] = 1.0
        events.append(ev(i, feats))
    findings, summaries = run(monitor(), events)
    checks = {(f.feature, f.detector) for f in findings if f.kind == Kind.DATA_QUALITY}
    assert ("num", Check.TYPE_CHANGE) in checks
    assert ("num", Check.NON_FINITE) in checks
    assert ("num", Check.INVALID_VALUE) in checks
    assert ("gone", Check.VANISHED_FEATURE) in checks
    assert ("sparse", Check.MISSING_RATE) in checks
    assert ("brand_new", Check.NEW_FEATURE) in checks
    num = [s for s in summaries if s["feature"] == "num"]
    assert sum(s["type_mismatches"] for s in num) == 1 and sum(s["non_finite"] for s in num) == 1


def test_separate_feature_and_prediction_records_do_not_count_as_missing():
    rng = np.random.default_rng(4)
    events = []
    for i in range(3000):
        if i % 2:
            events.append(ev(i, {"x": float(rng.normal())}))
        else:
            events.append(ev(i, None, {"prediction": float(rng.random())}))
    findings, summaries = run(monitor(), events)
    assert findings == []
    assert all(s["missing_ratio"] == 0.0 for s in summaries)


def test_time_windows_close_on_event_time():
    mon = monitor(window_events=10_000, window_seconds=1.0)
    events = [ev(i, {"x": float(i % 7)}) for i in range(1000)]  # 10 ms apart → 100 per second
    _, summaries = run(mon, events, chunk=333)
    assert len(summaries) == 9
    assert all(s["records"] == 100 for s in summaries)


def test_feature_cap_is_counted():
    mon = monitor(max_features=3)
    out = mon.process([ev(i, {f"f{j}": 1.0 for j in range(5)}) for i in range(10)])
    assert len(mon.features) == 3 and out.overflow_features == 2


def test_a_name_spelt_like_the_bounded_form_of_another_is_a_feature_of_its_own():
    """A producer cannot pose as a bounded feature by sending its kept name: once that feature is known,
    the literal name is bounded again (a feature of its own), in later chunks as in the first."""
    from driftline.contract.names import bounded

    mon = monitor()
    long_name = "x" * 400
    kept = bounded(long_name, mon.settings.max_name_chars)
    mon.process([ev(i, {long_name: 1.0}) for i in range(5)])
    assert set(mon.features) == {("features", kept)}
    out = mon.process([ev(5 + i, {kept: 2.0}) for i in range(5)])
    assert set(mon.features) == {("features", kept), ("features", bounded(kept, mon.settings.max_name_chars))}
    assert mon.features[("features", kept)].present == 5
    assert any(f.detector == Check.INVALID_NAME for f in out.findings)
