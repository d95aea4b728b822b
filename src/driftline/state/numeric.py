"""State of one numeric feature: moments, quantile sketches, reference, detectors."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from datasketches import kll_doubles_sketch

from driftline.state.detectors import ADWIN, Detection, DetectorParams, NumericDetectors
from driftline.stats.distance import WindowCounts, ks_two_sample_p_value, numeric_distances
from driftline.stats.moments import Moments
from driftline.stats.calibration import reference_bias_variance
from driftline.stats.pit import QuantileGrid

__all__ = ["NumericState", "SUMMARY_QUANTILES", "update_many"]

SUMMARY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
KLL_K = 200
GRID_SIZE = 1024
RECENT_BLOCKS = 8


class NumericState:
    """Everything driftline keeps about one numeric feature of one model version.

    ``update`` takes the finite values of a batch in stream order.  The first
    ``warmup`` of them become the reference (sorted and reduced to a quantile
    grid); every later value is transformed through that reference and fed to
    the detectors (:class:`~driftline.state.detectors.NumericDetectors`: the
    CUSUMs see every value, ADWIN pairs of blocks).  Detections come back with
    the index of the value that completed them.
    """

    __slots__ = (
        "params", "warmup", "moments", "sketch", "window_moments", "window_sketch",
        "_warmup_values", "_warmup_count", "grid", "reference_moments", "detectors",
        "_rng", "_pending_z", "_recent_z", "window_z_sum", "window_z_sq", "window_scored",
        "reference_count", "reference_rank_error", "window_counts",
    )

    def __init__(self, params: DetectorParams, *, warmup: int, seed: int) -> None:
        self.params = params
        self.warmup = warmup
        self.moments = Moments()
        self.sketch = kll_doubles_sketch(KLL_K)
        self.window_moments = Moments()
        self.window_sketch = kll_doubles_sketch(KLL_K)
        self._warmup_values: list[np.ndarray] = []
        self._warmup_count = 0
        self.grid: QuantileGrid | None = None
        self.reference_moments = Moments()
        self.detectors = NumericDetectors(params)
        self._rng = np.random.default_rng(seed)
        self._pending_z = np.empty(0)
        self._recent_z = np.empty(0)
        self.window_z_sum = 0.0
        self.window_z_sq = 0.0
        self.window_scored = 0
        #: values behind the reference, and the rank error of its CDF (sketch and grid)
        self.reference_count = 0
        self.reference_rank_error = 0.0
        #: this window's scored values counted against the reference grid
        self.window_counts: WindowCounts | None = None

    @property
    def warmed_up(self) -> bool:
        return self.grid is not None

    @property
    def differs(self) -> bool:
        """The data still differs from the reference by the sequential detectors.

        True from a detection of a reference-relative CUSUM until every CUSUM
        has fallen back to half its threshold (about ``1.5 h / k`` values,
        100–200, after the data is back); False before warm-up ends.
        """
        return self.detectors.differs

    def update(self, values: np.ndarray) -> list[tuple[int, Detection, tuple[float, float]]]:
        """Add finite values in stream order.

        Returns ``(value index, detection, (mean shift, spread ratio))`` for each
        detection: the index of the value that completed it, and the effect
        over the values just before it, in reference units
        (normal scores: a shift of 1.0 is one reference standard deviation for
        normal data; a spread ratio of 1.5 is a 50 % wider distribution).
        """
        if values.size == 0:
            return []
        # Only the window's moments and sketch are updated per value; they are
        # merged into the cumulative ones when the window closes.
        self.window_moments.update(values)
        self.window_sketch.update(values)
        start = 0
        if self.grid is None:
            take = min(self.warmup - self._warmup_count, values.size)
            self._warmup_values.append(values[:take].copy())
            self._warmup_count += take
            start = take
            if self._warmup_count >= self.warmup:
                self._set_reference(np.concatenate(self._warmup_values))
                self._warmup_values = []
        if start >= values.size:
            return []
        return self._score(values[start:], offset=start)

    def retune(self, params: DetectorParams) -> None:
        """New detector thresholds from now on (see :meth:`NumericDetectors.retune`)."""
        self.params = params
        self.detectors.retune(params)

    def _set_reference(self, sample: np.ndarray) -> None:
        self.grid = QuantileGrid.from_sorted_sample(np.sort(sample), GRID_SIZE)
        self.reference_moments = Moments.of(sample)
        self.reference_count = int(sample.size)
        self.reference_rank_error = 0.0 if sample.size <= GRID_SIZE else 1.0 / GRID_SIZE
        self.window_counts = WindowCounts(self.grid.size)
        self.detectors = NumericDetectors(self.params, reference_bias_variance(self.reference_count))

    def use_reference(self, sketch: kll_doubles_sketch, moments: Moments, params: DetectorParams | None = None) -> None:
        """Compare with a fixed reference (a profile's sketch) from now on.

        Warm-up ends (or never starts); the detectors restart against the new
        reference.  The current window's raw values are kept, so its
        distances are computed against the new reference when it closes.
        """
        if sketch.is_empty():
            raise ValueError("a reference sketch needs at least one value")
        if params is not None:
            self.params = params
        n = int(sketch.n)
        exact = not sketch.is_estimation_mode() and n <= GRID_SIZE
        size = n if exact else GRID_SIZE  # an exact small sketch gives back its sorted values
        probs = ((np.arange(size) + 0.5) / size).tolist()
        self.grid = QuantileGrid(np.asarray(sketch.get_quantiles(probs, True), dtype=np.float64))
        self.reference_moments = Moments(moments.n, moments.mean, moments.m2, moments.min, moments.max)
        self.reference_count = n
        self.reference_rank_error = 0.0 if exact else (
            (sketch.normalized_rank_error(False) if sketch.is_estimation_mode() else 0.0) + 1.0 / GRID_SIZE)
        self._warmup_values = []
        self._warmup_count = self.warmup
        self.detectors = NumericDetectors(
            self.params, reference_bias_variance(self.reference_count, self.reference_rank_error))
        self._pending_z = np.empty(0)
        self._recent_z = np.empty(0)
        self.window_z_sum = 0.0
        self.window_z_sq = 0.0
        self.window_scored = 0
        self.window_counts = WindowCounts(self.grid.size)

    def _score(self, values: np.ndarray, *, offset: int) -> list[tuple[int, Detection, tuple[float, float]]]:
        assert self.grid is not None
        located = self.grid.locate(values)
        _, z = self.grid.normal_scores(values, self._rng.random(values.size), located)
        assert self.window_counts is not None
        self.window_counts.add(self.grid, values, located)
        self.window_z_sum += float(z.sum())
        self.window_z_sq += float(np.dot(z, z))
        self.window_scored += int(z.size)
        block = self.params.block
        pair = 2 * block
        pending = self._pending_z.size
        z_all = np.concatenate((self._pending_z, z)) if pending else z
        full = (z_all.size // pair) * pair
        self._pending_z = z_all[full:].copy()
        if full:
            pair_scores = (z_all[:full].reshape(-1, pair).sum(axis=1) * (1.0 / math.sqrt(pair))).tolist()
            # index in z of each pair's last value (pending < pair: never before this call's values)
            pair_ends = list(range(pair - 1 - pending, full - pending, pair))
        else:
            pair_scores, pair_ends = [], []
        first = self.detectors.values
        found = self.detectors.update(z, pair_scores, pair_ends)
        # The effect is read from the scores just before a detection, which may
        # reach into earlier batches: keep them, so the batching never shows.
        keep = RECENT_BLOCKS * block
        kept = self._recent_z.size
        history = np.concatenate((self._recent_z, z)) if found else None
        self._recent_z = (history if history is not None else np.concatenate((self._recent_z, z[-keep:])))[-keep:].copy()
        out = []
        for det in found:
            index = det.value - first - 1  # in z, and so in values[offset:]
            effect = self._recent_effect(history, kept + index + 1)
            if det.detector == ADWIN and not self.detectors.adwin_counts(effect[0]):
                continue
            out.append((offset + index, det, effect))
        return out

    def _recent_effect(self, history: np.ndarray, end: int) -> tuple[float, float]:
        """Mean shift (reference sd) and spread ratio over the blocks up to ``end`` in ``history``."""
        seg = history[max(0, end - RECENT_BLOCKS * self.params.block): end]
        return float(seg.mean()), float(seg.std())

    def quantiles(self, *, window: bool) -> dict[str, float] | None:
        sketch = self.window_sketch if window else self.sketch
        if sketch.is_empty():
            return None
        qs = sketch.get_quantiles(list(SUMMARY_QUANTILES), True)  # inclusive: the inverted CDF
        return {f"p{round(q * 100):02d}": float(v) for q, v in zip(SUMMARY_QUANTILES, qs)}

    def window_drift(self) -> dict[str, float | None]:
        """Drift statistics for the closing window."""
        stats: dict[str, float | None] = dict(self.detectors.statistics())
        stats.update(self.window_distances())
        n = self.window_scored
        if n:
            mean_z = self.window_z_sum / n
            stats["mean_shift_sd"] = mean_z
            stats["spread_ratio"] = math.sqrt(max(self.window_z_sq / n - mean_z * mean_z, 0.0))
        else:
            stats["mean_shift_sd"] = None
            stats["spread_ratio"] = None
        return stats

    def window_distances(self) -> dict[str, float | None]:
        """KS (with its p-value), PSI and Wasserstein of this window's scored values against the reference."""
        counts = self.window_counts
        if self.grid is None or counts is None or counts.n == 0:
            return {"ks": None, "ks_p_value": None, "psi": None, "wasserstein_sd": None}
        d = numeric_distances(self.grid, self.reference_moments.sd, counts)
        p_value = ks_two_sample_p_value(d.ks, counts.n, self.reference_count, slack=self.reference_rank_error)
        return {"ks": d.ks, "ks_p_value": p_value, "psi": d.psi, "wasserstein_sd": d.wasserstein_sd}

    def reset_window(self) -> None:
        self.moments.merge(self.window_moments)
        if not self.window_sketch.is_empty():
            self.sketch.merge(self.window_sketch)
        self.window_moments = Moments()
        self.window_sketch = kll_doubles_sketch(KLL_K)
        self.window_z_sum = 0.0
        self.window_z_sq = 0.0
        self.window_scored = 0
        if self.grid is not None:
            self.window_counts = WindowCounts(self.grid.size)


def update_many(items: Sequence[tuple[NumericState, np.ndarray]]) -> list[list[tuple[int, Detection, tuple[float, float]]]]:
    """``[state.update(values) for state, values in items]`` (distinct states)."""
    return [state.update(values) for state, values in items]
