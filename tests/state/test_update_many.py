"""``numeric.update_many`` gives exactly what a loop of ``NumericState.update`` gives, state by state."""

import numpy as np
import pytest
from datasketches import kll_doubles_sketch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.detection.settings import MonitorSettings
from driftline.state import detectors
from driftline.state.numeric import NumericState, update_many
from driftline.stats.moments import Moments

KINDS = ("normal", "discrete", "tiny", "rounded", "heavy")


def _stream(kind: str, seed: int, n: int, shift_at: int, shift: float, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "discrete":
        x = rng.poisson(2.0, size=n).astype(np.float64)
    elif kind == "heavy":
        x = rng.standard_t(2, size=n)
    elif kind == "rounded":
        x = np.round(rng.normal(size=n), 1)
    else:
        x = rng.normal(size=n)
    x[shift_at:] = x[shift_at:] * scale + shift
    # back to the reference near the end: the CUSUMs fall back and re-arm
    x[shift_at + (n - shift_at) // 2:] = rng.normal(size=n - shift_at - (n - shift_at) // 2)
    return x


def _state(kind: str, seed: int, warmup: int, features: int) -> NumericState:
    ms = MonitorSettings.calibrated(false_alarm_rate=1e-3, block=8)
    state = NumericState(ms.detector_for(features), warmup=warmup, seed=seed)
    if kind == "tiny":
        # a profile with a handful of values, some tied: an exact sketch, a grid of its values
        ref = np.round(np.random.default_rng(seed).normal(size=(4, 9)[seed % 2]), 1)
        sketch = kll_doubles_sketch(200)
        sketch.update(ref)
        state.use_reference(sketch, Moments.of(ref))
    return state


def _dump(s: NumericState) -> list:
    d = s.detectors
    walk = d.cusums.walk
    out = [s.window_moments.n, s.window_moments.mean, s.window_moments.m2, s.window_moments.min, s.window_moments.max,
           s.window_z_sum, s.window_z_sq, s.window_scored, s._pending_z.tolist(), s._recent_pairs.tolist(), d.run.tolist(),
           walk.w.tolist(), walk.e.tolist(), walk.s.tolist(), walk.high.tolist(), d.cusums.armed.tolist(),
           d.cusums.fed, d.values, d.adwin.width, d.adwin.estimation, s.window_sketch.n, s.warmed_up]
    wc = s.window_counts
    if wc is not None:
        out += [wc.cdf().tolist(), wc.cdf(strict=True).tolist(), wc.n, wc.above_excess, wc.below_excess]
    return out


def _plain(found):
    return [(i, tuple(det), effect) for i, det, effect in found]


# (few warm-up lengths and feature counts: each pair calibrates its thresholds once, which takes a while)
feature = st.tuples(st.sampled_from(KINDS), st.integers(0, 10_000), st.sampled_from((60, 250)), st.just(22),
                    st.sampled_from((0.0, 1.0, -1.0, 0.3)), st.sampled_from((1.0, 1.5, 0.6)))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(features=st.lists(feature, min_size=1, max_size=6), chunking=st.integers(0, 2 ** 32 - 1),
       small_rebase=st.booleans())
def test_update_many_equals_the_loop_of_update(features, chunking, small_rebase):
    mp = pytest.MonkeyPatch()
    if small_rebase:
        mp.setattr(detectors, "REBASE", 512)  # the walks' restarts fall inside chunks
    try:
        n = 1000
        streams = [_stream(kind, seed, n, int(warm + (n - warm) * 0.3), shift, scale)
                   for kind, seed, warm, _, shift, scale in features]
        alone = [_state(kind, seed, warm, k) for kind, seed, warm, k, _, _ in features]
        together = [_state(kind, seed, warm, k) for kind, seed, warm, k, _, _ in features]
        rng = np.random.default_rng(chunking)
        pos = [0] * len(features)
        equal = rng.random() < 0.5  # every state the same chunk length (the row-wise reductions)
        detections = 0
        while min(pos) < n:
            size = int(rng.choice((7, 50, 128, 300, 700)))
            items, expect = [], []
            for i in rng.permutation(len(features)).tolist():
                take = size if equal else int(rng.choice((0, 1, 3, 16, 64, 333, 700)))
                values = streams[i][pos[i]:pos[i] + take]
                pos[i] += values.size
                items.append((together[i], values))
                expect.append(_plain(alone[i].update(values)))
            got = [_plain(found) for found in update_many(items)]
            assert got == expect
            detections += sum(map(len, got))
            for a, b in zip(alone, together):
                if rng.random() < 0.2:
                    assert _dump(a) == _dump(b)
                if rng.random() < 0.03:
                    a.reset_window()
                    b.reset_window()
        for a, b in zip(alone, together):
            assert _dump(a) == _dump(b)
    finally:
        mp.undo()


def test_update_many_finds_detections_inside_chunks_of_many_states():
    """A deterministic case: a +1 sd shift in some of 20 states, chunks of 50 values."""
    ms = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    rng = np.random.default_rng(5)
    streams = [rng.normal(size=3000) + np.where(np.arange(3000) >= 1500, 1.0 if i % 3 == 0 else 0.0, 0.0)
               for i in range(20)]
    loop = [NumericState(ms.detector_for(22), warmup=500, seed=i) for i in range(20)]
    many = [NumericState(ms.detector_for(22), warmup=500, seed=i) for i in range(20)]
    found_loop, found_many = [], []
    for start in range(0, 3000, 50):
        for i, (a, b) in enumerate(zip(loop, many)):
            found_loop += [(i, start + j, d.detector) for j, d, _ in a.update(streams[i][start:start + 50])]
        for i, found in enumerate(update_many([(b, streams[i][start:start + 50]) for i, b in enumerate(many)])):
            found_many += [(i, start + j, d.detector) for j, d, _ in found]
    assert sorted(found_loop) == sorted(found_many)
    assert {i for i, _, d in found_many if d == "page_hinkley"} >= {i for i in range(20) if i % 3 == 0}


def test_update_detect_many_equals_the_loop_of_update_detect():
    from driftline.state.categorical import CategoricalState, update_detect_many

    rng = np.random.default_rng(3)
    share = MonitorSettings.calibrated(false_alarm_rate=1e-3).category_share(22)
    make = lambda: [CategoricalState(max_categories=8, warmup=200, share=share) for _ in range(3)]  # noqa: E731
    alone, together = make(), make()
    for _ in range(12):
        chunks = [[str(v) for v in rng.choice(list("abcdz"), size=int(rng.integers(0, 120)),
                                              p=(0.4, 0.3, 0.2, 0.05, 0.05))] for _ in range(3)]
        expect = [a.update_detect(c) for a, c in zip(alone, chunks)]
        assert update_detect_many(list(zip(together, chunks))) == expect


def test_monitors_of_one_profile_share_its_grid():
    ref = np.random.default_rng(4).normal(size=5000)
    sketch = kll_doubles_sketch(200)
    sketch.update(ref)
    copy = kll_doubles_sketch.deserialize(sketch.serialize())  # an equal profile read again
    ms = MonitorSettings.calibrated(false_alarm_rate=1e-3)
    a, b = (NumericState(ms.detector_for(22), warmup=100, seed=i) for i in range(2))
    a.use_reference(sketch, Moments.of(ref))
    b.use_reference(copy, Moments.of(ref))
    assert a.grid.points is b.grid.points
    other = kll_doubles_sketch(200)
    other.update(ref[:4000])
    b.use_reference(other, Moments.of(ref[:4000]))
    assert a.grid.points is not b.grid.points
