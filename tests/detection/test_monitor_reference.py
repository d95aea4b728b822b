"""Monitors against reference profiles: file references, hot swaps, windowed tests, family-wise budget."""

import functools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftline.contract.event import InferenceEvent
from driftline.detection.findings import Kind
from driftline.detection.monitor import WARMUP, Check, LocatedEvent, ModelMonitor
from driftline.detection.settings import MonitorSettings
from driftline.reference.builder import ProfileBuilder
from driftline.state.detectors import NumericDetectors
from test_monitor import run as run_chunks

T0 = 1_700_000_000_000
DRIFT = {"page_hinkley", "page_hinkley_spread", "adwin", "psi", "ks", "wasserstein_sd", "chi_square", "jensen_shannon",
         "category_cusum"}


def settings(**kw):
    return MonitorSettings.calibrated(false_alarm_rate=kw.pop("false_alarm_rate", 2e-7), warmup=kw.pop("warmup", 2000),
                                      window_events=kw.pop("window_events", 5000), window_seconds=None, **kw)


def profile_of(columns, model="m", version="v1"):
    n = len(next(iter(columns.values())))
    b = ProfileBuilder()
    b.add([InferenceEvent(model, version, None, None, {k: v[i] for k, v in columns.items()}, None) for i in range(n)])
    (p,) = b.result()
    return p


def events_of(columns, start=0):
    names = list(columns)
    cols = [list(columns[k]) for k in names]
    return [LocatedEvent(start + i, InferenceEvent("m", "v1", None, T0 + (start + i) * 10, dict(zip(names, vals)), None))
            for i, vals in enumerate(zip(*cols))]


run = functools.partial(run_chunks, chunk=1000)


def normal(rng, n, shift=0.0):
    return (rng.normal(size=n) + shift).tolist()


def test_drift_present_from_the_first_record_is_caught_with_a_file_reference_and_missed_with_warmup():
    rng = np.random.default_rng(11)
    reference = profile_of({"x": normal(rng, 20_000), "y": normal(rng, 20_000)})
    # production is shifted by 0.6 sd from the very first record; y is unchanged
    live = events_of({"x": normal(rng, 20_000, 0.6), "y": normal(rng, 20_000)})

    with_profile, summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                               settings=settings(), reference=reference), live)
    drift = [f for f in with_profile if f.detector in DRIFT]
    assert drift and {f.feature for f in drift} == {"x"}
    assert {f.reference for f in drift} == {reference.name}
    # The sequential detectors test the scores against the reference itself (mean 0): the location
    # CUSUM finds the shift within a few hundred events, long before the first window closes (4999).
    first = min(drift, key=lambda f: f.window.last_offset)
    assert first.detector == "page_hinkley" and first.window.last_offset < 300
    assert {"page_hinkley", "psi"} <= {f.detector for f in drift}
    assert all(s["reference"] == reference.name for s in summaries)

    warm, warm_summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                            settings=settings()), live)
    assert not [f for f in warm if f.detector in DRIFT]  # the shifted warm-up hides it
    assert {s["reference"] for s in warm_summaries} == {WARMUP}


def test_stationary_stream_against_its_own_distribution_is_quiet():
    rng = np.random.default_rng(12)
    cats = ["a", "b", "c"]
    reference = profile_of({"x": rng.lognormal(size=50_000).tolist(), "c": rng.choice(cats, 50_000).tolist()})
    live = events_of({"x": rng.lognormal(size=60_000).tolist(), "c": rng.choice(cats, 60_000).tolist()})
    findings, summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                           settings=settings(), reference=reference), live)
    assert findings == []
    x = [s for s in summaries if s["feature"] == "x"]
    assert len(x) == 12 and max(s["drift"]["psi"] for s in x) < 0.02
    assert min(s["drift"]["ks_p_value"] for s in x) > 1e-4


def test_hot_swap_renames_the_reference_and_restarts_the_detectors():
    rng = np.random.default_rng(13)
    old = profile_of({"x": normal(rng, 10_000)})
    new = profile_of({"x": normal(rng, 10_000, 3.0)})  # e.g. a retrained model's data
    mon = ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=settings(), reference=old)
    quiet, _ = run(mon, events_of({"x": normal(rng, 5000)}))
    assert quiet == []
    mon.use_reference(new)
    found, summaries = run(mon, events_of({"x": normal(rng, 5000)}, start=5000))
    assert found and {f.reference for f in found} == {new.name} and {f.feature for f in found} == {"x"}
    assert summaries[-1]["reference"] == new.name
    mon.use_reference(None)  # withdrawn: back to a fresh warm-up
    _, summaries = run(mon, events_of({"x": normal(rng, 5000)}, start=10_000))
    assert summaries[-1]["reference"] == WARMUP and summaries[-1]["warmed_up"] is True


