"""The size a detection states is the size of the change, read over the data that shows it (issue 14, 7)."""

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from driftline.detection.settings import MonitorSettings
from driftline.state.numeric import NumericState
from driftline.stats.moments import Moments

SEEDS = range(8)


def _first_detections(mode: str, seed: int, shift: float, scale: float) -> dict:
    ms = MonitorSettings.calibrated(false_alarm_rate=2e-7)
    rng = np.random.default_rng(seed)
    state = NumericState(ms.detector_for(22), warmup=2000, seed=seed)
    if mode == "profile":
        ref = rng.normal(size=20_000)
        sketch = kll_doubles_sketch(200)
        sketch.update(ref)
        state.use_reference(sketch, Moments.of(ref))
    else:
        state.update(rng.normal(size=2000))
    state.update(rng.normal(size=3000))  # in control, long enough for the CUSUMs to forget warm-up
    x = rng.normal(size=3000) * scale + shift
    first: dict = {}
    for i in range(0, x.size, 500):
        for j, det, effect in state.update(x[i:i + 500]):
            first.setdefault(det.detector, effect)
    return first


@pytest.mark.parametrize("mode", ["warmup", "profile"])
@pytest.mark.parametrize("shift", [1.0, -1.0])
def test_a_mean_shift_is_stated_at_its_size(mode, shift):
    stated = [_first_detections(mode, seed, shift, 1.0)["page_hinkley"][0] for seed in SEEDS]
    # the run since the CUSUM last left 0 is some 40-60 values: each estimate is within half of the
    # shift, their mean within a quarter (the summary before read 256 values that were mostly before it)
    assert all(abs(s - shift) <= 0.5 * abs(shift) for s in stated), stated
    assert abs(np.mean(stated) - shift) <= 0.25 * abs(shift), stated


@pytest.mark.parametrize("mode", ["warmup", "profile"])
def test_a_wider_spread_is_stated_at_its_size(mode):
    found = [_first_detections(mode, seed, 0.0, 1.5) for seed in SEEDS]
    spread = [f["page_hinkley_spread"][1] for f in found]
    # (a profile's grid comes from a KLL sketch, which compacts at random: the runs vary from run to run)
    assert all(abs(s - 1.5) <= 0.4 * 1.5 for s in spread), spread
    assert abs(np.mean(spread) - 1.5) <= 0.25 * 1.5, spread
    assert all(abs(f["page_hinkley_spread"][0]) < 0.5 for f in found)  # and the mean did not move


def test_adwin_states_the_shift_over_blocks_after_the_change():
    stated = [_first_detections("warmup", seed, 1.0, 1.0)["adwin"][0] for seed in SEEDS]
    assert all(abs(s - 1.0) <= 0.25 for s in stated), stated
