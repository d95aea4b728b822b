"""State of one numeric feature: moments, quantile sketches, reference, detectors."""

from __future__ import annotations

import hashlib
import math
import weakref

import numpy as np
from datasketches import kll_doubles_sketch

from collections.abc import Sequence

from driftline.state.detectors import ADWIN, Detection, DetectorParams, NumericDetectors, update_numeric_many
from driftline.stats.distance import WindowCounts, ks_two_sample_p_value, numeric_distances
from driftline.stats.moments import Moments
from driftline.stats.calibration import reference_bias_variance
from driftline.stats.normal import normal_quantile
from driftline.stats.pit import _TABLE_MIN, QuantileGrid

__all__ = ["NumericState", "SUMMARY_QUANTILES", "update_many"]

SUMMARY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
KLL_K = 200
GRID_SIZE = 1024
RECENT_BLOCKS = 8
#: the same, in pairs of blocks (ADWIN's unit)
RECENT_PAIRS = RECENT_BLOCKS // 2
#: values scored together by update_many (more: its temporaries leave the cache, and it gets slower)
GROUP_VALUES = 8192


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
        "params", "warmup", "moments", "window_moments", "window_sketch",
        "_warmup_values", "_warmup_count", "grid", "reference_moments", "detectors",
        "_rng", "_seed", "_skipped", "_pending_z", "_recent_pairs", "window_z_sum", "window_z_sq", "window_scored",
        "reference_count", "reference_rank_error", "window_counts",
    )

    def __init__(self, params: DetectorParams, *, warmup: int, seed: int) -> None:
        self.params = params
        self.warmup = warmup
        #: the moments of every value of the closed windows (their quantiles are not kept: nothing reads them)
        self.moments = Moments()
        self.window_moments = Moments()
        self.window_sketch = kll_doubles_sketch(KLL_K)
        #: the warm-up's values until the reference is set (then an empty tuple)
        self._warmup_values: list[np.ndarray] | tuple[()] = []
        self._warmup_count = 0
        self.grid: QuantileGrid | None = None
        self.reference_moments = Moments()
        self.detectors = NumericDetectors(params)
        #: the tie-breaking draws: ``default_rng(_seed)`` advanced by ``_skipped`` draws, built (into ``_rng``)
        #: only once a value ties with a reference atom (most features never do: 0.8 KB less each)
        self._rng: np.random.Generator | None = None
        self._seed = seed
        self._skipped = 0
        self._pending_z = np.empty(0)
        #: sums of the scores and of their squares of the last RECENT_BLOCKS blocks (as pairs)
        self._recent_pairs = np.empty((0, 2))
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
        over the data that shows the change, in reference units (normal scores:
        a shift of 1.0 is one reference standard deviation for normal data; a
        spread ratio of 1.5 is a 50 % wider distribution).  For a CUSUM that
        data is the run since its sum was last 0 (where the change began, by
        the CUSUM's own estimate): the mean and standard deviation of the
        scores over it; for ADWIN, over the last RECENT_BLOCKS blocks.
        """
        if values.size == 0:
            return []
        if self.grid is not None:
            return _score_many([self], [values])[0]
        # Only the window's moments and sketch are updated per value; they are
        # merged into the cumulative ones when the window closes.
        self.window_moments.update(values)
        self.window_sketch.update(values)
        take = min(self.warmup - self._warmup_count, values.size)
        self._warmup_values.append(values[:take].copy())
        self._warmup_count += take
        if self._warmup_count >= self.warmup:
            self._set_reference(np.concatenate(self._warmup_values))
            self._warmup_values = ()  # (one empty tuple for every warmed-up state)
        if take >= values.size:
            return []
        return [(take + index, det, effect)
                for index, det, effect in _score_many([self], [values[take:]], counted=True)[0]]

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
        self.grid = QuantileGrid(_profile_points(sketch, size))
        self.reference_moments = Moments(moments.n, moments.mean, moments.m2, moments.min, moments.max)
        self.reference_count = n
        self.reference_rank_error = 0.0 if exact else (
            (sketch.normalized_rank_error(False) if sketch.is_estimation_mode() else 0.0) + 1.0 / GRID_SIZE)
        self._warmup_values = ()
        self._warmup_count = self.warmup
        self.detectors = NumericDetectors(
            self.params, reference_bias_variance(self.reference_count, self.reference_rank_error))
        self._pending_z = np.empty(0)
        #: sums of the scores and of their squares of the last RECENT_BLOCKS blocks (as pairs)
        self._recent_pairs = np.empty((0, 2))
        self.window_z_sum = 0.0
        self.window_z_sq = 0.0
        self.window_scored = 0
        self.window_counts = WindowCounts(self.grid.size)

    def quantiles(self, *, window: bool = True) -> dict[str, float] | None:
        """The window's quantiles (only the window's are kept: ``window`` must be True)."""
        if not window:
            raise ValueError("only the window's quantiles are kept")
        sketch = self.window_sketch
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

    def draws(self, n: int) -> np.ndarray:
        """The next ``n`` tie-breaking draws, U(0, 1) (after the ones skipped)."""
        rng = self._rng
        if rng is None:
            rng = self._rng = np.random.default_rng(self._seed)
        if self._skipped:
            rng.bit_generator.advance(self._skipped)
            self._skipped = 0
        return rng.random(n)

    def reset_window(self) -> None:
        self.moments.merge(self.window_moments)
        self.window_moments = Moments()
        self.window_sketch = kll_doubles_sketch(KLL_K)
        self.window_z_sum = 0.0
        self.window_z_sq = 0.0
        self.window_scored = 0
        if self.grid is not None:
            self.window_counts = WindowCounts(self.grid.size)


Found = list[tuple[int, Detection, tuple[float, float]]]


def update_many(items: Sequence[tuple[NumericState, np.ndarray]]) -> list[list[tuple[int, Detection, tuple[float, float]]]]:
    """``[state.update(values) for state, values in items]``, the same results in the same order, in few
    NumPy calls for all the states together (the states must be distinct objects; values finite float64).

    States in warm-up (or finishing it in this call) are updated one by one; all the others are scored
    together by :func:`_score_many`.
    """
    out: list[Found] = [[] for _ in items]
    states: list[NumericState] = []
    chunks: list[np.ndarray] = []
    where: list[int] = []
    for i, (state, values) in enumerate(items):
        if values.size == 0:
            continue
        if state.grid is None:
            out[i] = state.update(values)
        else:
            states.append(state)
            chunks.append(values)
            where.append(i)
    # in groups of about GROUP_VALUES values: the temporaries of a group stay in the cache
    begin, total = 0, 0
    for end, values in enumerate(chunks, 1):
        total += values.size
        if total >= GROUP_VALUES or end == len(chunks):
            for i, found in zip(where[begin:end], _score_many(states[begin:end], chunks[begin:end])):
                out[i] = found
            begin, total = end, 0
    return out


#: the grid points of each profile sketch in use, by the sketch's bytes: the monitors of one profile (every
#: partition's, every model version's) share one array (in memory, and once in a checkpoint)
_PROFILE_POINTS: "weakref.WeakValueDictionary[bytes, np.ndarray]" = weakref.WeakValueDictionary()


def _profile_points(sketch: kll_doubles_sketch, size: int) -> np.ndarray:
    """The sketch's quantiles at ``(j + 0.5) / size`` (one array for equal sketches: the same numbers)."""
    key = hashlib.blake2b(sketch.serialize(), digest_size=16, person=size.to_bytes(4, "little")).digest()
    points = _PROFILE_POINTS.get(key)
    if points is None:
        probs = ((np.arange(size) + 0.5) / size).tolist()
        points = np.asarray(sketch.get_quantiles(probs, True), dtype=np.float64)
        _PROFILE_POINTS[key] = points
    return points


