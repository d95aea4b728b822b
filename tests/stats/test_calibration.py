import numpy as np
import pytest
from river import drift

from driftline.stats.calibration import adwin_delta, cusum_arl, page_hinkley_params


def test_threshold_meets_the_wanted_run_length():
    p = page_hinkley_params(false_alarm_rate=1e-6, design_shift=0.5, block=16)
    assert p.delta == pytest.approx(1.0)
    # two-sided in-control run length in values = block * one-sided / 2
    assert cusum_arl(0.0, p.delta, p.threshold) * p.block / 2 == pytest.approx(1e6, rel=1e-6)


def test_lower_rate_means_higher_threshold():
    a = page_hinkley_params(false_alarm_rate=1e-5, design_shift=0.5, block=16)
    b = page_hinkley_params(false_alarm_rate=1e-8, design_shift=0.5, block=16)
    assert b.threshold > a.threshold


def test_calibrated_page_hinkley_rarely_fires_on_noise_and_finds_a_shift():
    """A small simulation at a high design rate (the benchmark checks low ones)."""
    p = page_hinkley_params(false_alarm_rate=1e-5, design_shift=0.5, block=16)
    rng = np.random.default_rng(3)
    ph = drift.PageHinkley(min_instances=30, delta=p.delta, threshold=p.threshold, alpha=1.0)
    alarms = 0
    for x in rng.normal(size=50_000).tolist():  # 800k values' worth of blocks
        ph.update(x)
        alarms += ph.drift_detected
    assert alarms <= 1.5 * 800_000 * 1e-5  # about the design rate (8 expected)
    ph = drift.PageHinkley(min_instances=30, delta=p.delta, threshold=p.threshold, alpha=1.0)
    for i, x in enumerate((rng.normal(size=500) + np.r_[np.zeros(300), np.full(200, 2.0)]).tolist()):
        ph.update(x)
        if ph.drift_detected:
            break
    assert 300 <= i < 320


def test_invalid_rates_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="0"):
        page_hinkley_params(false_alarm_rate=0.0, design_shift=0.5, block=16)
    with pytest.raises(ValueError, match="1.5"):
        adwin_delta(false_alarm_rate=1.5)
