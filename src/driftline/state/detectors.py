"""Sequential detectors that test the data against the reference itself.

Every numeric value is mapped to its normal score ``z`` in the reference
(:mod:`driftline.stats.pit`): under the reference ``z`` is N(0, 1) for any
feature, so the detectors know what the scores *should* be and a stream that
differs from its reference from the very first record is found as fast as
one that changes later.  Three detectors watch each numeric feature:

* ``page_hinkley`` — Page's two-sided CUSUM of ``z`` with the reference's
  known mean 0 (the Page-Hinkley test with a known mean): increments ``z − k``
  and ``−z − k``, ``k`` half the design shift;
* ``page_hinkley_spread`` — two-sided CUSUM of the log-likelihood ratios of
  ``z²`` for a variance ``1.3²`` (:data:`SPREAD_DESIGN`) and its inverse;
* ``adwin`` — river's ADWIN on block scores, a second opinion on slow,
  gradual change.  ADWIN compares the stream with itself, so its cut when
  the data *returns* to the reference would read as a drift: a cut counts
  only when the mean normal score of the 256 values before it is at least
  ``design_shift / 2`` from the reference's 0 (the location CUSUM's
  reference value ``k``: a mean within it is not a drift of the design
  size, and over 256 values ``k`` is 4 standard errors, so a return to the
  reference is dropped).  The mean of ADWIN's own window is not used: after
  a cut it may still hold the drifted values before the return.

The CUSUMs are computed over whole arrays (``S = W − min(W₀ − S₀, cummin W)``
with ``W`` the cumulative sum of the increments; :func:`capped_cusum`).  On a
detection a CUSUM is not reset: it is capped at twice its threshold, so it
stays up while the data still differs and falls back, at the in-control
drift, once the data is back.  A detection is reported when a CUSUM rises
above its threshold while *armed*; it re-arms once it has fallen to half its
threshold, so one excursion gives one detection and noise around the
threshold does not give a burst of them.  :attr:`NumericDetectors.differs`
is True from a detection until every CUSUM has re-armed.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from river import drift

from driftline.stats.calibration import location_threshold, spread_design, spread_thresholds

__all__ = ["DetectorParams", "NumericDetectors", "update_numeric_many", "CategoryCusums", "CusumBank", "Detection", "capped_cusum", "crossings",
           "PAGE_HINKLEY", "PAGE_HINKLEY_SPREAD", "ADWIN", "CATEGORY_CUSUM", "CAP", "REARM"]

PAGE_HINKLEY = "page_hinkley"
PAGE_HINKLEY_SPREAD = "page_hinkley_spread"
ADWIN = "adwin"
CATEGORY_CUSUM = "category_cusum"
_SIGNS = np.array((1.0, -1.0))
#: the spread ratio (sd) the spread CUSUMs are designed for, up and (inverted) down: ×1.3 costs a normal
#: feature's ×1.5 change a few values of delay against a ×1.5 design, and finds the same change of a
#: heavy-tailed feature (whose normal scores spread less: ×1.28 for Student t3) a third sooner
SPREAD_DESIGN = 1.3
#: a CUSUM is capped at CAP × its threshold and re-arms at REARM × its threshold
CAP = 2.0
REARM = 0.5


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Parameters of a feature's sequential detectors (see :mod:`driftline.stats.calibration`)."""

    #: values per block score fed to ADWIN (ADWIN sees pairs of blocks)
    block: int
    #: false alarms per event that one check of this feature may use
    share: float
    #: the smallest location shift (reference sd) worth finding quickly
    design_shift: float
    adwin_delta: float


class Detection(NamedTuple):
    """A detector firing.

    ``value`` counts the values scored against the current reference, up to
    and including the one that completed the detection (1-based).
    """

    detector: str
    value: int
    statistic: float
    threshold: float


