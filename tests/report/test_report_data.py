"""What the report shows, from a real replay of a drifting stream: order, thresholds, distributions."""

from __future__ import annotations

import copy

import pytest
from scipy import stats

from drifting import DRIFT_AT, MODEL, START_MS, STATIONARY, STEP_MS, replayed, training_profile
from driftline.report.data import QUANTILE_KEYS, WindowTests, assemble, parse_time


def only(report):
    (version,) = report.versions
    return version, {f.name: f for f in version.features}


def test_features_that_moved_come_first_in_order_of_their_first_signal():
    run = replayed(False)
    version, features = only(assemble(run.summaries, run.alerts, model=MODEL))
    moved = [f.name for f in version.moved]
    assert set(moved) == {"income", "channel", "prediction.default_probability"}
    assert [f.name for f in version.features][: len(moved)] == moved
    assert [f.moved_at for f in version.moved] == sorted(f.moved_at for f in version.moved)
    drift_time = START_MS + DRIFT_AT * STEP_MS
    for f in version.moved:
        assert f.moved_at >= drift_time
        # the first signal is the earliest firing alert or window over the threshold
        firing = [parse_time(a["event_time"]) for a in run.alerts if a["feature"] == f.name and a["status"] == "firing"]
        candidates = firing + ([f.first_over.x] if f.first_over else [])
        assert f.moved_at == min(candidates)
    for name in STATIONARY:
        assert features[name].moved_at is None and not features[name].alerts
        assert not any(p.over for p in features[name].points)


def test_windows_over_the_threshold_are_those_the_monitor_s_windowed_test_finds():
    """The report's alert condition is the monitor's: a window is marked over exactly when its PSI is above the
    threshold and its KS test significant (the windowed test's findings are absorbed by the incident the
    sequential detectors opened, so they are read from the summaries, not the alerts)."""
    run = replayed(False)
    _, features = only(assemble(run.summaries, run.alerts, model=MODEL))
    numeric = [s for s in run.summaries if s["feature"] == "income" and (s.get("drift") or {}).get("psi") is not None]
    income = features["income"]
    assert income.statistic == "psi" and len(income.points) == len(numeric)
    over = 0
    for point, summary in zip(income.points, numeric):
        d = summary["drift"]
        expected = d["psi"] > 0.2 and d["ks_p_value"] < summary["alpha"]
        assert point.over == expected and point.value == pytest.approx(d["psi"])
        over += expected
    assert over > 0


def test_chi_square_threshold_is_the_critical_value_at_the_windows_alpha():
    run = replayed(False)
    _, features = only(assemble(run.summaries, run.alerts, model=MODEL))
    channel = [s for s in run.summaries if s["feature"] == "channel" and s["drift"]]
    assert len(features["channel"].points) == len(channel)
    for point, summary in zip(features["channel"].points, channel):
        oracle = stats.chi2.isf(summary["alpha"], summary["drift"]["df"])
        assert point.threshold == pytest.approx(oracle, rel=1e-6)
        assert point.over == (summary["drift"]["p_value"] < summary["alpha"])


def test_another_test_and_threshold_change_the_statistic_and_what_is_over():
    run = replayed(False)
    tests = WindowTests("ks", "jensen_shannon", {"psi": 0.2, "ks": 0.5, "wasserstein_sd": 0.1, "jensen_shannon": 0.01})
    _, features = only(assemble(run.summaries, run.alerts, model=MODEL, tests=tests))
    income = features["income"]
    assert income.statistic == "ks" and {p.threshold for p in income.points} == {0.5}
    ks = [s["drift"]["ks"] for s in run.summaries if s["feature"] == "income" and s["drift"]["ks"] is not None]
    assert [p.value for p in income.points] == ks
    assert any(p.over for p in income.points) == (max(ks) > 0.5)
    assert features["channel"].statistic == "jensen_shannon"


