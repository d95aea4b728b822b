"""Probability integral transform through a reference distribution.

Every numeric value is mapped to where it falls in the reference: its rank
``u`` in (0, 1), then the normal score ``z = Φ⁻¹(u)``.  Under the reference
distribution ``z`` is N(0, 1) whatever the feature's scale or shape, so one set
of detector thresholds serves every feature.

Ties are broken at random inside the reference atom (the *randomised* PIT), so
discrete and mixed features (counts, zero-inflated values) are transformed to an
exactly uniform ``u`` as well; values strictly between two grid points are
interpolated.  Values beyond the reference range land in the outermost
half-cell, at a fixed depth, which bounds the influence of any one outlier.
"""

from __future__ import annotations

import math
from functools import lru_cache

from dataclasses import dataclass

import numpy as np

from driftline.stats.normal import normal_quantile

__all__ = ["QuantileGrid", "block_spread_scores"]


@lru_cache(maxsize=64)
def _steps(size: int) -> np.ndarray:
    """``(j + 1) / size`` for ``j < size``: the CDF at the points of a grid without ties (read-only, shared)."""
    steps = np.arange(1, size + 1, dtype=np.int64) / size
    steps.setflags(write=False)
    return steps


#: batches at least this long are located with a bucket table (shorter ones: searchsorted)
_TABLE_MIN = 1024
#: buckets per grid point, and the most points one bucket may hold for the table to be used
_TABLE_FACTOR = 8
_TABLE_DEPTH = 3


