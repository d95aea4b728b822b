"""Distances between a reference quantile grid and a window, for numeric features.

The reference is a :class:`~driftline.stats.pit.QuantileGrid` (exact when the
reference had at most ``grid.size`` values, else its quantiles).  The window
is described by exact counts: how many of its values fall at or below each
grid point, and how far its values reach beyond the grid's two ends.  Those
counts are cheap to keep per window (two ``searchsorted`` and ``bincount`` per
batch), deterministic (unlike a randomised sketch, so a replay gives the same
numbers as the live stream) and make KS and PSI exact at the grid points;
Wasserstein is exact up to the grid's resolution.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from driftline.stats.pit import QuantileGrid

__all__ = ["NumericDistances", "WindowCounts", "numeric_distances", "PSI_BINS", "kolmogorov_sf",
           "ks_two_sample_p_value"]

PSI_BINS = 10


class NumericDistances(NamedTuple):
    """``ks``: Kolmogorov-Smirnov statistic; ``psi``: population stability index
    on the reference deciles; ``wasserstein_sd``: Wasserstein-1 distance in
    reference standard deviations."""

    ks: float
    psi: float
    wasserstein_sd: float


class WindowCounts:
    """A window's values counted against a reference grid (they add up over batches).

    The counts are allocated with the window's first value, in the smallest unsigned dtype that holds
    their largest cell (uint8, then uint16, uint32, int64 as the window grows; tracked by ``peak``, an
    upper bound: the window's count, or the sum of each batch's largest cell, if smaller), and the
    strict counts only once a value equals a grid point (until then they are the same).

    >>> grid = QuantileGrid(np.array([1.0, 2.0, 3.0]))
    >>> w = WindowCounts(grid.size); w.add(grid, np.array([0.5, 2.0, 2.5, 9.0]))
    >>> w.cdf().tolist(), w.cdf(strict=True).tolist(), w.above_excess, w.below_excess
    ([0.25, 0.5, 0.75], [0.25, 0.25, 0.75], 6.0, 0.5)
    """

    __slots__ = ("size", "_le", "_lt", "n", "peak", "above_excess", "below_excess")

    def __init__(self, size: int) -> None:
        self.size = size
        # _le[j]: values in (grid[j-1], grid[j]]; _lt[j]: values in [grid[j-1], grid[j]); one extra cell above
        self._le: np.ndarray | None = None
        self._lt: np.ndarray | None = None
        self.n = 0
        #: at least the largest count of any cell (so the dtype holds every cell)
        self.peak = 0
        #: sums of (x - grid[-1]) over values above the grid, and of (grid[0] - x) below it
        self.above_excess = 0.0
        self.below_excess = 0.0

    def add(self, grid: QuantileGrid, values: np.ndarray,
            located: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Count ``values``; ``located`` is ``grid.locate(values)`` if the caller has it."""
        q = grid.points
        lo, hi = located if located is not None else grid.locate(values)
        le = np.bincount(lo, minlength=q.size + 1)
        lt = None if hi is lo or not (hi != lo).any() else np.bincount(hi, minlength=q.size + 1)
        self.add_counts(le, lt, int(values.size), int(le.max()) if lt is None else int(max(le.max(), lt.max())))
        top, bottom = q[-1], q[0]
        self.above_excess += float(np.sum(values[values > top] - top))
        self.below_excess += float(np.sum(bottom - values[values < bottom]))

    def add_counts(self, le: np.ndarray, lt: np.ndarray | None, n: int, largest: int) -> None:
        """Add per-cell counts of ``n`` values, ``largest`` at least their largest cell (``lt`` None: no
        value equals a grid point, the same as ``le``)."""
        total = self.n + n
        peak = min(self.peak + largest, total)
        dtype = _count_dtype(peak)
        if self._le is None:
            self._le = np.zeros(self.size + 1, dtype=dtype)
        elif peak > _COUNT_MAX[self._le.dtype]:
            self._le = self._le.astype(dtype)
            if self._lt is not None:
                self._lt = self._lt.astype(dtype)
        if lt is not None and self._lt is None:
            self._lt = self._le.copy()
        np.add(self._le, le, out=self._le, casting="unsafe")  # counts ≥ 0 that fit: the cast is exact
        if self._lt is not None:
            np.add(self._lt, le if lt is None else lt, out=self._lt, casting="unsafe")
        self.n = total
        self.peak = peak

    def cdf(self, *, strict: bool = False) -> np.ndarray:
        """P_window(X ≤ grid[j]) for every grid point (``strict``: X < grid[j])."""
        counts = self._lt if strict and self._lt is not None else self._le
        if counts is None:
            return np.zeros(self.size)
        return np.cumsum(counts[:-1], dtype=np.int64) / max(self.n, 1)


