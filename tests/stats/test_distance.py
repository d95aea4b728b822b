import numpy as np
import pytest
from datasketches import kll_doubles_sketch
from scipy import stats

from driftline.stats.distance import numeric_distances
from driftline.stats.pit import QuantileGrid


def _window(values):
    sketch = kll_doubles_sketch(200)
    sketch.update(values)
    return sketch


def _distances(ref, win):
    grid = QuantileGrid.from_sorted_sample(np.sort(ref))
    sketch = _window(win)
    m = grid.size
    distinct = grid.distinct
    cdf = np.asarray(sketch.get_cdf(distinct.tolist(), True))[np.searchsorted(distinct, grid.points)]
    qs = np.asarray(sketch.get_quantiles(((np.arange(m) + 0.5) / m).tolist(), True))
    return numeric_distances(grid, float(np.std(ref, ddof=1)), cdf, qs)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_and_wasserstein_agree_with_scipy(shift):
    rng = np.random.default_rng(4)
    ref = rng.normal(size=1000)
    win = rng.normal(size=200) + shift  # the sketch is exact up to k = 200 values
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


def test_sketched_window_stays_within_sketch_error():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=1000)
    win = rng.normal(size=20_000) + 0.5  # the sketch compacts: rank error about 1.3 %
    d = _distances(ref, win)
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=0.02)
    assert d.wasserstein_sd == pytest.approx(stats.wasserstein_distance(ref, win) / np.std(ref, ddof=1), abs=0.03)


def test_discrete_reference_with_repeated_grid_points():
    rng = np.random.default_rng(8)
    ref = rng.poisson(3, size=1000).astype(float)
    win = rng.poisson(3, size=200).astype(float)
    d = _distances(ref, win)
    assert d.ks == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1 / win.size + 1e-9)