def test_features_outside_the_profile_and_profile_features_never_sent():
    rng = np.random.default_rng(14)
    reference = profile_of({"x": normal(rng, 5000), "gone": normal(rng, 5000)})
    mon = ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=settings(), reference=reference)
    findings, summaries = run(mon, events_of({"x": normal(rng, 5000), "extra": normal(rng, 5000)}))
    checks = {(f.feature, f.detector, f.reference) for f in findings}
    assert ("extra", Check.NOT_IN_REFERENCE, WARMUP) in checks
    assert ("gone", Check.VANISHED_FEATURE, reference.name) in checks
    extra = [s for s in summaries if s["feature"] == "extra"]
    assert extra[-1]["reference"] == WARMUP


def test_missing_rate_is_compared_with_the_profile():
    rng = np.random.default_rng(15)
    ref = normal(rng, 10_000)
    reference = profile_of({"x": [None if i % 100 == 0 else v for i, v in enumerate(ref)]})  # 1 % missing
    live = [None if rng.random() < 0.2 else v for v in normal(rng, 5000)]  # 20 % missing
    findings, _ = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=settings(),
                                   reference=reference), events_of({"x": live}))
    (missing,) = [f for f in findings if f.detector == Check.MISSING_RATE]
    assert missing.details["reference_missing_ratio"] == pytest.approx(0.01)
    assert missing.reference == reference.name


@pytest.mark.parametrize("test, detector", [("chi_square", "chi_square"), ("psi", "psi"),
                                            ("jensen_shannon", "jensen_shannon"), ("off", None)])
def test_categorical_window_test_is_configurable(test, detector):
    rng = np.random.default_rng(16)
    reference = profile_of({"c": rng.choice(["a", "b", "c"], 20_000, p=[0.5, 0.3, 0.2]).tolist()})
    live = events_of({"c": rng.choice(["a", "b", "c"], 5000, p=[0.2, 0.6, 0.2]).tolist()})
    findings, _ = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                   settings=settings(categorical_test=test), reference=reference), live)
    # the category CUSUMs find the mix change whatever the windowed test (within a few hundred events)
    cusum = [f for f in findings if f.detector == "category_cusum"]
    assert cusum and cusum[0].window.last_offset < 300 and cusum[0].kind == Kind.DATA_DRIFT
    findings = [f for f in findings if f.detector != "category_cusum"]
    assert [f.detector for f in findings] == ([detector] if detector else [])
    if detector:
        assert findings[0].kind == Kind.DATA_DRIFT and findings[0].details["p_value"] < findings[0].details["alpha"]


@pytest.mark.parametrize("test", ["psi", "ks", "wasserstein_sd"])
def test_numeric_window_test_alerts_on_its_statistic(test):
    rng = np.random.default_rng(17)
    reference = profile_of({"x": normal(rng, 20_000)})
    live = events_of({"x": normal(rng, 5000, 1.0)})
    findings, summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                           settings=settings(numeric_test=test), reference=reference), live)
    (window,) = [f for f in findings if f.detector == test]
    assert window.statistic == summaries[-1]["drift"][test] > window.threshold
    assert window.details["ks_p_value"] < window.details["alpha"]


def test_small_windows_cannot_alert_on_noise_alone():
    """PSI over 30 values is noisy (its mean is about 9/30); the KS gate keeps it quiet."""
    rng = np.random.default_rng(18)
    reference = profile_of({"x": normal(rng, 20_000)})
    findings, summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                           settings=settings(window_events=30), reference=reference),
                              events_of({"x": normal(rng, 6000)}))
    psis = [s["drift"]["psi"] for s in summaries]
    assert max(psis) > 0.2  # the statistic alone would have alerted
    assert not [f for f in findings if f.detector == "psi"]


