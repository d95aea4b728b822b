"""Distances between a reference quantile grid and a window, for numeric features.

The reference is a :class:`~driftline.stats.pit.QuantileGrid` (exact when the
reference had at most ``grid.size`` values, else its quantiles); the window is
described by its CDF at the grid points and its quantiles at the grid
probabilities (both read from a KLL sketch by the caller).  Errors are bounded by
the grid resolution (1/size) plus the sketch's rank error.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from driftline.stats.pit import QuantileGrid

__all__ = ["NumericDistances", "numeric_distances", "PSI_BINS", "kolmogorov_sf", "ks_two_sample_p_value"]

PSI_BINS = 10


class NumericDistances(NamedTuple):
    """``ks``: Kolmogorov-Smirnov statistic; ``psi``: population stability index
    on the reference deciles; ``wasserstein_sd``: Wasserstein-1 distance in
    reference standard deviations."""

    ks: float
    psi: float
    wasserstein_sd: float


def numeric_distances(grid: QuantileGrid, reference_sd: float, window_cdf_at_grid: np.ndarray,
                      window_quantiles: np.ndarray, *, smoothing: float = 1e-4) -> NumericDistances:
    """``window_cdf_at_grid[j]`` = P_window(X ≤ grid[j]); ``window_quantiles[j]`` =
    the window quantile at probability ``(j + 0.5) / size``."""
    q = grid.points
    m = q.size
    ref_cdf = grid.cdf
    ks = float(np.max(np.abs(ref_cdf - window_cdf_at_grid)))

    # PSI on reference deciles: bin edges at grid quantiles 0.1 … 0.9.
    edge_idx = [min(m - 1, int(round(k * m / PSI_BINS)) - 1) for k in range(1, PSI_BINS)]
    ref_edges = np.concatenate(([0.0], ref_cdf[edge_idx], [1.0]))
    win_edges = np.concatenate(([0.0], window_cdf_at_grid[edge_idx], [1.0]))
    r = np.clip(np.diff(ref_edges), 0.0, None) + smoothing
    w = np.clip(np.diff(win_edges), 0.0, None) + smoothing
    r /= r.sum()
    w /= w.sum()
    psi = float(np.sum((w - r) * np.log(w / r)))

    scale = reference_sd if reference_sd > 0 and math.isfinite(reference_sd) else 1.0
    wasserstein = float(np.mean(np.abs(window_quantiles - q))) / scale
    return NumericDistances(ks, psi, wasserstein)


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