def test_distributions_show_the_shift():
    run = replayed(False)
    _, features = only(assemble(run.summaries, run.alerts, model=MODEL))
    income = features["income"]
    ref, cur = income.reference_distribution, income.current_distribution
    assert ref.label == "warm-up" and list(ref.quantiles) == list(QUANTILE_KEYS)
    # income drops by about one sd after the drift: the latest window's median is far below the warm-up's
    spread = ref.quantiles["p75"] - ref.quantiles["p25"]
    assert cur.quantiles["p50"] < ref.quantiles["p50"] - 0.5 * spread
    channel = features["channel"]
    ref_c, cur_c = channel.reference_distribution.categories, channel.current_distribution.categories
    share = lambda cats, k: cats.get(k, 0) / sum(cats.values())  # noqa: E731
    assert share(cur_c, "mobile") > share(ref_c, "mobile") + 0.15  # 30 % -> 60 %
    assert share(cur_c, "web") < share(ref_c, "web") - 0.15  # 50 % -> 20 %
    age = features["age"]
    assert abs(age.current_distribution.quantiles["p50"] - age.reference_distribution.quantiles["p50"]) < 8


def test_reference_comes_from_the_supplied_profile_it_names():
    profile = training_profile()
    run = replayed(True)
    version, features = only(assemble(run.summaries, run.alerts, model=MODEL, profiles=[profile]))
    assert version.references == [profile.name] and version.profiles_supplied == [profile.name]
    income = features["income"]
    expected = profile.features[("features", "income")].sketch.get_quantiles([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99], True)
    assert list(income.reference_distribution.quantiles.values()) == pytest.approx(list(expected))
    assert income.reference_distribution.label == profile.name
    assert income.reference_missing_ratio == 0.0
    assert features["channel"].reference_distribution.categories == pytest.approx(
        {k: float(v) for k, v in profile.features[("features", "channel")].categories.items()})
    # Without the profile the report says so and falls back to the first window.
    version, features = only(assemble(run.summaries, run.alerts, model=MODEL))
    assert version.profiles_supplied == []
    assert "was not supplied" in features["income"].reference_distribution.note


def test_other_models_versions_and_junk_are_left_out():
    run = replayed(False)
    other = copy.deepcopy(run.summaries[:12])
    for s in other:
        s["model"] = "someone-else"
    v3 = copy.deepcopy(run.summaries[:6])
    for s in v3:
        s["model_version"] = "v3"
    junk = [{"type": "window_summary"}, {"type": "performance_summary", "model": MODEL}, "text", None,
            {"type": "window_summary", "model": MODEL, "model_version": "v2", "feature": "income", "window": "x"}]
    report = assemble(run.summaries + other + v3 + junk, run.alerts, model=MODEL, model_version="v2")
    version, features = only(report)
    assert version.model_version == "v2" and report.other_versions == ["v3"]
    assert set(features) == {"income", "channel", "prediction.default_probability", *STATIONARY}
    both = assemble(run.summaries + v3, run.alerts, model=MODEL)
    assert [v.model_version for v in both.versions] == ["v2", "v3"]


def test_counts_and_time_range():
    run = replayed(False)
    version, _ = only(assemble(run.summaries, run.alerts, model=MODEL))
    assert version.events == 6000 and version.windows == 12 and version.partitions == ["events.jsonl/0"]
    assert version.x_range == (START_MS, START_MS + 5999 * STEP_MS)
    assert len(version.alerts) == len(run.alerts)


def test_windows_without_event_time_are_placed_by_offset():
    run = replayed(False)
    summaries = copy.deepcopy(run.summaries)
    for s in summaries:
        s["window"]["last_event_time"] = None
    report = assemble(summaries, run.alerts, model=MODEL)
    assert not report.time_axis
    _, features = only(report)
    assert [p.x for p in features["age"].missing_points] == [float(o) for o in range(499, 6000, 500)]