def capped_cusum(x: np.ndarray, s0: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """``S[i] = min(cap, max(0, S[i-1] + x[i]))`` from ``S[-1] = s0``, column by column of ``x`` (n × m).

    (The stateless form of :meth:`CusumBank.update`, which carries the walk across calls.)
    """
    n, m = x.shape
    s0 = np.asarray(s0, dtype=np.float64)
    walk = _Walk(s0.copy(), np.zeros(m), -s0, np.zeros(m, dtype=bool))
    buf = np.empty((m, n + 1))
    buf[:, 1:] = x.T
    return walk.run(buf, np.asarray(cap, dtype=np.float64))[0].T


class _Walk:
    """The state of capped CUSUMs between values: ``S = W − E`` (below the cap: ``E`` the running
    minimum of the walk ``W`` and of ``−S₀``) or ``S = cap + W − E`` (``high``: at the cap, ``E`` the
    running maximum of ``W`` and of ``cap − S₀``).

    Below the cap ``W − min(−S₀, cummin W)`` is the walk reflected at 0; a
    row that reaches the cap continues as the walk reflected at the cap
    until that reaches 0, and so on: a switch needs a traverse of the whole
    ``[0, cap]``, so there are few.  The walk and its extreme carry on from
    one call to the next (the cumulative sums are continued, not restarted),
    so the values are the same, to the last bit, however the stream is cut
    into calls; they restart only at switches and where the caller says
    (at fixed positions of the stream).
    """

    __slots__ = ("s", "w", "e", "high")

    def __init__(self, s: np.ndarray, w: np.ndarray, e: np.ndarray, high: np.ndarray) -> None:
        self.s, self.w, self.e, self.high = s, w, e, high

    def run(self, buf: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``buf``: one row per CUSUM, its increments from column 1 (column 0 is overwritten); returns the
        sums (m × n) and each row's largest.  Rows are contiguous, so the cumulative sums run along memory."""
        incs = buf[:, 1:].copy()  # (a row that reaches the cap is redone from its increments)
        buf[:, 0] = self.w
        w = np.cumsum(buf, axis=1, out=buf)[:, 1:]  # continued from the carried walk, value by value
        e = np.minimum(np.minimum.accumulate(w, axis=1), self.e[:, None])
        out = w - e
        peak = out.max(axis=1)
        slow = self.high | (peak > cap)
        if not slow.any():
            self.w = w[:, -1].copy()
            self.e = e[:, -1].copy()
            self.s = out[:, -1].copy()
            return out, peak
        fast = ~slow
        self.w[fast] = w[fast, -1]
        self.e[fast] = e[fast, -1]
        for row in np.flatnonzero(slow):
            out[row] = self._row(incs[row], row, float(cap[row]))
            peak[row] = out[row].max()
        self.s = out[:, -1].copy()
        return out, peak

    def _row(self, x: np.ndarray, row: int, cap: float) -> np.ndarray:
        n = x.size
        out = np.empty(n)
        i = 0
        w0, e0, high = float(self.w[row]), float(self.e[row]), bool(self.high[row])
        while i < n:
            w = np.cumsum(np.concatenate(((w0,), x[i:])))[1:]
            if high:
                e = np.maximum(np.maximum.accumulate(w), e0)
                seg = cap + w - e
                bad = seg < 0.0
            else:
                e = np.minimum(np.minimum.accumulate(w), e0)
                seg = w - e
                bad = seg > cap
            stop = int(np.argmax(bad)) if bad.any() else seg.size
            out[i:i + stop] = seg[:stop]
            if stop == seg.size:
                w0, e0 = float(w[-1]), float(e[-1])
                break
            out[i + stop] = 0.0 if high else cap
            # restart in the other regime from the barrier: W = 0, E = 0 (−0 at 0, cap − cap at the cap)
            w0 = e0 = 0.0
            high = not high
            i += stop + 1
        self.w[row], self.e[row], self.high[row] = w0, e0, high
        return out

    def rebase(self, cap: np.ndarray) -> None:
        """Restart the walks from the current sums (W = 0), the sums clipped to ``cap``."""
        self.s = np.minimum(self.s, cap)
        self.w = np.zeros(self.s.size)
        self.e = np.where(self.high, cap - self.s, -self.s)


def crossings(s: np.ndarray, threshold: float, armed: bool) -> tuple[list[int], bool]:
    """Indices where ``s`` rises above ``threshold`` while armed, and whether it is armed at the end.

    A crossing disarms; falling to ``REARM × threshold`` or below re-arms.
    """
    found: list[int] = []
    pos, n = 0, s.size
    rearm = REARM * threshold
    while pos < n:
        rest = s[pos:]
        if armed:
            hit = rest > threshold
            if not hit.any():
                break
            pos += int(np.argmax(hit))
            found.append(pos)
            armed = False
        else:
            low = rest <= rearm
            if not low.any():
                break
            pos += int(np.argmax(low))
            armed = True
        pos += 1
    return found, armed


#: the walks restart (W = 0) at every multiple of this many values of the stream, so their cumulative
#: sums stay small (and so exact to a fraction of an ulp of the thresholds) on streams of any length
REBASE = 1 << 16


#: the threshold arrays in use, by their bytes: the CUSUMs of a model's features (equal references, equal
#: budgets) share one read-only array
_THRESHOLDS: "weakref.WeakValueDictionary[bytes, np.ndarray]" = weakref.WeakValueDictionary()


def _shared_thresholds(thresholds: np.ndarray) -> np.ndarray:
    """A read-only array equal to ``thresholds`` (float64), the same one for equal thresholds."""
    values = np.asarray(thresholds, dtype=np.float64)
    key = values.tobytes()
    shared = _THRESHOLDS.get(key)
    if shared is None or shared.shape != values.shape:
        shared = values.copy()
        shared.setflags(write=False)
        _THRESHOLDS[key] = shared
    return shared


class CusumBank:
    """``m`` one-sided capped CUSUMs fed together (an n × m matrix of increments per update)."""

    __slots__ = ("threshold", "armed", "walk", "fed")

    def __init__(self, thresholds: np.ndarray) -> None:
        #: read-only, shared by the banks with the same thresholds (replaced, never written in place)
        self.threshold = _shared_thresholds(thresholds)
        m = self.threshold.size
        self.armed = np.ones(m, dtype=bool)
        self.walk = _Walk(np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m, dtype=bool))
        #: rows fed so far
        self.fed = 0

    @property
    def statistic(self) -> np.ndarray:
        """The current sums."""
        return self.walk.s

    @property
    def differs(self) -> bool:
        """Some CUSUM is above its threshold or has not fallen back to re-arm since its detection."""
        return bool((~self.armed).any() or (self.walk.s > self.threshold).any())

    def set_thresholds(self, thresholds: np.ndarray) -> None:
        """New thresholds; the sums carry on (a sum above a new threshold while armed fires on the next value)."""
        self.threshold = _shared_thresholds(thresholds)
        self.walk.rebase(CAP * self.threshold)

    def buffer(self, n: int) -> np.ndarray:
        """An array for :meth:`update_buffer`: one row per CUSUM, ``n`` increments from column 1."""
        return np.empty((self.threshold.size, n + 1))

    def update(self, increments: np.ndarray) -> list[tuple[int, int, float]]:
        """Feed an n × m matrix (a column per CUSUM); return ``(row, column, statistic)`` of each detection,
        in row order."""
        buf = self.buffer(increments.shape[0])
        buf[:, 1:] = increments.T
        return self.update_buffer(buf)

    def update_buffer(self, buf: np.ndarray, keep: list[np.ndarray] | None = None) -> list[tuple[int, int, float]]:
        """Feed the increments in ``buf[:, 1:]`` (from :meth:`buffer`; overwritten); return
        ``(value index, CUSUM, statistic)`` of each detection, in value order (and append the m × n sums
        to ``keep`` if given)."""
        n = buf.shape[1] - 1
        if n <= 0:
            return []
        cap = CAP * self.threshold
        if (self.fed % REBASE) + n <= REBASE:
            s, peak = self.walk.run(buf, cap)
            if (self.fed + n) % REBASE == 0:
                self.walk.rebase(cap)
        else:
            parts, peaks = [], []
            start = 0
            while start < n:
                # cut at the stream's multiples of REBASE, whatever the calls' sizes
                end = min(n, start + REBASE - (self.fed + start) % REBASE)
                part = self.buffer(end - start)
                part[:, 1:] = buf[:, 1 + start:1 + end]
                sums, top = self.walk.run(part, cap)
                parts.append(sums)
                peaks.append(top)
                if (self.fed + end) % REBASE == 0:
                    self.walk.rebase(cap)
                start = end
            s = np.hstack(parts)
            peak = np.max(peaks, axis=0)
        self.fed += n
        if keep is not None:
            keep.append(s)
        found: list[tuple[int, int, float]] = []
        # Only sums that are above their threshold somewhere, or disarmed, need a look.
        look = (peak > self.threshold) | ~self.armed
        if look.any():
            for col in np.flatnonzero(look):
                rows, armed = crossings(s[col], float(self.threshold[col]), bool(self.armed[col]))
                self.armed[col] = armed
                found += [(r, int(col), float(s[col, r])) for r in rows]
            found.sort()
        return found


@lru_cache(maxsize=1)
def _spread_sides() -> tuple[float, float, float, float]:
    """``(g↑, c↑, g↓, c↓)`` of the spread CUSUMs' increments ``g·z² − c``."""
    ratio = SPREAD_DESIGN ** 2
    g_up, c_up = spread_design(ratio)
    g_down, c_down = spread_design(1.0 / ratio)
    return g_up, c_up, g_down, c_down


class NumericDetectors:
    """Reference-relative CUSUMs (location, spread) over every value and ADWIN over pairs of blocks.

    ``bias_variance`` is the variance of the reference's own error in
    normal-score units (:func:`driftline.stats.calibration.reference_bias_variance`);
    the thresholds account for it.
    """

    __slots__ = ("params", "bias_variance", "k", "spread", "cusums", "adwin", "values", "run")

    #: columns of the CUSUM bank
    LOCATION_UP, LOCATION_DOWN, SPREAD_UP, SPREAD_DOWN = range(4)

    def __init__(self, params: DetectorParams, bias_variance: float = 0.0) -> None:
        self.params = params
        self.bias_variance = bias_variance
        self.k = params.design_shift / 2.0
        #: increments g·z² − c of the spread sides (one tuple for every detector)
        self.spread = _spread_sides()
        self.cusums = CusumBank(self._thresholds(params))
        self.adwin = drift.ADWIN(delta=params.adwin_delta, clock=1)
        self.values = 0
        #: per CUSUM, the run of values since its sum was last 0 (where the change it sees began, the
        #: CUSUM's change-point estimate): the sum of their scores, of their squares, and their count
        self.run = np.zeros((4, 3))

    @property
    def _spread_c(self) -> np.ndarray:
        return np.array(((self.spread[1],), (self.spread[3],)))

    def _thresholds(self, params: DetectorParams) -> np.ndarray:
        h = location_threshold(params.share, self.k, self.bias_variance)
        up, down = spread_thresholds(params.share, SPREAD_DESIGN ** 2, self.bias_variance)
        return np.array([h, h, up, down])

    @property
    def differs(self) -> bool:
        """A reference-relative CUSUM is above its threshold (or has not fallen back since it fired)."""
        return self.cusums.differs

    def adwin_counts(self, recent_mean: float) -> bool:
        """Whether an ADWIN cut is a drift: the mean normal score of the values just before it is at least
        ``design_shift / 2`` from the reference's 0 (a cut as the data returns to the reference is not)."""
        return abs(recent_mean) >= self.k

    def retune(self, params: DetectorParams) -> None:
        """Use new thresholds from now on (the model's feature count grew).

        The CUSUMs keep their sums; river's ADWIN holds its delta in compiled
        code, so it restarts with the new one.
        """
        if params == self.params:
            return
        if params.block != self.params.block or params.design_shift != self.params.design_shift:
            raise ValueError("retuning cannot change the block size or the design shift")
        self.cusums.set_thresholds(self._thresholds(params))
        if params.adwin_delta != self.params.adwin_delta:
            self.adwin = drift.ADWIN(delta=params.adwin_delta, clock=1)
        self.params = params

    def _adwin(self, found: list, first: int, pair_scores: list[float], pair_ends: list[int],
               extras: bool = False) -> None:
        """Feed the pair scores to ADWIN; append its detections to ``found`` (with ``extras``: as
        ``(detection, (pair index, mean pair score of ADWIN's window after the cut))``) and sort it by value."""
        adw = self.adwin
        delta = self.params.adwin_delta
        helper = adw._helper
        for p, (score, end) in enumerate(zip(pair_scores, pair_ends)):
            # river's ADWIN.update, without its Python frame: a window that detected restarts first
            if adw._drift_detected:
                adw._reset()
                helper = adw._helper
            # ``_drift_detected`` is what river's read-only ``drift_detected`` property returns.
            # (The caller keeps a cut only if the recent scores are away from the reference: adwin_counts.)
            adw._drift_detected = helper.update(score)
            if adw._drift_detected:
                det = Detection(ADWIN, first + max(end, 0) + 1, abs(adw.estimation), delta)
                found.append((det, (p, adw.estimation)) if extras else det)
        found.sort(key=(lambda d: d[0].value) if extras else (lambda d: d.value))

    def update(self, z: np.ndarray, pair_scores: list[float], pair_ends: list[int]) -> list[Detection]:
        """Feed normal scores ``z`` (in order) and the pair scores completed by them.

        ``pair_ends[i]`` is the index in ``z`` of the last value of pair ``i``
        (−1 when the pair ended before this call's values: reported at the
        first value).  Detections come back in value order.
        """
        if z.size:
            return [d for d, _ in update_numeric_many([self], z[None, :], np.array([z.size]),
                                                      [(pair_scores, pair_ends)])[0]]
        found: list[Detection] = []
        if pair_scores:
            self._adwin(found, self.values, pair_scores, pair_ends)
        return found

    def statistics(self) -> dict[str, float]:
        """Current detector statistics, for window summaries and gauges.

        ``page_hinkley`` is the larger location CUSUM (its threshold is the
        same on both sides); ``page_hinkley_spread`` the larger spread CUSUM,
        the down side scaled to the up side's threshold.
        """
        s, th = self.cusums.statistic, self.cusums.threshold
        return {
            PAGE_HINKLEY: float(max(s[0], s[1])),
            PAGE_HINKLEY_SPREAD: float(max(s[2], s[3] * th[2] / th[3])),
            "adwin_width": float(self.adwin.width),
        }


_NAMES = (PAGE_HINKLEY, PAGE_HINKLEY, PAGE_HINKLEY_SPREAD, PAGE_HINKLEY_SPREAD)


def _numeric_increments(z: np.ndarray, k: np.ndarray, spread: np.ndarray, buf: np.ndarray) -> None:
    """Rows z − k, −z − k, g↑·z² − c↑, g↓·z² − c↓ of each detector into ``buf[:, :, 1:]`` (as
    :meth:`NumericDetectors.update` computes them: the same operations)."""
    inc = buf[:, :, 1:]
    np.subtract(z, k[:, None], out=inc[:, 0])
    np.negative(z, out=inc[:, 1])
    inc[:, 1] -= k[:, None]
    sq = z * z
    np.multiply(sq, spread[:, 0:1], out=inc[:, 2])
    inc[:, 2] -= spread[:, 1:2]
    np.multiply(sq, spread[:, 2:3], out=inc[:, 3])
    inc[:, 3] -= spread[:, 3:4]


#: chunks at least this long are walked detector by detector (update_numeric_many)
_LONG = 512


def update_numeric_many(detectors: list[NumericDetectors], z: np.ndarray, lengths: np.ndarray,
                        pairs: list[tuple[list[float], list[int]]]) -> list[list[Detection]]:
    """:meth:`NumericDetectors.update` of many detectors (distinct objects) at once, with the same results.

    ``z[i, :lengths[i]]`` are detector ``i``'s normal scores (``z`` is ``len(detectors) × max(lengths)``;
    every length ≥ 1, the rest of a row is ignored) and ``pairs[i]`` its pair scores and ends.  The
    CUSUM walks of all detectors run in one cumulative sum and running minimum (walk by walk, so the
    sums are those of the one-detector walk to the last bit); a detector whose walk
    reaches a cap, or crosses a multiple of :data:`REBASE`, is redone on its own by
    :meth:`CusumBank.update_buffer`, and only detectors above a threshold or disarmed look for crossings.
    """
    count, width = z.shape
    if count == 1 or width >= _LONG:
        # long chunks: each walk on its own (the rows are long enough; time-major columns would be few)
        return [_update_one(d, z[i, :int(lengths[i])], pairs[i]) for i, d in enumerate(detectors)]
    k = np.array([d.k for d in detectors])
    spread = np.array([d.spread for d in detectors])  # g_up, c_up, g_down, c_down
    # Time-major: row t holds every CUSUM's value t (column 4 i + c: detector i's CUSUM c), so the
    # cumulative sums and running minima run down the columns, adding whole rows at a time (each column
    # is still added value after value: the numbers of the one-detector walk).
    zt = np.ascontiguousarray(z.T)
    buf = np.empty((width + 1, count, 4))
    inc = buf[1:]
    # rows z − k, −z − k, g↑·z² − c↑, g↓·z² − c↓ (the operations of _numeric_increments)
    np.subtract(zt, k[None, :], out=inc[:, :, 0])
    np.negative(zt, out=inc[:, :, 1])
    inc[:, :, 1] -= k[None, :]
    sq = zt * zt
    np.multiply(sq, spread[None, :, 0], out=inc[:, :, 2])
    inc[:, :, 2] -= spread[None, :, 1]
    np.multiply(sq, spread[None, :, 2], out=inc[:, :, 3])
    inc[:, :, 3] -= spread[None, :, 3]
    ragged = bool((lengths != width).any())
    if ragged:
        # past a detector's end the increments are 0: the walk, its minimum and the sums stay where they ended
        np.copyto(inc, 0.0, where=(np.arange(width)[:, None] >= lengths[None, :])[:, :, None])
    cols = buf.reshape(width + 1, 4 * count)
    banks = [d.cusums for d in detectors]
    walks = [b.walk for b in banks]
    threshold = np.concatenate([b.threshold for b in banks])
    cap = CAP * threshold
    every = np.arange(4 * count)
    # _Walk.run over all the columns, in place: the walk W continued from the carried one, E its running
    # minimum with the carried extreme (min is exact: folding that in first gives the same numbers)
    cols[0] = np.concatenate([w.w for w in walks])
    np.cumsum(cols, axis=0, out=cols)
    if ragged:
        last = np.repeat(lengths, 4)
        w_end = cols[last, every]
    else:
        w_end = cols[-1].copy()
    # The last 0 of each sum is the last record low of the walk (W = E there): the last place of its
    # smallest value in the chunk, if that is at or below the carried minimum (no 0 in the chunk if not).
    # (Walks that reach the cap are redone alone, with their own sums.)
    e0 = np.concatenate([wk.e for wk in walks])
    last_zero = width - 1 - np.argmin(cols[:0:-1], axis=0)
    if ragged:
        last_zero = np.minimum(last_zero, np.repeat(lengths - 1, 4))  # (past its end a column repeats its last)
    any_zero = cols[last_zero + 1, every] <= e0
    cols[0] = e0
    extreme = np.minimum.accumulate(cols, axis=0)
    e_end = extreme[last, every] if ragged else extreme[-1].copy()
    np.subtract(cols, extreme, out=cols)
    sums = cols[1:]
    s_end = sums[last - 1, every] if ragged else sums[-1].copy()
    peak = sums.max(axis=0)
    high = np.concatenate([wk.high for wk in walks])
    armed = np.concatenate([b.armed for b in banks])
    # per detector: redo alone (a cap reached or held); look for crossings (above a threshold, or disarmed)
    slow = (high | (peak > cap)).reshape(count, 4).any(axis=1).tolist()
    look = ((peak > threshold) | ~armed).reshape(count, 4).any(axis=1).tolist()
    # Each CUSUM's run since its sum was last 0, carried to the end of the chunk (redone below for the
    # walks redone alone): from the scores' cumulative sums at the chunk's end and at the last 0
    zc = np.cumsum(zt, axis=0)
    z2c = np.cumsum(sq, axis=0)
    ends4 = np.repeat(lengths - 1, 4)
    owner = np.repeat(np.arange(count), 4)
    before = np.concatenate([d.run for d in detectors])
    run = np.empty((4 * count, 3))
    at_end = np.stack((zc[ends4, owner], z2c[ends4, owner]), axis=1)
    at_zero = np.stack((zc[last_zero, owner], z2c[last_zero, owner]), axis=1)
    np.copyto(run[:, :2], np.where(any_zero[:, None], at_end - at_zero, before[:, :2] + at_end))
    run[:, 2] = np.where(any_zero, ends4 - last_zero, before[:, 2] + ends4 + 1)
    out: list[list] = []
    for i, (det, n) in enumerate(zip(detectors, lengths.tolist())):
        bank = banks[i]
        first = det.values
        th = bank.threshold
        a = 4 * i
        det.run = run[a:a + 4]
        if slow[i] or (bank.fed % REBASE) + n > REBASE:
            carried = before[a:a + 4]
            redo = bank.buffer(n)
            _numeric_increments(z[i:i + 1, :n], k[i:i + 1], spread[i:i + 1], redo[None])
            own: list[np.ndarray] = []
            hits = bank.update_buffer(redo, own)
            mine = own[0]
            det.run = _runs_at_end(mine, zc[:n, i], z2c[:n, i], carried)
        else:
            walk = walks[i]
            walk.w, walk.e, walk.s = w_end[a:a + 4], e_end[a:a + 4], s_end[a:a + 4]
            bank.fed += n
            if bank.fed % REBASE == 0:
                walk.rebase(cap[a:a + 4])
            hits = []
            if look[i]:
                mine = sums[:n, a:a + 4].T
                for col in range(4):
                    series = np.ascontiguousarray(mine[col])
                    rows_hit, still = crossings(series, float(th[col]), bool(bank.armed[col]))
                    bank.armed[col] = still
                    hits += [(r, col, float(series[r])) for r in rows_hit]
                hits.sort()
        if hits:
            carried = before[a:a + 4]
            found = [(Detection(_NAMES[col], first + row + 1, stat, float(th[col])),
                      _run_before(mine[col], row, zc[:, i], z2c[:, i], carried[col])) for row, col, stat in hits]
        else:
            found = []
        det.values += n
        scores, ends = pairs[i]
        if scores:
            det._adwin(found, first, scores, ends, extras=True)
        out.append(found)
    return out


def _update_one(det: NumericDetectors, z: np.ndarray, pair: tuple[list[float], list[int]]) -> list:
    """:func:`update_numeric_many` of one detector: its own walk (fewer, larger NumPy calls)."""
    bank = det.cusums
    n = z.size
    first = det.values
    buf = bank.buffer(n)
    _numeric_increments(z[None, :], np.array([det.k]), np.array([det.spread]), buf[None])
    own: list[np.ndarray] = []
    hits = bank.update_buffer(buf, own)
    sums = own[0]
    zc = np.cumsum(z)
    z2c = np.cumsum(z * z)
    carried = det.run
    det.run = _runs_at_end(sums, zc, z2c, carried)
    th = bank.threshold
    found = [(Detection(_NAMES[col], first + row + 1, stat, float(th[col])),
              _run_before(sums[col], row, zc, z2c, carried[col])) for row, col, stat in hits]
    det.values += n
    if pair[0]:
        det._adwin(found, first, pair[0], pair[1], extras=True)
    return found


def _runs_at_end(sums: np.ndarray, zc: np.ndarray, z2c: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """The runs (sum of scores, of squares, count) of m CUSUMs since their last 0, at the end of a chunk
    whose sums are ``sums`` (m × n) and whose scores' cumulative sums are ``zc``, ``z2c``."""
    n = sums.shape[1]
    # (the sums are ≥ 0: a row has a 0 if its smallest is 0, the last one first in the reversed row)
    has_zero = (sums.min(axis=1) == 0.0).tolist()
    last = (n - 1 - np.argmin(sums[:, ::-1], axis=1)).tolist()
    z_end, z2_end = float(zc[n - 1]), float(z2c[n - 1])
    before = carried.tolist()
    out = []
    for col, zero in enumerate(has_zero):
        if zero:
            j = last[col]
            out.append((z_end - float(zc[j]), z2_end - float(z2c[j]), float(n - 1 - j)))
        else:
            b = before[col]
            out.append((b[0] + z_end, b[1] + z2_end, b[2] + n))
    return np.array(out)


def _run_before(row: np.ndarray, r: int, zc: np.ndarray, z2c: np.ndarray, carried: np.ndarray, *,
                inclusive: bool = False) -> tuple[float, float, float]:
    """The run of one CUSUM up to value ``r`` of the chunk: the values after its last 0 before ``r``
    (at or before it with ``inclusive``), reaching into earlier chunks (``carried``) if it has none."""
    zeros = np.flatnonzero(row[:r + 1 if inclusive else r] == 0.0)
    if zeros.size:
        j = int(zeros[-1])
        return float(zc[r] - zc[j]), float(z2c[r] - z2c[j]), float(r - j)
    return float(carried[0] + zc[r]), float(carried[1] + z2c[r]), float(carried[2] + r + 1)


#: the category-frequency move (probability) each category CUSUM is designed for
CATEGORY_DESIGN_SHIFT = 0.15
#: the in-control frequency of a CUSUM is the reference's, moved this many of its standard errors
#: towards the alternative (the reference mix is estimated; see docs/detection.md)
CATEGORY_MARGIN_SD = 2.5
#: frequencies are rounded (conservatively) to this relative step, so thresholds are shared and cached
_P_STEP = 0.05
_P_MIN = 1e-6
#: a side whose in-control frequency is within this of 0 (down) or 1 (up) is not watched
_P_OFF = 1e-4


def _round_p(p: float, up: bool) -> float:
    """``p`` on a log grid of relative step :data:`_P_STEP`, rounded up or down (kept inside (0, 1))."""
    x = math.log(min(max(p, _P_MIN), 1.0 - _P_MIN)) / _P_STEP
    q = math.exp((math.ceil(x) if up else math.floor(x)) * _P_STEP)
    return min(max(q, _P_MIN), 1.0 - _P_MIN)


@lru_cache(maxsize=256)
def _category_design(p0: tuple[float, ...], total: int) -> tuple[tuple[float, float, float, float], ...]:
    """``(up0, up1, down0, down1)`` per cell: the in-control and alternative frequencies of each side
    (0, 0: the side is not watched)."""
    design = []
    for p in p0:
        se = math.sqrt(p * (1.0 - p) / total)
        up0 = _round_p(p + CATEGORY_MARGIN_SD * se, up=True)
        up1 = _round_p(min(max(p + CATEGORY_DESIGN_SHIFT, up0 * 1.2), 0.5 * (1.0 + up0)), up=True)
        down0 = _round_p(max(p - CATEGORY_MARGIN_SD * se, _P_MIN), up=False)
        down1 = _round_p(max(min(p - CATEGORY_DESIGN_SHIFT, down0 / 1.2), 0.5 * down0), up=False)
        # A side with no room to move (a category of (almost) all or none of the reference) is off.
        if not (up0 < up1 and up0 <= 1.0 - _P_OFF):
            up0 = up1 = 0.0
        if not (down1 < down0 and down0 >= _P_OFF):
            down0 = down1 = 0.0
        design.append((up0, up1, down0, down1))
    return tuple(design)


@lru_cache(maxsize=256)
def _category_increments(design: tuple[tuple[float, float, float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    from driftline.stats.calibration import bernoulli_increments

    on, off = [], []
    for up0, up1, down0, down1 in design:
        for p0, p1 in ((up0, up1), (down0, down1)):
            a, b = bernoulli_increments(p0, p1) if p0 else (0.0, 0.0)
            on.append(a)
            off.append(b)
    return np.array(on), np.array(off)


@lru_cache(maxsize=256)
def _index(names: tuple[str, ...]) -> dict[str, int]:
    return {k: i for i, k in enumerate(names[:-1])}


class CategoryCusums:
    """Two-sided Bernoulli likelihood-ratio CUSUMs on the frequency of each category of a reference mix.

    Cells are the reference's most frequent names (at most ``max_categories −
    1``) and ``__other__``: every other value, the reference's overflow, and
    categories the reference never saw (their mass estimated by Good-Turing:
    the reference's singletons, at least one).  A value adds
    ``log(p1/p0)`` to its cell's up-CUSUM and ``log((1−p1)/(1−p0))`` to every
    other cell's (and the same for the down side with its own ``p1``), over a
    whole batch at once.  The budget ``share`` is split over the ``2 × cells``
    sums; thresholds come from :func:`driftline.stats.calibration.bernoulli_threshold`.
    Only the cells' names and reference frequencies are kept (the design is
    derived from them), so the state grows by about 45 bytes per category.
    """

    __slots__ = ("names", "p0", "total", "share", "cusums", "values", "recent")

    #: values a detection's recent frequency is read from
    RECENT = 256

    def __init__(self, reference: dict[str, int], *, max_categories: int, share: float, other: str) -> None:
        total = sum(reference.values())
        if total <= 0:
            raise ValueError("a reference mix needs at least one value")
        ranked = sorted((k for k, n in reference.items() if k != other and n > 0), key=lambda k: (-reference[k], k))
        kept = ranked[: max(1, max_categories - 1)]
        singletons = sum(1 for n in reference.values() if n == 1)
        unseen = max(1, singletons)
        mass = total + unseen
        other_count = total - sum(reference[k] for k in kept) + unseen
        self.names = kept + [other]
        #: each cell's frequency in the reference
        self.p0 = np.array([reference[k] / mass for k in kept] + [other_count / mass])
        #: values behind the reference
        self.total = int(total)
        self.share = share
        self.cusums = CusumBank(self._thresholds())
        self.values = 0
        #: cells of the last RECENT values
        self.recent = np.empty(0, dtype=np.int16 if len(self.names) < 2 ** 15 else np.int32)

    @property
    def design(self) -> tuple[tuple[float, float, float, float], ...]:
        return _category_design(tuple(self.p0.tolist()), self.total)

    def _thresholds(self) -> np.ndarray:
        from driftline.stats.calibration import bernoulli_threshold

        design = self.design
        rate = self.share / (2 * len(design))
        out = []
        for up0, up1, down0, down1 in design:
            out += [bernoulli_threshold(rate, p0, p1) if p0 else math.inf for p0, p1 in ((up0, up1), (down0, down1))]
        return np.array(out)

    def increments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(on, off)`` per CUSUM column (cell 0 up, cell 0 down, cell 1 up, ...)."""
        return _category_increments(self.design)

    @property
    def differs(self) -> bool:
        return self.cusums.differs

    def retune(self, share: float) -> None:
        if share != self.share:
            self.share = share
            self.cusums.set_thresholds(self._thresholds())

    def update(self, cells: np.ndarray) -> list[tuple[int, str, bool, float, float, float]]:
        """Feed the cell index of each value, in order; return ``(value index, cell name, up, statistic,
        threshold, recent frequency)`` of each detection (the cell's frequency over the RECENT values up
        to it)."""
        if cells.size == 0:
            return []
        on, off = self.increments()
        m = len(self.names)
        buf = self.cusums.buffer(cells.size)
        # row 2c (up) and 2c + 1 (down) of cell c: ``on`` for the cell's values, ``off`` for the others
        buf[:, 1:] = np.where(cells[None, :] == (np.arange(2 * m) // 2)[:, None], on[:, None], off[:, None])
        th = self.cusums.threshold
        found = self.cusums.update_buffer(buf)
        kept = self.recent.size
        history = np.concatenate((self.recent, cells.astype(self.recent.dtype)))
        out = []
        for row, col, stat in found:
            end = kept + row + 1
            seg = history[max(0, end - self.RECENT):end]
            out.append((row, self.names[col // 2], col % 2 == 0, stat, float(th[col]),
                        float(np.count_nonzero(seg == col // 2)) / seg.size))
        self.recent = history[-self.RECENT:].copy()
        self.values += int(cells.size)
        return out

    def cell_index(self) -> dict[str, int]:
        """Cell of each tracked name (any other name: the last cell, ``__other__``)."""
        return _index(tuple(self.names))

    def cell(self, name: str) -> int:
        return self.cell_index().get(name, len(self.names) - 1)

    def statistic(self) -> float:
        """The largest sum as a fraction of its threshold (1.0: at the threshold)."""
        s, th = self.cusums.statistic, self.cusums.threshold
        return float((s / th).max()) if s.size else 0.0  # (an unwatched side: 0 / inf)