def _merge_moments(m: Moments, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
    """``m.merge(Moments(n, mean, m2, lo, hi))`` without building the second one (the same arithmetic)."""
    if m.n == 0:
        m.n, m.mean, m.m2, m.min, m.max = n, mean, m2, lo, hi
        return
    total = m.n + n
    delta = mean - m.mean
    m.mean += delta * n / total
    m.m2 += m2 + delta * delta * m.n * n / total
    m.n = total
    m.min = min(m.min, lo)
    m.max = max(m.max, hi)


def _gather(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([source[s:s + n] for s, n in zip(starts, lengths)])`` in one take."""
    total = int(lengths.sum())
    if not total:
        return source[:0].copy()
    ends = np.cumsum(lengths)
    return source.take(np.repeat(starts - (ends - lengths), lengths) + np.arange(total))


def _score_many(states: list[NumericState], chunks: list[np.ndarray], *, counted: bool = False) -> list[Found]:
    """Score non-empty chunks of values of warmed-up, distinct states: one state's ``update`` each.

    Elementwise steps (the rank transform, the normal scores, the CUSUM increments) run over all the
    values at once; reductions run row by row of equal-length rows (so each is the one-state sum to the
    last bit) or per state; per state only what is tied to one object (its sketch, its generator, its
    grid's search, ADWIN).  ``counted``: the window's moments and sketch already have the values.
    """
    count = len(states)
    sizes = [v.size for v in chunks]
    lengths = np.array(sizes, dtype=np.intp)
    width = max(sizes)
    equal = min(sizes) == width
    x = np.concatenate(chunks) if count > 1 else chunks[0]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    if not counted:
        if equal:
            rows = x.reshape(count, width)
            means = rows.mean(axis=1)
            m2s = np.square(rows - means[:, None]).sum(axis=1).tolist()
            mins, maxs = rows.min(axis=1).tolist(), rows.max(axis=1).tolist()
            means = means.tolist()
            for i, st in enumerate(states):
                _merge_moments(st.window_moments, width, means[i], m2s[i], mins[i], maxs[i])
        else:
            for st, v in zip(states, chunks):
                st.window_moments.update(v)
        for st, v in zip(states, chunks):
            st.window_sketch.update(v)
    grids = [st.grid for st in states]
    points = [g.points for g in grids]  # type: ignore[union-attr]
    one = count == 1
    if one:
        lo = grids[0].below(x)  # type: ignore[union-attr]
        sizes_m = np.array([points[0].size], dtype=np.intp)
        m_int = points[0].size
        m = float(m_int)
        # (np.minimum / np.maximum instead of np.clip: the same numbers, fewer passes over the batch)
        inner = np.minimum(np.maximum(lo, 1), m_int - 1) if m_int > 1 else np.zeros_like(lo)
    else:
        if width < _TABLE_MIN:
            lo = np.concatenate([q.searchsorted(v) for q, v in zip(points, chunks)])
        else:
            lo = np.concatenate([g.below(v) for g, v in zip(grids, chunks)])  # type: ignore[union-attr]
        sizes_m = np.array([q.size for q in points], dtype=np.intp)
        m_int = np.repeat(sizes_m, lengths)  # type: ignore[assignment]
        m = m_int.astype(np.float64)  # type: ignore[assignment, union-attr]
        # (a one-point grid: inner 0, as QuantileGrid.to_uniform has it)
        inner = np.minimum(np.maximum(lo, 1), np.maximum(m_int - 1, 0))
    # QuantileGrid.to_uniform over all the values (m per value), the same operations in the same order
    if one:
        q = points[0]
        left = q.take(inner - 1) if q.size > 1 else q.take(inner)
        right = q.take(inner)
    else:
        # (a one-point grid: inner 0, and index -1 is that point too)
        # both neighbours of each value in one take per grid: rows (inner − 1, inner)
        pair_index = np.empty((x.size, 2), dtype=np.intp)
        np.subtract(inner, 1, out=pair_index[:, 0])
        pair_index[:, 1] = inner
        sides = np.concatenate([q.take(pair_index[a:b]) for q, a, b in zip(points, starts.tolist(), ends.tolist())])
        left, right = sides[:, 0], sides[:, 1]
    # QuantileGrid.locate: only values equal to a grid point need the second search
    hit = x == np.where(lo == 0, left, right)
    hi = lo
    hit_set: set[int] = set()
    if hit.any():
        hi = lo.copy()
        hit_states = np.unique(np.searchsorted(ends, np.flatnonzero(hit), side="right")).tolist()
        for i in hit_states:
            a, b = int(starts[i]), int(ends[i])
            sub = hit[a:b]
            hi[a:b][sub] = points[i].searchsorted(x[a:b][sub], side="right")
            if (hi[a:b] != lo[a:b]).any():
                hit_set.add(i)
    width_q = right - left
    positive = width_q > 0
    all_positive = bool(positive.all())
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (x - left) / (width_q if all_positive else np.where(positive, width_q, 1.0))
    if not all_positive:
        frac[~positive] = 0.5
    u = (inner - 0.5 + np.minimum(np.maximum(frac, 0.0), 1.0)) / m
    tied = hi > lo
    any_tied = bool(tied.any())
    # One U(0, 1) draw per value, used only for values tied with reference atoms: a state without
    # ties in this chunk advances its generator past the draws instead (the same state afterwards).
    # (the draws skipped are counted, and the generator advanced past them before its next draw: the same)
    if any_tied:
        if one:
            jitter = states[0].draws(width)
        else:
            jitter = np.zeros(x.size)
            for i, st in enumerate(states):
                if i in hit_set:
                    jitter[starts[i]:ends[i]] = st.draws(sizes[i])
                else:
                    st._skipped += sizes[i]
        u = np.where(tied, (lo + jitter * (hi - lo)) / m, u)
    else:
        for st, n in zip(states, sizes):
            st._skipped += n
    below = lo == 0
    above = lo == m_int
    if below.any():
        u = np.where(~tied & below if any_tied else below, 0.25 / m, u)
    if above.any():
        u = np.where(~tied & above if any_tied else above, 1.0 - 0.25 / m, u)
    eps = 0.25 / m
    z = normal_quantile(np.minimum(np.maximum(u, eps), 1.0 - eps))

    # WindowCounts.add of every state, from one bincount over all their grids' cells
    cells = sizes_m + 1
    cell_ends = np.cumsum(cells)
    cell_starts = (cell_ends - cells)
    if one:
        le_all = np.bincount(lo, minlength=int(cells[0]))
        lt_all = le_all if hi is lo else np.bincount(hi, minlength=int(cells[0]))
    else:
        shift = np.repeat(cell_starts, lengths)
        total = int(cell_ends[-1])
        le_all = np.bincount(lo + shift, minlength=total)
        lt_all = le_all if hi is lo else np.bincount(hi + shift, minlength=total)
    # (the counts of one call in the dtype most window counts have: one cast here, not one per state)
    small = np.uint8 if width <= 0xFF else np.uint16 if width <= 0xFFFF else None
    if small is not None:
        le_all = le_all.astype(small)
        lt_all = le_all if hi is lo else lt_all.astype(small)
    # each state's largest cell (of both counts), for the dtype of its window counts
    top_cell = np.maximum.reduceat(le_all, cell_starts) if not one else np.array([le_all.max()])
    if lt_all is not le_all:
        top_cell = np.maximum(top_cell, np.maximum.reduceat(lt_all, cell_starts) if not one else lt_all.max())
    largest = top_cell.tolist()
    excess_states: set[int] = set()
    if above.any() or below.any():
        excess_states.update(np.searchsorted(ends, np.flatnonzero(above | below), side="right").tolist())

    # pair scores: every state's completed pairs of blocks, as rows of one matrix
    pendings = [st._pending_z for st in states]
    pairs_of = [2 * st.params.block for st in states]
    zs = [z[a:b] for a, b in zip(starts.tolist(), ends.tolist())] if count > 1 else [z]
    joined = np.concatenate([a for pz, zz in zip(pendings, zs) for a in (pz, zz)]) if count > 1 else (
        np.concatenate((pendings[0], z)) if pendings[0].size else z)
    pend_sizes = [pz.size for pz in pendings]
    totals = [p + n for p, n in zip(pend_sizes, sizes)]
    fulls = [(t // pair) * pair for t, pair in zip(totals, pairs_of)]
    join_starts = np.cumsum([0] + totals[:-1]).tolist() if not one else [0]
    pair_lists: list[tuple[list[float], list[int]]] = []
    by_pair: dict[int, list[int]] = {}
    for i, full in enumerate(fulls):
        if full:
            by_pair.setdefault(pairs_of[i], []).append(i)
    scores_of: dict[int, list[float]] = {}
    sums_of: dict[int, np.ndarray] = {}
    for pair, members in by_pair.items():
        row_starts = np.concatenate([np.arange(join_starts[i], join_starts[i] + fulls[i], pair) for i in members])
        block_rows = joined.take(row_starts[:, None] + np.arange(pair))
        raw = block_rows.sum(axis=1)
        flat = (raw * (1.0 / math.sqrt(pair))).tolist()
        raw_both = np.stack((raw, np.square(block_rows).sum(axis=1)), axis=1)
        pos = 0
        for i in members:
            r = fulls[i] // pair
            scores_of[i] = flat[pos:pos + r]
            sums_of[i] = raw_both[pos:pos + r]
            pos += r
    for i in range(count):
        if fulls[i]:
            p, pair = pend_sizes[i], pairs_of[i]
            pair_lists.append((scores_of[i], list(range(pair - 1 - p, fulls[i] - p, pair))))
        else:
            pair_lists.append(([], []))
    if one:
        remainder = joined[fulls[0]:].copy()
        rest_ends = [remainder.size]
    else:
        rest = np.array([t - f for t, f in zip(totals, fulls)], dtype=np.intp)
        remainder = _gather(joined, np.array(join_starts, dtype=np.intp) + np.array(fulls, dtype=np.intp), rest)
        rest_ends = np.cumsum(rest).tolist()

    zrows = z.reshape(count, width) if equal else None
    if zrows is not None:
        z_sums = zrows.sum(axis=1).tolist()
    else:
        z_sums = [float(zz.sum()) for zz in zs]
    if equal:
        zmat = zrows
    else:
        zmat = np.zeros((count, width))
        zmat[np.arange(width)[None, :] < lengths[:, None]] = z
    dets = [st.detectors for st in states]
    firsts = [d.values for d in dets]
    found_all = update_numeric_many(dets, zmat, lengths, pair_lists)

    out: list[Found] = []
    start_list, end_list = starts.tolist(), ends.tolist()
    cell_list = cell_starts.tolist()
    cell_sizes = cells.tolist()
    rest_from = 0
    for i, st in enumerate(states):
        zz = zs[i]
        n = sizes[i]
        st.window_z_sum += z_sums[i]
        st.window_z_sq += float(np.dot(zz, zz))
        st.window_scored += n
        counts = st.window_counts
        assert counts is not None
        c0 = cell_list[i]
        c1 = c0 + cell_sizes[i]
        counts.add_counts(le_all[c0:c1], lt_all[c0:c1] if i in hit_set else None, n, largest[i])
        if i in excess_states:
            q = points[i]
            v = x[start_list[i]:end_list[i]]
            top, bottom = q[-1], q[0]
            counts.above_excess += float(np.sum(v[v > top] - top))
            counts.below_excess += float(np.sum(bottom - v[v < bottom]))
        st._pending_z = remainder[rest_from:rest_ends[i]]
        rest_from = rest_ends[i]
        found = found_all[i]
        ring = st._recent_pairs
        chunk_pairs = sums_of.get(i)
        if chunk_pairs is not None:
            both = np.concatenate((ring, chunk_pairs)) if ring.size else chunk_pairs
            st._recent_pairs = both[-RECENT_PAIRS:].copy()
        result: Found = []
        for det, extra in found:
            index = det.value - firsts[i] - 1  # in this chunk's values
            if det.detector == ADWIN:
                # the cut counts if the mean score of the last RECENT_BLOCKS blocks is away from 0
                # (ADWIN finds a change hundreds of values after it began, so these blocks show it; its
                # own window after the cut still holds data from before the change)
                p = extra[0]
                recent = np.concatenate((ring, chunk_pairs[:p + 1]))[-RECENT_PAIRS:]  # type: ignore[index]
                values = recent.shape[0] * pairs_of[i]
                mean = float(recent[:, 0].sum()) / values
                if not st.detectors.adwin_counts(mean):
                    continue
                effect = (mean, math.sqrt(max(float(recent[:, 1].sum()) / values - mean * mean, 0.0)))
            else:
                effect = _run_effect(*extra)
            result.append((index, det, effect))
        out.append(result)
    return out


def _run_effect(total: float, squares: float, count: float) -> tuple[float, float]:
    """Mean and standard deviation of the scores of a CUSUM's run (their sum, sum of squares, count)."""
    if count <= 0:
        return 0.0, 0.0
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0))