def test_window_statistics_agree_with_scipy_and_numpy():
    rng = np.random.default_rng(19)
    ref_x, live_x = rng.normal(size=300), rng.normal(size=150) + 0.4  # below the sketches' k: exact
    ref_c = rng.choice(["a", "b", "c", "d"], 300, p=[0.4, 0.3, 0.2, 0.1])
    live_c = rng.choice(["a", "b", "c", "d"], 150, p=[0.25, 0.25, 0.25, 0.25])
    reference = profile_of({"x": ref_x.tolist(), "c": ref_c.tolist()})
    _, summaries = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                    settings=settings(window_events=150), reference=reference),
                       events_of({"x": live_x.tolist(), "c": live_c.tolist()}))
    x = next(s for s in summaries if s["feature"] == "x")["drift"]
    c = next(s for s in summaries if s["feature"] == "c")["drift"]
    ks = stats.ks_2samp(ref_x, live_x)
    assert x["ks"] == pytest.approx(ks.statistic, abs=1 / 150 + 1e-9)
    assert x["ks_p_value"] == pytest.approx(stats.kstwobign.sf(np.sqrt(300 * 150 / 450) * x["ks"]), rel=1e-6)
    assert x["ks_p_value"] == pytest.approx(ks.pvalue, rel=0.5)  # asymptotic vs exact distribution
    assert x["wasserstein_sd"] == pytest.approx(stats.wasserstein_distance(ref_x, live_x) / np.std(ref_x, ddof=1), abs=0.02)
    edges = np.sort(ref_x)[np.arange(1, 10) * 30 - 1]  # the reference deciles (inverted CDF)
    r = np.diff(np.r_[0, np.searchsorted(np.sort(ref_x), edges, side="right"), 300]) / 300 + 1e-4
    w = np.diff(np.r_[0, np.searchsorted(np.sort(live_x), edges, side="right"), 150]) / 150 + 1e-4
    r, w = r / r.sum(), w / w.sum()
    assert x["psi"] == pytest.approx(float(np.sum((w - r) * np.log(w / r))), rel=1e-6)

    names = ["a", "b", "c", "d"]
    table = np.array([[np.sum(ref_c == n) for n in names], [np.sum(live_c == n) for n in names]])
    chi2, p, df, _ = stats.chi2_contingency(table, correction=False)
    assert (c["chi_square"], c["p_value"], c["df"]) == (pytest.approx(chi2), pytest.approx(p), df)
    assert c["jensen_shannon"] == pytest.approx(jensenshannon(table[0], table[1], base=2) ** 2, rel=1e-9)


def test_the_budget_is_split_over_a_models_features():
    s = settings()
    one, many = s.detector_for(1), s.detector_for(200)
    assert many.share == pytest.approx(one.share / 200) and many.adwin_delta < one.adwin_delta
    h_one, h_many = (NumericDetectors(p).cusums.threshold for p in (one, many))
    assert (h_many > h_one).all()
    # thresholds grow with log(features): 200 features cost far less than 200x
    assert (h_many / h_one < 1.5).all()
    assert s.window_alpha(200, 5000) == pytest.approx(s.window_alpha(1, 5000) / 200)
    rng = np.random.default_rng(20)
    cols = {f"f{i}": normal(rng, 600) for i in range(200)}
    mon = ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=s)
    run(mon, events_of(cols))
    assert mon.family == 200
    assert mon.features[("features", "f0")].numeric.params == many


def test_windows_by_event_time_only():
    rng = np.random.default_rng(22)
    s = MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=500, window_events=0, window_seconds=10.0)
    mon = ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=s)
    _, summaries = run(mon, events_of({"x": normal(rng, 7000)}))  # 10 ms apart: 1,000 events per window
    assert [x["records"] for x in summaries] == [1000] * 6


def test_features_that_appear_later_tighten_the_earlier_ones_too():
    rng = np.random.default_rng(23)
    mon = ModelMonitor(topic="in", partition=0, model="m", model_version="v1", settings=settings(warmup=100))
    run(mon, events_of({"a": normal(rng, 300)}))
    before = mon.features[("features", "a")].numeric.detectors
    assert before.params == settings().detector_for(1)
    run(mon, events_of({f"f{i}": normal(rng, 300) for i in range(200)} | {"a": normal(rng, 300)}, start=300))
    a = mon.features[("features", "a")].numeric
    assert mon.family == 201
    assert a.params == a.detectors.params == settings().detector_for(201)
    assert (a.detectors.cusums.threshold == a.detectors._thresholds(settings().detector_for(201))).all()
    assert a.detectors.adwin.delta == settings().detector_for(201).adwin_delta


def test_drifts_present_from_the_first_record_are_found_within_the_delay_targets():
    """Against a profile the CUSUMs know what the scores should be: no window, no warm-up to wait for."""
    rng = np.random.default_rng(24)
    cats, before, after = ["a", "b", "c", "d", "e"], [0.4, 0.3, 0.15, 0.1, 0.05], [0.1, 0.6, 0.15, 0.1, 0.05]
    reference = profile_of({"x": normal(rng, 20_000), "s": normal(rng, 20_000),
                            "c": rng.choice(cats, 20_000, p=before).tolist()})
    live = events_of({"x": normal(rng, 2000, 1.0), "s": (rng.normal(size=2000) * 1.5).tolist(),
                      "c": rng.choice(cats, 2000, p=after).tolist()})
    findings, _ = run(ModelMonitor(topic="in", partition=0, model="m", model_version="v1",
                                   settings=settings(), reference=reference), live)
    first = {}
    for f in findings:
        first.setdefault(f.feature, f)
    assert first["x"].detector == "page_hinkley" and first["x"].window.last_offset < 100
    assert first["s"].detector == "page_hinkley_spread" and first["s"].window.last_offset < 250
    assert first["c"].detector == "category_cusum" and first["c"].window.last_offset < 300
    assert first["c"].details["category"] in {"a", "b"} and first["c"].kind == Kind.DATA_DRIFT
