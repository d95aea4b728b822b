"""Detector parameters from a target false-alarm rate.

Page-Hinkley is a CUSUM: with increments ``x − k`` on standardised N(0, 1)
input its one-sided average run length to a false alarm follows Siegmund's
approximation

    ARL(μ) ≈ (exp(−2Δb) + 2Δb − 1) / (2Δ²),   Δ = μ − k,   b = h + 1.166,

so the threshold ``h`` for a wanted in-control run length is found by
bisection.  A two-sided test halves the run length (both sides can fire).
ADWIN's ``delta`` bounds the probability of a false cut per check, but the
bound is loose by four orders of magnitude on standardised input, so delta is
set from a measured factor (:data:`ADWIN_LOOSENESS`) and verified by
simulation in ``benchmarks/calibration.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["PageHinkleyParams", "cusum_arl", "page_hinkley_params", "adwin_delta"]

_SIEGMUND_CORRECTION = 1.166


class PageHinkleyParams(NamedTuple):
    """River ``PageHinkley`` parameters in units of standardised block scores."""

    delta: float
    threshold: float
    block: int


def cusum_arl(shift: float, k: float, h: float) -> float:
    """Siegmund's approximate one-sided CUSUM run length for N(shift, 1) data."""
    d = shift - k
    b = h + _SIEGMUND_CORRECTION
    if abs(d) < 1e-12:
        return b * b
    return (math.exp(-2.0 * d * b) + 2.0 * d * b - 1.0) / (2.0 * d * d)


def page_hinkley_params(*, false_alarm_rate: float, design_shift: float, block: int) -> PageHinkleyParams:
    """Two-sided Page-Hinkley on block scores ``sum(z) / sqrt(block)``.

    ``false_alarm_rate`` is per event (per value fed in), ``design_shift`` the
    smallest mean shift of the per-value normal scores worth finding quickly.
    In block units the shift is ``design_shift * sqrt(block)``; the reference
    value is half of it (the CUSUM optimum) and the threshold gives a two-sided
    in-control run length of ``block / false_alarm_rate`` values.
    """
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
    if design_shift <= 0.0:
        raise ValueError(f"design_shift must be positive, got {design_shift!r}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    k = design_shift * math.sqrt(block) / 2.0
    target_blocks = 2.0 / (false_alarm_rate * block)  # one side carries half the rate
    lo, hi = 0.0, 1.0
    while cusum_arl(0.0, k, hi) < target_blocks:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if cusum_arl(0.0, k, mid) < target_blocks:
            lo = mid
        else:
            hi = mid
    return PageHinkleyParams(delta=k, threshold=hi, block=block)


#: How much looser ADWIN's bound is than its real false-alarm rate on block
#: scores: measured false alarms per event ≈ 2.5e-5 × delta
#: (``benchmarks/calibration.py``), i.e. delta ≈ 4e4 × rate; a safety
#: factor of 4 leaves 1e4.
ADWIN_LOOSENESS = 1.0e4


def adwin_delta(*, false_alarm_rate: float) -> float:
    """ADWIN ``delta`` for a wanted false-alarm rate per event (one check per block)."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
    return min(0.01, false_alarm_rate * ADWIN_LOOSENESS)