#: the largest count each dtype of window counts holds
_COUNT_MAX = {np.dtype(t): int(np.iinfo(t).max) for t in (np.uint8, np.uint16, np.uint32, np.int64)}


def _count_dtype(n: int) -> type:
    return np.uint8 if n <= 0xFF else np.uint16 if n <= 0xFFFF else np.uint32 if n <= 0xFFFFFFFF else np.int64


def numeric_distances(grid: QuantileGrid, reference_sd: float, window: WindowCounts, *,
                      smoothing: float = 1e-4) -> NumericDistances:
    """KS, PSI and Wasserstein-1 of a counted window against the reference grid."""
    q = grid.points
    m = q.size
    ref_cdf = grid.cdf
    win_cdf = window.cdf()
    ks = float(np.max(np.abs(ref_cdf - win_cdf)))

    # PSI on reference deciles: bin edges at grid quantiles 0.1 … 0.9.
    edge_idx = [min(m - 1, int(round(k * m / PSI_BINS)) - 1) for k in range(1, PSI_BINS)]
    ref_edges = np.concatenate(([0.0], ref_cdf[edge_idx], [1.0]))
    win_edges = np.concatenate(([0.0], win_cdf[edge_idx], [1.0]))
    r = np.clip(np.diff(ref_edges), 0.0, None) + smoothing
    w = np.clip(np.diff(win_edges), 0.0, None) + smoothing
    r /= r.sum()
    w /= w.sum()
    psi = float(np.sum((w - r) * np.log(w / r)))

    # W1 = ∫ |F_window − F_reference| dx.  Between two grid points the
    # reference CDF is flat and the window's rises from P(X ≤ q_j) to
    # P(X < q_j+1): the trapezoid of the two.  Beyond the grid's ends the
    # reference CDF is 0 or 1, and the window's excess mass is summed exactly.
    if m > 1:
        inside_cdf = 0.5 * (win_cdf[:-1] + window.cdf(strict=True)[1:])
        inside = float(np.sum(np.abs(inside_cdf - ref_cdf[:-1]) * np.diff(q)))
    else:
        inside = 0.0
    beyond = (window.above_excess + window.below_excess) / max(window.n, 1)
    scale = reference_sd if reference_sd > 0 and math.isfinite(reference_sd) else 1.0
    return NumericDistances(ks, psi, (inside + beyond) / scale)


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of ``sqrt(n) · D``).

    Two series cover the range: the alternating one converges fast for large
    ``x``, the theta-function form for small ``x``.
    """
    if x <= 0.0:
        return 1.0
    if x < 1.0:
        # 1 - sqrt(2π)/x · Σ exp(-(2k-1)² π² / (8 x²))
        total = 0.0
        for k in range(1, 8):
            total += math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8.0 * x * x))
        return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * total))
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-300:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_two_sample_p_value(statistic: float, n: int, m: int, *, slack: float = 0.0) -> float:
    """Asymptotic p-value of a two-sample KS statistic from samples of ``n`` and ``m``.

    ``slack`` is subtracted from the statistic first: the rank error of the
    sketches it was read from, so sketch error can only make the test more
    conservative.  ``m = 0`` means an exact, infinitely large reference (one
    sample).
    """
    if n <= 0:
        return 1.0
    effective = n if m <= 0 else n * m / (n + m)
    return kolmogorov_sf(math.sqrt(effective) * max(0.0, statistic - slack))
