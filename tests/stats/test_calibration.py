import math

import numpy as np
import pytest
from scipy import stats

from driftline.stats import calibration as cal
from driftline.stats.calibration import (adwin_delta, bernoulli_increments, bernoulli_threshold, chi2_cusum_arl,
                                         cusum_arl, location_threshold, markov_arl, reference_bias_variance,
                                         spread_design, spread_thresholds)


def simulated_arl(sample, h, runs=3000, seed=0, limit=200_000):
    """Mean run length of ``S = max(0, S + X) > h`` over ``runs`` chains (``sample(rng, n)`` draws increments)."""
    rng = np.random.default_rng(seed)
    s = np.zeros(runs)
    alive = np.ones(runs, dtype=bool)
    length = np.zeros(runs)
    t = 0
    while alive.any() and t < limit:
        t += 1
        idx = np.flatnonzero(alive)
        s[idx] = np.maximum(0.0, s[idx] + sample(rng, idx.size))
        done = idx[s[idx] > h]
        length[done] = t
        alive[done] = False
    return length.mean(), length.std() / math.sqrt(runs)


def test_location_threshold_meets_the_wanted_run_length():
    h = location_threshold(1e-6, 0.25)
    # two sides: each one-sided run length is twice the wanted one
    assert 1.0 / (2.0 / cusum_arl(0.0, 0.25, h)) == pytest.approx(1e6, rel=0.02)
    assert location_threshold(1e-8, 0.25) > h
    # the reference's own error costs a higher threshold, more for a smaller reference
    assert location_threshold(1e-6, 0.25, 1 / 20_000) > h
    assert location_threshold(1e-6, 0.25, 1 / 2000) > location_threshold(1e-6, 0.25, 1 / 20_000)


def test_the_markov_chain_agrees_with_siegmund_for_normal_increments():
    cdf = lambda x: stats.norm.cdf(x + 0.25)  # noqa: E731
    for h in (5.0, 10.0):
        assert markov_arl(cdf, h, 400) == pytest.approx(cusum_arl(0.0, 0.25, h), rel=0.01)


@pytest.mark.parametrize("ratio", [2.25, 1 / 2.25])
def test_spread_cusum_run_length_agrees_with_simulation(ratio):
    g, c = spread_design(ratio)
    h = 4.0
    arl = chi2_cusum_arl(g, c, 1.0, h)
    mean, se = simulated_arl(lambda rng, n: g * rng.chisquare(1, n) - c, h)
    assert arl == pytest.approx(mean, abs=4 * se + 0.01 * mean)
    # beyond the chain's threshold the run length is extrapolated with exp(θh), θ = 1 for a likelihood ratio
    assert cal._exponential_root(g, c, 1.0) == pytest.approx(1.0, abs=1e-9)
    direct = markov_arl(lambda x: cal._chi2_increment_cdf(g, c, 1.0)(x), 11.0, 800)
    assert chi2_cusum_arl(g, c, 1.0, 11.0) == pytest.approx(direct, rel=0.05)


def test_spread_thresholds_account_for_the_reference():
    up, down = spread_thresholds(1e-6, 2.25)
    g, c = spread_design(2.25)
    assert chi2_cusum_arl(g, c, 1.0, up) == pytest.approx(2e6, rel=0.03)  # each side half the rate
    up_b, down_b = spread_thresholds(1e-6, 2.25, 1 / 2000)
    assert up_b > up and down_b > down


@pytest.mark.parametrize("p0, p1, rate", [(0.3, 0.45, 1 / 8000), (0.4, 0.25, 1 / 2000)])
def test_bernoulli_threshold_agrees_with_simulation(p0, p1, rate):
    """Above the chain's h0 (extrapolated) and below it (solved at the threshold)."""
    on, off = bernoulli_increments(p0, p1)
    h = bernoulli_threshold(rate, p0, p1)
    assert h < math.log(1 / rate)  # tighter than Lorden's bound
    mean, se = simulated_arl(lambda rng, n: np.where(rng.random(n) < p0, on, off), h, runs=1000, seed=1)
    # the chain rounds the up step up: its run length may be a little short, never long
    assert 0.9 / rate - 4 * se < mean < 1.3 / rate + 4 * se


def test_reference_bias_variance_is_rounded_up_and_capped():
    assert reference_bias_variance(2000) >= 1 / 2000
    assert reference_bias_variance(2000) < 1.2 / 2000
    assert reference_bias_variance(10) == cal.MAX_BIAS_VARIANCE
    assert reference_bias_variance(10**9) == 0.0
    assert reference_bias_variance(10**9, rank_error=0.01) >= 0.005 ** 2


def test_invalid_rates_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="0"):
        location_threshold(0.0, 0.25)
    with pytest.raises(ValueError, match="1.5"):
        adwin_delta(false_alarm_rate=1.5)


def test_bernoulli_run_lengths_grow_like_exp_h_for_every_category_design():
    """Beyond a few units of threshold the run length of a likelihood-ratio CUSUM grows by e per unit
    (a wrong lattice step once gave 10⁴ times too long a run length for some designs)."""
    from driftline.state.detectors import _category_design

    p0 = (0.4, 0.3, 0.15, 0.1, 0.05, 0.01, 0.0005)
    for total in (2000, 20_000):
        for design in _category_design(p0, total):
            for q0, q1 in (design[:2], design[2:]):
                if not q0:
                    continue
                h0 = cal.bernoulli_h0(q0, q1)
                a, b = cal.bernoulli_arl(q0, q1, h0), cal.bernoulli_arl(q0, q1, h0 + 1.0)
                if a is None:  # too fine for the chain: Lorden's bound is used
                    assert bernoulli_threshold(1e-8, q0, q1) == pytest.approx(math.log(1e8))
                    continue
                assert 2.0 < b / a < 3.6, (q0, q1, a, b)
