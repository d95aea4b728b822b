"""Detector thresholds from a target false-alarm rate.

The sequential detectors are cumulative sums (CUSUMs) of per-value increments
whose in-control law is known from the reference (:mod:`driftline.state.detectors`):

* location: increments ``z − k`` (and ``−z − k``) of the normal scores ``z``,
  N(0, 1) under the reference.  Siegmund's approximation of the one-sided
  average run length (ARL) is accurate for normal increments::

      ARL(μ) ≈ (exp(−2Δb) + 2Δb − 1) / (2Δ²),   Δ = μ − k,   b = h + 1.166;

* spread: log-likelihood-ratio increments of ``z²`` (a variance up, a
  variance down), and categories: Bernoulli log-likelihood-ratio increments of
  a category's indicator.  Neither is normal; their run length is computed
  with the Brook-Evans Markov chain (:func:`markov_arl`: the CUSUM on a grid of
  ``[0, h]``, transition probabilities from the increments' CDF, the ARL from
  one linear solve), which ``tests/stats/test_calibration.py`` checks against
  simulation.

An estimated reference (a warm-up of a few thousand values, or a sketch with
rank error) biases the scores: their mean under the true distribution is
``N(0, σ²)`` with ``σ² ≈ 1/n`` whatever the distribution (Hoeffding's
covariance identity in normal-score space), and the mean of ``z²`` is off by
``N(0, 2/n)``.  A reference-relative CUSUM is sensitive to that bias (the
false-alarm rate grows like ``exp(2bμ)``), so the thresholds here make the
*expected* false-alarm rate over the reference's sampling error meet the
target (Gauss-Hermite quadrature over the bias).

ADWIN's ``delta`` bounds the probability of a false cut per check, but the
bound is loose by four orders of magnitude on standardised input, so delta is
set from a measured factor (:data:`ADWIN_LOOSENESS`) and verified by
simulation in ``benchmarks/calibration.py``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

__all__ = ["cusum_arl", "location_threshold", "markov_arl", "spread_design", "spread_thresholds",
           "bernoulli_threshold", "bernoulli_arl", "bernoulli_increments", "chi2_cusum_arl", "adwin_delta", "reference_bias_variance", "ADWIN_LOOSENESS"]

_SIEGMUND_CORRECTION = 1.166
#: Gauss-Hermite nodes (probabilists') over the reference's bias
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(5)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()
#: the largest reference error the thresholds account for (a reference of 1,000 values)
MAX_BIAS_VARIANCE = 1.0 / 1000
#: states of the Brook-Evans chain
CHAIN_STATES = 200


def _check_rate(rate: float) -> None:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {rate!r}")


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def cusum_arl(shift: float, k: float, h: float) -> float:
    """Siegmund's approximate one-sided CUSUM run length for N(shift, 1) data."""
    d = shift - k
    b = h + _SIEGMUND_CORRECTION
    if abs(d) < 1e-12:
        return b * b
    x = -2.0 * d * b
    if x > 700.0:
        return math.inf
    return (math.exp(x) + 2.0 * d * b - 1.0) / (2.0 * d * d)


def reference_bias_variance(count: int, rank_error: float = 0.0) -> float:
    """Variance of the mean normal score under the true distribution, for a reference of ``count`` values.

    ``1/count`` for an empirical reference (any distribution); a sketch's rank
    error adds its own (taken as a normal error of sd ``rank_error / 2``).
    The result is rounded *up* to a few values per octave so thresholds are
    cached, and capped at :data:`MAX_BIAS_VARIANCE`: a reference of fewer
    than 1,000 values is treated as one of 1,000 (its sampling error is
    too large for any threshold to absorb without making the detector
    useless; docs/detection.md says so).
    """
    if count <= 0:
        return 0.0
    var = 1.0 / count + (rank_error / 2.0) ** 2
    if var < 2.0 ** -24:
        return 0.0
    return min(MAX_BIAS_VARIANCE, 2.0 ** (math.ceil(4.0 * math.log2(var)) / 4.0))