def _bucket(v: np.ndarray, scale: float, shift: float, buckets: int) -> np.ndarray:
    """Bucket of each value, 0 (below the grid) … ``buckets + 1``: non-decreasing in the value (each
    rounded step is), which is all the table needs (not that the buckets are exactly equally wide)."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.multiply(v, scale)
        t += shift
    np.clip(t, 0.0, buckets + 1.0, out=t)
    return t.astype(np.intp)


@dataclass(frozen=True, slots=True)
class QuantileGrid:
    """Reference quantiles at probabilities ``(j + 0.5) / m`` for ``j < m``.

    ``points`` must be sorted and should be actual observations (atoms of a
    discrete feature then repeat, which is how ties are recognised).  Only
    the points are kept (8 KB for 1,024): the CDF at them is derived when a
    window closes (:attr:`cdf`).
    """

    points: np.ndarray

    @property
    def cdf(self) -> np.ndarray:
        """P(X ≤ points[j]) under the reference, ties included.

        Without ties (a continuous feature) it is the same for every grid of
        this size: one shared, read-only array.
        """
        q = self.points
        if q.size < 2 or bool((q[1:] > q[:-1]).all()):
            return _steps(q.size)
        return np.searchsorted(q, q, side="right") / q.size

    @classmethod
    def from_sorted_sample(cls, sample: np.ndarray, size: int = 1024) -> "QuantileGrid":
        """Grid of at most ``size`` points taken from a sorted sample."""
        sample = np.asarray(sample, dtype=np.float64)
        if sample.size == 0:
            raise ValueError("a quantile grid needs at least one reference value")
        if sample.size <= size:
            return cls(sample.copy())
        probs = (np.arange(size) + 0.5) / size
        idx = np.minimum((probs * sample.size).astype(np.int64), sample.size - 1)
        return cls(sample[idx])

    @property
    def size(self) -> int:
        return int(self.points.size)

    def locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)``: grid points below each value, and at or below it.

        ``lo[i]`` counts points < ``x[i]`` and ``hi[i]`` points ≤ ``x[i]``
        (they differ only for values equal to a grid point).
        """
        q = self.points
        lo = self.below(x)
        # Only values equal to a grid point need the second search.
        hit = q[np.minimum(lo, q.size - 1)] == x
        hi = lo.copy()
        if hit.any():
            hi[hit] = np.searchsorted(q, x[hit], side="right")
        return lo, hi

    def below(self, x: np.ndarray) -> np.ndarray:
        """Grid points < each value: ``np.searchsorted(points, x)``, exactly.

        Long batches use a bucket table built for the call (never stored):
        ``b(v) = ⌊(v − p₀)·B/(p_last − p₀)⌋ + 1`` clipped to ``[0, B + 1]`` is
        non-decreasing in ``v`` (each rounded step is), so every point of a
        lower bucket than ``x``'s is below ``x`` and every point of a higher
        one above it; only the few points of ``x``'s own bucket are compared.
        Grids whose buckets hold many points (ties, heavy skew) are searched.
        """
        q = self.points
        n, m = x.size, q.size
        if n < _TABLE_MIN or m < 2:
            return q.searchsorted(x, side="left")
        span = float(q[-1] - q[0])
        buckets = _TABLE_FACTOR * m
        if not (span > 0.0 and math.isfinite(span)):
            return np.searchsorted(q, x, side="left")
        scale = buckets / span
        if not math.isfinite(scale):
            return np.searchsorted(q, x, side="left")
        shift = 1.0 - float(q[0]) * scale
        if not math.isfinite(shift):
            return np.searchsorted(q, x, side="left")
        counts = np.bincount(_bucket(q, scale, shift, buckets), minlength=buckets + 2)
        depth = int(counts.max())
        if depth > _TABLE_DEPTH:
            return np.searchsorted(q, x, side="left")
        start = np.empty(buckets + 2, dtype=np.intp)
        start[0] = 0
        np.cumsum(counts[:-1], out=start[1:])
        s = start.take(_bucket(x, scale, shift, buckets))
        # points past the end compare as +inf (a bucket's candidates past its own points are above x anyway)
        padded = np.concatenate((q, np.full(depth, np.inf)))
        lo = s.copy()
        for j in range(depth):
            lo += padded[j:].take(s) < x
        return lo

    def to_uniform(self, x: np.ndarray, jitter: np.ndarray,
                   located: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Rank of each value in the reference, in the open interval (0, 1).

        ``jitter`` holds one U(0, 1) draw per value, used only for values tied
        with reference atoms; ``located`` is :meth:`locate` of ``x`` if the
        caller has it already.
        """
        q = self.points
        m = q.size
        lo, hi = located if located is not None else self.locate(x)
        # Values between grid points: linear interpolation between the
        # probabilities (j - 0.5)/m and (j + 0.5)/m of the neighbours.
        # (np.minimum / np.maximum instead of np.clip, and each fix-up only when some value needs it:
        # the same numbers, fewer passes over the batch)
        inner = np.minimum(np.maximum(lo, 1), m - 1) if m > 1 else np.zeros_like(lo)
        left = q[inner - 1] if m > 1 else q[inner]
        right = q[inner]
        width = right - left
        positive = width > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (x - left) / (width if positive.all() else np.where(positive, width, 1.0))
        if not positive.all():
            frac[~positive] = 0.5
        u = (inner - 0.5 + np.minimum(np.maximum(frac, 0.0), 1.0)) / m
        # Ties with reference atoms: uniform inside the atom's probability mass.
        tied = hi > lo
        any_tied = bool(tied.any())
        if any_tied:
            u = np.where(tied, (lo + jitter * (hi - lo)) / m, u)
        # Beyond the reference range: the outer half-cells, at a fixed depth.
        below, above = lo == 0, lo == m
        if below.any():
            u = np.where(~tied & below if any_tied else below, 0.25 / m, u)
        if above.any():
            u = np.where(~tied & above if any_tied else above, 1.0 - 0.25 / m, u)
        eps = 0.25 / m
        return np.minimum(np.maximum(u, eps), 1.0 - eps)

    def normal_scores(self, x: np.ndarray, jitter: np.ndarray,
                      located: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(u, z)``: reference ranks and their normal scores."""
        u = self.to_uniform(x, jitter, located)
        return u, normal_quantile(u)


def block_spread_scores(blocks: np.ndarray) -> np.ndarray:
    """Standardised spread of each row of normal scores, N(0, 1) under the reference.

    The sample variance of ``b`` independent N(0, 1) scores is χ²(b − 1)/(b − 1);
    the Wilson-Hilferty cube root makes it close to normal.  It measures the
    spread *within* each block, so a shift of the mean does not move it.
    """
    df = blocks.shape[1] - 1
    if df < 1:
        raise ValueError("spread scores need blocks of at least two values")
    var = blocks.var(axis=1, ddof=1)
    mu = 1.0 - 2.0 / (9.0 * df)
    sigma = math.sqrt(2.0 / (9.0 * df))
    return (np.cbrt(var) - mu) / sigma
