"""Distances and tests between category distributions.

All functions are pure: counts in, numbers out.  The chi-square tail
probability needs the regularised upper incomplete gamma function, which the
standard library lacks (and SciPy is only a test oracle here), so it is
computed with the usual series / continued-fraction pair.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

__all__ = [
    "ChiSquareResult",
    "chi_square_sf",
    "chi_square_critical",
    "chi_square_two_sample",
    "psi",
    "jensen_shannon",
]

_EPS = 1e-15
_MAX_ITER = 500


def _gamma_p_series(a: float, x: float) -> float:
    term = 1.0 / a
    total = term
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    # Modified Lentz evaluation of the continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma function Q(a, x)."""
    if a <= 0.0:
        raise ValueError(f"gamma_q needs a > 0, got {a!r}")
    if x <= 0.0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _gamma_p_series(a, x)
    return _gamma_q_fraction(a, x)


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X > statistic) for a chi-square variable with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    return gamma_q(df / 2.0, statistic / 2.0)


def chi_square_critical(alpha: float, df: int) -> float:
    """The value whose upper tail probability is ``alpha`` (by bisection)."""
    lo, hi = 0.0, max(10.0, 4.0 * df)
    while chi_square_sf(hi, df) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi_square_sf(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * hi:
            break
    return hi


class ChiSquareResult(NamedTuple):
    statistic: float
    df: int
    p_value: float


def chi_square_two_sample(
    reference: Sequence[float], current: Sequence[float], *, min_expected: float = 5.0
) -> ChiSquareResult:
    """Chi-square test of homogeneity for two count vectors over the same categories.

    Both samples are random (the reference is an estimate too), so this is the
    2×k contingency test, not a goodness-of-fit test against fixed
    proportions.  Categories whose smaller expected count is below
    ``min_expected`` are pooled so the chi-square approximation holds in the
    tail.  With fewer than two bins left the result is (0, 0, 1).
    """
    if len(reference) != len(current):
        raise ValueError("reference and current need the same categories")
    n_ref = float(sum(reference))
    n_cur = float(sum(current))
    total = n_ref + n_cur
    if n_ref <= 0 or n_cur <= 0:
        return ChiSquareResult(0.0, 0, 1.0)
    smaller = min(n_ref, n_cur)
    bins: list[tuple[float, float]] = []
    pool_ref = pool_cur = 0.0
    for r, c in zip(reference, current):
        if (r + c) * smaller / total < min_expected:
            pool_ref += r
            pool_cur += c
        else:
            bins.append((float(r), float(c)))
    if pool_ref + pool_cur > 0:
        bins.append((pool_ref, pool_cur))
    bins = [b for b in bins if b[0] + b[1] > 0]
    if len(bins) < 2:
        return ChiSquareResult(0.0, 0, 1.0)
    stat = 0.0
    for r, c in bins:
        col = r + c
        e_ref = col * n_ref / total
        e_cur = col * n_cur / total
        stat += (r - e_ref) ** 2 / e_ref + (c - e_cur) ** 2 / e_cur
    df = len(bins) - 1
    return ChiSquareResult(stat, df, chi_square_sf(stat, df))


def _proportions(counts: Sequence[float], smoothing: float) -> list[float]:
    total = float(sum(counts)) + smoothing * len(counts)
    return [(c + smoothing) / total for c in counts]


def psi(reference: Sequence[float], current: Sequence[float], *, smoothing: float = 0.5) -> float:
    """Population stability index, Σ (c − r) · ln(c / r), on smoothed proportions."""
    r = _proportions(reference, smoothing)
    c = _proportions(current, smoothing)
    return sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c))


def jensen_shannon(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    r_total = float(sum(reference))
    c_total = float(sum(current))
    if r_total <= 0 or c_total <= 0:
        return 0.0
    js = 0.0
    for rc, cc in zip(reference, current):
        p = rc / r_total
        q = cc / c_total
        m = 0.5 * (p + q)
        if p > 0:
            js += 0.5 * p * math.log2(p / m)
        if q > 0:
            js += 0.5 * q * math.log2(q / m)
    return max(0.0, js)