def _solve_log_rate(log_rate: Callable[[float], float], target: float, start: float) -> float:
    """Threshold ``h`` with ``log_rate(h) == log(target)`` (``log_rate`` decreasing, nearly linear).

    Steps of 2 from ``start`` find a bracket; regula falsi (Illinois) closes it.
    """
    goal = math.log(target)

    def f(h: float) -> float:
        return min(max(log_rate(h) - goal, -50.0), 50.0)

    a, fa = start, f(start)
    step = 2.0 if fa > 0 else -2.0
    b, fb = a, fa
    for _ in range(200):
        if (fb > 0) != (fa > 0) or fb == 0.0:
            break
        a, fa = b, fb
        b = b + step
        if b <= 0.05:
            return 0.05
        fb = f(b)
    lo, flo, hi, fhi = (a, fa, b, fb) if a < b else (b, fb, a, fa)  # f(lo) > 0 >= f(hi)
    for _ in range(60):
        mid = hi - fhi * (hi - lo) / (fhi - flo) if fhi != flo else 0.5 * (lo + hi)
        fm = f(mid)
        if abs(fm) < 1e-2 or hi - lo < 1e-6:
            return mid
        if fm > 0:
            lo, flo = mid, fm
            fhi /= 2.0
        else:
            hi, fhi = mid, fm
            flo /= 2.0
    return hi


@lru_cache(maxsize=512)
def location_threshold(false_alarm_rate: float, k: float, bias_variance: float = 0.0) -> float:
    """Threshold of the two-sided location CUSUM (increments ``±z − k``) for a per-value false-alarm rate.

    Each side carries half the rate; with ``bias_variance`` the reference's
    mean error ``μ ~ N(0, bias_variance)`` shifts the increments, and the
    expected rate over ``μ`` meets the target.
    """
    _check_rate(false_alarm_rate)
    if k <= 0.0:
        raise ValueError(f"the reference value k must be positive, got {k!r}")
    sd = math.sqrt(bias_variance)
    nodes = [(float(w), float(x) * sd) for w, x in zip(_WEIGHTS, _NODES)] if sd else [(1.0, 0.0)]

    def log_rate(h: float) -> float:
        # both sides: a bias μ helps one and hurts the other
        return _log(sum(w * (1.0 / cusum_arl(mu, k, h) + 1.0 / cusum_arl(-mu, k, h)) for w, mu in nodes))

    return _solve_log_rate(log_rate, false_alarm_rate, math.log(1.0 / false_alarm_rate) / (2.0 * k))


def markov_arl(cdf: Callable[[np.ndarray], np.ndarray], h: float, states: int = CHAIN_STATES) -> float:
    """In-control run length from 0 of the CUSUM ``S = max(0, S + X)`` to ``S > h`` (Brook-Evans).

    ``cdf`` is the CDF of the increment ``X`` (vectorised).  State 0 is the
    atom at zero; state ``i`` stands for ``S ≈ i·w`` with ``w = h / (states − ½)``.
    """
    n = states
    w = h / (n - 0.5)
    d = np.arange(-n, n + 1)
    f = cdf((d + 0.5) * w)  # F at the cell edges, by the offset j − i
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    off = j - i + n
    q = f[off] - f[off - 1]
    q[:, 0] = f[n - np.arange(n)]  # to the zero atom: S + X <= w/2
    try:
        arl = float(np.linalg.solve(np.eye(n) - q, np.ones(n))[0])
    except np.linalg.LinAlgError:
        return math.inf  # the walk cannot rise (to the grid's resolution)
    return arl if math.isfinite(arl) and arl > 0 else math.inf


def _erf(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in np.asarray(x, dtype=np.float64).ravel()]).reshape(np.shape(x))


def spread_design(ratio: float) -> tuple[float, float]:
    """``(g, c)`` of the log-likelihood ratio ``g·z² − c`` of N(0, ratio) against N(0, 1).

    ``g > 0`` for a variance up (ratio > 1); ``g < 0`` for a variance down.
    """
    if ratio <= 0.0 or ratio == 1.0:
        raise ValueError(f"a variance ratio must be positive and not 1, got {ratio!r}")
    return 0.5 * (1.0 - 1.0 / ratio), 0.5 * math.log(ratio)


