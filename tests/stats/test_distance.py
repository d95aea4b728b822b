import numpy as np
import pytest
from scipy import stats

from driftline.stats.distance import WindowCounts, kolmogorov_sf, ks_two_sample_p_value, numeric_distances
from driftline.stats.pit import QuantileGrid


def _distances(ref, win):
    grid = QuantileGrid.from_sorted_sample(np.sort(ref))
    counts = WindowCounts(grid.size)
    for part in np.array_split(win, 3):  # counts add up over batches
        counts.add(grid, part)
    return numeric_distances(grid, float(np.std(ref, ddof=1)), counts)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_and_wasserstein_agree_with_scipy(shift):
    rng = np.random.default_rng(4)
    ref = rng.normal(size=1000)
    win = rng.normal(size=200) + shift
    d = _distances(ref, win)
    # evaluated at the reference points: off by at most one window step
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1 / win.size + 1e-9)
    assert d.wasserstein_sd == pytest.approx(stats.wasserstein_distance(ref, win) / np.std(ref, ddof=1), abs=0.02)


def test_psi_against_direct_numpy_on_reference_deciles():
    rng = np.random.default_rng(5)
    ref = rng.lognormal(size=1000)
    win = rng.lognormal(size=200) * 1.3
    d = _distances(ref, win)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9), method="inverted_cdf")
    r = np.diff(np.concatenate(([0], np.searchsorted(np.sort(ref), edges, side="right"), [ref.size]))) / ref.size
    w = np.diff(np.concatenate(([0], np.searchsorted(np.sort(win), edges, side="right"), [win.size]))) / win.size
    r, w = r + 1e-4, w + 1e-4
    r, w = r / r.sum(), w / w.sum()
    assert d.psi == pytest.approx(float(np.sum((w - r) * np.log(w / r))), rel=0.02, abs=1e-3)


def test_identical_distributions_are_close_to_zero():
    rng = np.random.default_rng(6)
    d = _distances(rng.normal(size=1000), rng.normal(size=200))
    assert d.ks < 0.1 and d.psi < 0.05 and d.wasserstein_sd < 0.15


def test_large_window_and_values_beyond_the_reference_range():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=1000)
    win = rng.normal(size=20_000) * 2.0 + 0.5  # many values beyond the reference's range
    d = _distances(ref, win)
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1e-3)
    assert d.wasserstein_sd == pytest.approx(stats.wasserstein_distance(ref, win) / np.std(ref, ddof=1), rel=0.02)


def test_reduced_grid_of_a_large_reference():
    rng = np.random.default_rng(10)
    ref = rng.lognormal(size=50_000)  # reduced to 1,024 grid points
    win = rng.lognormal(size=5000) * 1.2
    d = _distances(ref, win)
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=2 / 1024)
    assert d.wasserstein_sd == pytest.approx(stats.wasserstein_distance(ref, win) / np.std(ref, ddof=1), rel=0.03)


@pytest.mark.parametrize("x", [0.2, 0.5, 0.9, 1.0, 1.3, 2.0, 4.0])
def test_kolmogorov_tail_matches_scipy(x):
    assert kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), rel=1e-9, abs=1e-300)


def test_ks_p_value_is_the_asymptotic_two_sample_one_and_slack_only_makes_it_larger():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=3000), rng.normal(size=2000) + 0.08
    res = stats.ks_2samp(a, b, method="asymp")
    assert ks_two_sample_p_value(res.statistic, 2000, 3000) == pytest.approx(res.pvalue, rel=0.05)
    assert ks_two_sample_p_value(res.statistic, 2000, 3000, slack=0.01) > ks_two_sample_p_value(res.statistic, 2000, 3000)
    assert ks_two_sample_p_value(0.5, 0, 100) == 1.0


def test_discrete_reference_with_repeated_grid_points():
    rng = np.random.default_rng(8)
    ref = rng.poisson(3, size=1000).astype(float)
    win = rng.poisson(3, size=200).astype(float)
    d = _distances(ref, win)
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1 / win.size + 1e-9)
