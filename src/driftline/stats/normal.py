"""The standard normal distribution, vectorised over NumPy arrays.

NumPy has no inverse normal CDF and SciPy is not a runtime dependency of
driftline, so the quantile function is written here: Acklam's rational
approximation (relative error below 1.2e-9 over the open unit interval),
which is far below the resolution of any reference profile it is used with.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["normal_quantile", "normal_sf"]

# Coefficients of Acklam's rational approximation to the normal quantile.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """Inverse CDF of N(0, 1) for probabilities in the open interval (0, 1).

    >>> [round(float(z), 6) for z in normal_quantile(np.array([0.025, 0.5, 0.975]))]
    [-1.959964, 0.0, 1.959964]
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    lower = p < _P_LOW
    upper = p > 1.0 - _P_LOW
    central = ~(lower | upper)

    q = p[central] - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
    out[central] = num / den

    for mask, sign, tail in ((lower, 1.0, p[lower]), (upper, -1.0, 1.0 - p[upper])):
        if tail.size:
            t = np.sqrt(-2.0 * np.log(tail))
            num = ((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]
            den = (((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0
            out[mask] = sign * num / den
    return out


def normal_sf(z: float) -> float:
    """Upper tail probability P(Z > z) of N(0, 1), accurate far into the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))