def _chi2_increment_cdf(g: float, c: float, scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of ``g·scale·χ²₁ − c``."""
    def cdf(x: np.ndarray) -> np.ndarray:
        t = (x + c) / (g * scale)  # the χ² value at x (order reversed when g < 0)
        below = _erf(np.sqrt(np.maximum(t, 0.0) / 2.0))  # P(χ² <= t)
        return np.where(t > 0, below, 0.0) if g > 0 else np.where(t > 0, 1.0 - below, 1.0)
    return cdf


def _exponential_root(g: float, c: float, v: float) -> float:
    """The root ``θ > 0`` of ``E exp(θ(g·v·χ²₁ − c)) = 1``: the CUSUM's run length grows like ``exp(θh)``."""
    def log_mgf(t: float) -> float:
        return -0.5 * math.log(1.0 - 2.0 * t * g * v) - t * c

    hi = 0.5 / (g * v) * (1.0 - 1e-12) if g > 0 else 1.0
    while g <= 0 and log_mgf(hi) < 0:
        hi *= 2.0
    lo = 1e-9 if log_mgf(1e-9) < 0 else None
    if lo is None:
        return 0.0  # the in-control drift is not negative: no exponential growth
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if log_mgf(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


#: the chain is solved at this threshold at most, and extrapolated beyond with ``exp(θ(h − h0))``
#: (renewal theory: exact as h grows; the chain itself loses precision at run lengths of 1e7 and more)
_CHAIN_H0 = 8.0


@lru_cache(maxsize=4096)
def _chi2_chain_arl(g: float, c: float, v: float, h: float) -> float:
    return markov_arl(_chi2_increment_cdf(g, c, v), h, states=400)


def chi2_cusum_arl(g: float, c: float, v: float, h: float) -> float:
    """In-control run length of the CUSUM of ``g·z² − c`` with ``z ~ N(0, v)``, threshold ``h``."""
    h0 = min(h, _CHAIN_H0)
    arl = _chi2_chain_arl(g, c, v, h0)
    if h > h0:
        theta = _exponential_root(g, c, v)
        arl *= math.exp(min(theta * (h - h0), 700.0)) if theta > 0 else ((h + 1.0) / (h0 + 1.0)) ** 2
    return arl


@lru_cache(maxsize=512)
def spread_thresholds(false_alarm_rate: float, ratio: float, bias_variance: float = 0.0) -> tuple[float, float]:
    """Thresholds ``(up, down)`` of the spread CUSUMs (log-likelihood ratios of a variance ``ratio`` and
    ``1/ratio``) for a per-value false-alarm rate shared by the two sides.

    With ``bias_variance`` the reference's error scales the in-control ``z²``
    by ``exp(ε)``, ``ε ~ N(0, 2·bias_variance)``; the expected rate over ``ε``
    meets the target.
    """
    _check_rate(false_alarm_rate)
    sd = math.sqrt(2.0 * bias_variance)
    nodes = [(float(w), math.exp(float(x) * sd)) for w, x in zip(_WEIGHTS, _NODES)] if sd else [(1.0, 1.0)]
    out = []
    for r in (ratio, 1.0 / ratio):
        g, c = spread_design(r)

        def log_rate(h: float, g: float = g, c: float = c) -> float:
            return _log(sum(w / chi2_cusum_arl(g, c, v, h) for w, v in nodes))

        out.append(_solve_log_rate(log_rate, false_alarm_rate / 2.0, math.log(2.0 / false_alarm_rate)))
    return out[0], out[1]


#: the Bernoulli run length is computed at this threshold and extrapolated beyond with exp(h − h0)
#: (exact in the limit for a likelihood-ratio CUSUM, whose exponential root is 1)
_BERNOULLI_H0 = 5.0
_BERNOULLI_STATES = 800


def bernoulli_increments(p0: float, p1: float) -> tuple[float, float]:
    """``(on, off)``: log-likelihood-ratio increments of a value in / not in the category (p1 against p0)."""
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


def bernoulli_arl(p0: float, p1: float, h: float) -> float | None:
    """In-control (frequency ``p0``) run length of the Bernoulli CUSUM to ``S > h``, by an exact lattice chain.

    The chain's grid step divides the down step exactly and the up step is
    rounded *up* to a multiple of it (a walk that rises a little faster:
    a shorter run length, the safe side).  None when no grid of at most
    :data:`_BERNOULLI_STATES` states fits the steps within 5 %.
    """
    on, off = bernoulli_increments(p0, p1)
    rise, fall, p_rise = (on, -off, p0) if on > 0 else (off, -on, 1.0 - p0)
    best = None
    for m in range(1, 64):
        w = fall / m
        steps = math.ceil(rise / w - 1e-9)
        err = (steps * w - rise) / rise
        states = int(h / w) + 1
        if states > _BERNOULLI_STATES:
            break
        if best is None or err < best[0]:
            best = (err, w, steps, states, m)
        if err < 0.002:
            break
    if best is None or best[0] > 0.05:
        return None  # no grid fits both steps: the caller falls back on Lorden's bound
    _, w, steps, n, m = best
    # states i = 0..n-1 stand for S = i·w; S > h is state n or beyond (h = (n - 1/2)·w on the grid)
    idx = np.arange(n)
    q = np.zeros((n, n))
    up = idx + steps
    ok = up < n
    q[idx[ok], up[ok]] += p_rise
    q[idx, np.maximum(idx - m, 0)] += 1.0 - p_rise
    try:
        arl = float(np.linalg.solve(np.eye(n) - q, np.ones(n))[0])
    except np.linalg.LinAlgError:
        return None
    return arl if math.isfinite(arl) and arl > 0 else None


def bernoulli_h0(p0: float, p1: float) -> float:
    """Where the chain is solved: :data:`_BERNOULLI_H0`, or three up steps if that is more (the run length
    grows like ``exp(h)`` only once the threshold is several steps high)."""
    on, off = bernoulli_increments(p0, p1)
    return max(_BERNOULLI_H0, 3.0 * max(on, off))


@lru_cache(maxsize=4096)
def _bernoulli_arl_cached(p0: float, p1: float, h: float) -> float | None:
    return bernoulli_arl(p0, p1, h)


def bernoulli_threshold(false_alarm_rate: float, p0: float, p1: float) -> float:
    """Threshold of a one-sided Bernoulli likelihood-ratio CUSUM (``p1`` against ``p0``) with in-control
    per-value false-alarm rate ``false_alarm_rate`` when the category's frequency is ``p0``.

    The run length is computed with a lattice Markov chain at ``h0`` and
    extrapolated: ``ARL(h) ≈ ARL(h0)·exp(h − h0)`` (for a likelihood-ratio
    CUSUM the exponential rate is exactly 1); below ``h0`` the chain is
    solved at the threshold itself.  Lorden's bound ``ARL ≥ exp(h)`` caps
    the result, and is used alone when the steps are too fine for the chain.
    """
    _check_rate(false_alarm_rate)
    if not (0.0 < p0 < 1.0 and 0.0 < p1 < 1.0) or p0 == p1:
        raise ValueError(f"Bernoulli CUSUM needs 0 < p0 != p1 < 1, got {p0!r}, {p1!r}")
    lorden = math.log(1.0 / false_alarm_rate)
    h0 = bernoulli_h0(p0, p1)
    arl0 = _bernoulli_arl_cached(p0, p1, h0)
    if arl0 is None:
        return lorden
    h = h0 + math.log(1.0 / (false_alarm_rate * arl0))
    if h < h0:
        lo, hi = 0.0, h0
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            arl = _bernoulli_arl_cached(p0, p1, mid)
            if arl is None or arl * false_alarm_rate < 1.0:
                lo = mid
            else:
                hi = mid
        h = hi
    # (at least 1: a threshold of 0 would fire on the first value of a category the reference barely has)
    return max(1.0, min(lorden, h))


#: How much looser ADWIN's bound is than its real false-alarm rate on block
#: scores: measured false alarms per event ≈ 2.5e-5 × delta
#: (``benchmarks/calibration.py``), i.e. delta ≈ 4e4 × rate; a safety
#: factor of 4 leaves 1e4.
ADWIN_LOOSENESS = 1.0e4


def adwin_delta(*, false_alarm_rate: float) -> float:
    """ADWIN ``delta`` for a wanted false-alarm rate per event (one check per block)."""
    _check_rate(false_alarm_rate)
    return min(0.01, false_alarm_rate * ADWIN_LOOSENESS)
