import numpy as np

from driftline.detection.settings import MonitorSettings
from driftline.state.numeric import NumericState


def _state(seed=1):
    s = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    return NumericState(s.detector, warmup=2000, seed=seed)


def _feed(state, x, chunk):
    found = []
    for i in range(0, x.size, chunk):
        found += [(i + j, d.detector) for j, d, _ in state.update(x[i:i + chunk])]
    return found


def test_detection_positions_are_pinned_on_a_seeded_stream():
    rng = np.random.default_rng(42)
    x = np.concatenate([rng.normal(size=6000), rng.normal(size=2000) + 1.0])
    found = _feed(_state(), x, 1000)
    # the location CUSUM 46 values after the +1 sd shift; the spread CUSUM (on z², which a mean shift
    # raises too) agrees, and ADWIN later (its cut counts: the recent mean is away from the reference)
    assert found == [(6046, "page_hinkley"), (6096, "page_hinkley_spread"), (6479, "adwin")]


def test_batching_does_not_change_the_result():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(size=5000), rng.normal(size=3000) * 1.5])
    assert _feed(_state(), x, 997) == _feed(_state(), x, 64) == _feed(_state(), x, 8000)


def test_no_detection_during_warmup_and_on_a_stationary_stream():
    rng = np.random.default_rng(3)
    state = _state()
    assert _feed(state, rng.lognormal(size=60_000), 5000) == []
    assert state.warmed_up and state.moments.n + state.window_moments.n == 60_000


def test_a_detection_in_a_pair_completed_by_a_tiny_batch_points_into_that_batch():
    """Found by the soak benchmark: a pair of blocks mostly made of an earlier call's values,
    completed by a call with one value, gave a negative index (an IndexError upstream)."""
    rng = np.random.default_rng(42)
    x = np.concatenate([rng.normal(size=6000), rng.normal(size=2000) + 1.0])
    state = _state()
    state.update(x[:6000])
    found = []
    for i in range(6000, x.size):
        for j, det, _ in state.update(x[i:i + 1]):
            assert j == 0, j  # the only value of this call
            found.append((i, det.detector))
    assert found == [(6046, "page_hinkley"), (6096, "page_hinkley_spread"), (6479, "adwin")]  # as in large batches


def test_the_tie_breaking_generator_is_built_only_at_a_draw_and_draws_as_if_it_had_skipped():
    """A feature without ties never builds its generator (0.8 KB); its draws after skipped ones are those of
    ``default_rng(seed)`` advanced past them, as the eager generator gave."""
    state = _state(seed=9)
    state.update(np.random.default_rng(5).normal(size=3_000))  # 1,000 scored, none tied
    assert state._rng is None and state._skipped == 1_000
    eager = np.random.default_rng(9)
    eager.bit_generator.advance(1_000)
    assert state.draws(4).tolist() == eager.random(4).tolist()
    state._skipped += 7
    eager.bit_generator.advance(7)
    assert state._rng is not None and state.draws(3).tolist() == eager.random(3).tolist()
