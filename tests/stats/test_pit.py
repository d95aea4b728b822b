import numpy as np
import pytest
from scipy import stats

from driftline.stats.pit import QuantileGrid, block_spread_scores

GENERATORS = {
    "normal": lambda r, n: r.normal(5, 3, n),
    "lognormal": lambda r, n: r.lognormal(0, 1, n),
    "counts": lambda r, n: r.poisson(2.0, n).astype(float),
    "binary": lambda r, n: (r.random(n) < 0.2).astype(float),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_scores_are_standard_normal_under_the_reference(name):
    rng = np.random.default_rng(11)
    gen = GENERATORS[name]
    grid = QuantileGrid.from_sorted_sample(np.sort(gen(rng, 5000)))
    x = gen(rng, 50_000)
    u, z = grid.normal_scores(x, rng.random(x.size))
    assert np.all((u > 0) & (u < 1))
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1.0) < 0.05
    # uniform ranks, also for discrete data (randomised ties)
    assert stats.kstest(u, "uniform").statistic < 0.03


def test_scale_and_shift_invariance():
    rng = np.random.default_rng(2)
    ref = np.sort(rng.normal(size=2000))
    x = rng.normal(size=1000)
    jitter = rng.random(1000)
    _, z1 = QuantileGrid.from_sorted_sample(ref).normal_scores(x, jitter)
    _, z2 = QuantileGrid.from_sorted_sample(ref * 1000 + 7).normal_scores(x * 1000 + 7, jitter)
    np.testing.assert_allclose(z1, z2, atol=1e-9)


def test_outliers_are_bounded():
    grid = QuantileGrid.from_sorted_sample(np.arange(100.0))
    _, z = grid.normal_scores(np.array([-1e300, 1e300]), np.array([0.5, 0.5]))
    assert -4.0 < z[0] < -2.0 and 2.0 < z[1] < 4.0


def test_block_spread_scores_react_to_spread_not_location():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(50_000, 16))
    s0 = block_spread_scores(base)
    assert abs(s0.mean()) < 0.02 and abs(s0.std() - 1) < 0.02
    assert abs(block_spread_scores(base + 3.0).mean() - s0.mean()) < 1e-9
    assert block_spread_scores(base * 1.5).mean() > 2.0


def test_the_cdf_at_the_points_counts_ties_and_is_shared_without_them():
    tied = QuantileGrid(np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0]))
    assert tied.cdf.tolist() == (np.searchsorted(tied.points, tied.points, side="right") / 7).tolist()
    assert tied.cdf.tolist()[1:4] == [4 / 7] * 3
    plain = QuantileGrid.from_sorted_sample(np.sort(np.random.default_rng(3).normal(size=5000)))
    assert plain.cdf is QuantileGrid(plain.points.copy()).cdf  # one read-only array for every grid of a size
    assert plain.cdf.tolist() == (np.arange(1, 1025) / 1024).tolist() and not plain.cdf.flags.writeable
