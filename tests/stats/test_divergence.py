import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from driftline.stats.divergence import (
    chi_square_critical, chi_square_sf, chi_square_two_sample, jensen_shannon, psi,
)


@pytest.mark.parametrize("df", [1, 2, 3, 7, 30, 250])
@pytest.mark.parametrize("x", [1e-3, 0.5, 2.0, 9.0, 40.0, 400.0])
def test_chi_square_sf_matches_scipy(df, x):
    expected = stats.chi2.sf(x, df)
    assert chi_square_sf(x, df) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_chi_square_critical_inverts_sf():
    for df in (1, 4, 19):
        for alpha in (1e-2, 5e-5, 1e-8):
            assert chi_square_critical(alpha, df) == pytest.approx(stats.chi2.isf(alpha, df), rel=1e-7)


counts = st.lists(st.integers(min_value=5, max_value=500), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(counts, st.data())
def test_two_sample_chi_square_matches_scipy_contingency(ref, data):
    cur = data.draw(st.lists(st.integers(min_value=5, max_value=500), min_size=len(ref), max_size=len(ref)))
    ours = chi_square_two_sample(ref, cur, min_expected=0.0)
    stat, p, dof, _ = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert ours.df == dof
    assert ours.statistic == pytest.approx(stat, rel=1e-9, abs=1e-9)
    assert ours.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)


def test_rare_categories_are_pooled():
    result = chi_square_two_sample([500, 500, 1, 1], [500, 500, 0, 2])
    assert result.df == 2  # the two rare categories became one bin


def test_psi_and_js_against_direct_numpy():
    r = np.array([400, 300, 200, 100], float)
    c = np.array([250, 250, 250, 250], float)
    rp = (r + 0.5) / (r.sum() + 2.0)
    cp = (c + 0.5) / (c.sum() + 2.0)
    assert psi(r, c) == pytest.approx(float(np.sum((cp - rp) * np.log(cp / rp))))
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    assert jensen_shannon(r, c) == pytest.approx(float(js))
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert psi(r, r) == 0.0 and jensen_shannon(r, r) == 0.0
