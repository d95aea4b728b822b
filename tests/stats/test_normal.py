import numpy as np
from scipy import special, stats

from driftline.stats.normal import normal_quantile, normal_sf


def test_normal_quantile_matches_scipy_over_the_open_interval():
    p = np.concatenate([np.linspace(1e-12, 1 - 1e-12, 20001), [1e-300, 1e-20, 0.02425, 1 - 0.02425]])
    ours = normal_quantile(p)
    assert np.max(np.abs(ours - special.ndtri(p)) / np.maximum(1.0, np.abs(special.ndtri(p)))) < 5e-9


def test_normal_sf_matches_scipy_far_into_the_tail():
    for z in (-3.0, 0.0, 1.5, 6.0, 12.0):
        assert abs(normal_sf(z) - stats.norm.sf(z)) <= 1e-12 + 1e-9 * stats.norm.sf(z)
