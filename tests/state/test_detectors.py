"""The reference-relative CUSUMs: vectorised = scalar loop, re-arming, ``differs``, category CUSUMs."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detection.settings import MonitorSettings
from driftline.state.categorical import CategoricalState
from driftline.state.detectors import CAP, REARM, CusumBank, capped_cusum, crossings
from driftline.state.numeric import NumericState


def scalar_cusum(x, s0, cap):
    out, s = [], s0
    for v in x:
        s = min(cap, max(0.0, s + v))
        out.append(s)
    return out


def scalar_crossings(s, threshold, armed):
    found = []
    for i, v in enumerate(s):
        if armed and v > threshold:
            found.append(i)
            armed = False
        elif not armed and v <= REARM * threshold:
            armed = True
    return found, armed


# multiples of 1/8: sums are exact in floating point, so the vectorised form must equal the loop exactly
dyadic = st.integers(-40, 40).map(lambda k: k / 8.0)


@settings(max_examples=150, deadline=None)
@given(st.lists(dyadic, min_size=1, max_size=300), st.integers(0, 48).map(lambda k: k / 8.0),
       st.integers(1, 24).map(lambda k: k / 2.0))
def test_vectorised_cusum_equals_the_scalar_loop(x, s0, cap):
    s0 = min(s0, cap)
    got = capped_cusum(np.array(x)[:, None], np.array([s0]), np.array([cap]))[:, 0]
    assert got.tolist() == scalar_cusum(x, s0, cap)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=300), st.floats(0.5, 8.0), st.booleans())
def test_crossings_equal_the_scalar_loop(x, threshold, armed):
    s = np.array(scalar_cusum(x, 0.0, CAP * threshold))
    assert crossings(s, threshold, armed) == scalar_crossings(s, threshold, armed)


@settings(max_examples=50, deadline=None)
@given(st.lists(dyadic, min_size=2, max_size=400), st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_a_bank_gives_the_same_detections_however_the_stream_is_batched(x, cuts):
    thresholds = np.array([3.0, 5.0])
    inc = np.column_stack([np.array(x), -np.array(x)])
    whole = CusumBank(thresholds).update(inc)
    bank, found, start = CusumBank(thresholds), [], 0
    for size in cuts * 50:
        if start >= len(x):
            break
        found += [(start + r, c, v) for r, c, v in bank.update(inc[start:start + size])]
        start += size
    assert [(r, c) for r, c, _ in found] == [(r, c) for r, c, _ in whole]
    expected = sorted((r, c) for c in range(2) for r in scalar_crossings(
        scalar_cusum(inc[:, c].tolist(), 0.0, CAP * thresholds[c]), thresholds[c], True)[0])
    assert [(r, c) for r, c, _ in whole] == expected


def _numeric(seed=1):
    s = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    return NumericState(s.detector, warmup=2000, seed=seed)


def test_differs_holds_while_the_drift_lasts_and_turns_false_once_the_data_is_back():
    rng = np.random.default_rng(5)
    state = _numeric()
    state.update(rng.normal(size=4000))
    assert not state.differs
    found = state.update(rng.normal(size=3000) + 1.0)
    assert [d.detector for _, d, _ in found][:1] == ["page_hinkley"] and found[0][0] < 100
    assert len([1 for _, d, _ in found if d.detector == "page_hinkley"]) == 1  # one excursion, one detection
    assert state.differs
    # back to the reference: the capped sum falls at about k = 0.25 per value from 2h to h/2
    back = rng.normal(size=2000)
    h = float(state.detectors.cusums.threshold[0])
    turned = next(i for i in range(1, back.size + 1) if (state.update(back[i - 1:i]) or True) and not state.differs)
    assert 0.8 * (CAP - REARM) * h / 0.25 < turned < 1.6 * (CAP - REARM) * h / 0.25
    # ADWIN cuts when the data returns, but its window then sits at the reference: not a drift
    assert not [d for _, d, _ in state.update(rng.normal(size=4000))]


def test_category_cusums_find_a_30_point_mix_change_within_300_events():
    rng = np.random.default_rng(9)
    cats, before, after = ["a", "b", "c", "d", "e"], [0.4, 0.3, 0.15, 0.1, 0.05], [0.1, 0.6, 0.15, 0.1, 0.05]
    s = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    state = CategoricalState(max_categories=100, warmup=2000, share=s.category_share(1))
    _, quiet = state.update_detect(rng.choice(cats, 6000, p=before).tolist())
    assert quiet == [] and not state.differs
    _, found = state.update_detect(rng.choice(cats, 1000, p=after).tolist())
    assert found and found[0][0] < 300 and found[0][1].category in {"a", "b"}
    assert state.differs
    _, _ = state.update_detect(rng.choice(cats, 3000, p=before).tolist())
    assert not state.differs


def test_category_cells_are_bounded_by_max_categories():
    s = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    state = CategoricalState(max_categories=5, warmup=1000, share=s.category_share(1))
    state.update([f"c{i % 50}" for i in range(1000)])
    assert state.detector is not None and len(state.detector.names) == 5  # 4 names and __other__
    _, found = state.update_detect([f"new{i}" for i in range(400)])  # never seen: all __other__
    assert found and found[0][1].category == "__other__" and found[0][1].up
