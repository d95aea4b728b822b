"""A window's distribution in a few hundred bytes, and a reference rebuilt from many of them.

A numeric window summary carries the window's quantiles on a fixed grid of
probabilities (:data:`SHAPE_PROBABILITIES`): every 1/128 plus tail points at
0.0001, 0.0003, 0.001, 0.002, 0.0035 and 0.005 (and one minus those), and the
minimum and maximum at 0 and 1: 141 numbers, about 2.8 KB of JSON, read from
the window's KLL sketch in one call.

:func:`rebuild_values` turns the shapes of many windows back into values: each
window contributes ``count`` values at the probabilities ``(j + 0.5) / count``
of its quantile function, so windows weigh by how many values they held.  Its
quantile function is linear between grid points, except next to an atom: a
value the window's quantiles repeat (a discrete feature's levels, the zero of
a zero-inflated amount) keeps the mass of a neighbouring interval instead of
smearing it over values that never occurred.  KLL's rank errors are random and
unbiased, so they shrink as windows are added: rebuilt from 40 windows of
5,000 values, the values are within a Kolmogorov-Smirnov distance of about
0.001 of the 200,000 the windows held (docs/references.md has the figures).

A categorical window summary carries, beside its 20 most frequent categories,
``more_categories`` (:func:`more_categories`): the counts of the others, most
frequent first, as long as all the names fit in 8 KB of JSON (a monitor tracks
at most ``max_categories`` names, 100 by default, so short names all fit).  Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import orjson
from datasketches import kll_doubles_sketch

__all__ = ["SHAPE_GRID", "SHAPE_PROBABILITIES", "window_shape", "read_shape", "rebuild_values", "MAX_REBUILT_VALUES",
           "more_categories", "CATEGORY_BUDGET"]

#: Name of the grid, written in every shape (a later grid gets another name).
SHAPE_GRID = "driftline.shape/1"
_TAILS = (1e-4, 3e-4, 1e-3, 2e-3, 3.5e-3, 5e-3)
SHAPE_PROBABILITIES: tuple[float, ...] = tuple(sorted(
    {0.0, 1.0} | {i / 128 for i in range(1, 128)} | set(_TAILS) | {1.0 - t for t in _TAILS}))
_P = np.asarray(SHAPE_PROBABILITIES)
#: Values rebuilt at most (beyond: fewer per window, in proportion; the sketch then holds fewer values than were seen).
MAX_REBUILT_VALUES = 1_000_000


def window_shape(sketch: kll_doubles_sketch) -> dict[str, object] | None:
    """The shape of a window's values: ``{"grid": SHAPE_GRID, "quantiles": [...]}`` (None when empty)."""
    if sketch.is_empty():
        return None
    q = sketch.get_quantiles(list(SHAPE_PROBABILITIES), True)  # inclusive: values that occurred
    q[0], q[-1] = sketch.get_min_value(), sketch.get_max_value()
    return {"grid": SHAPE_GRID, "quantiles": [float(v) for v in q]}


#: JSON bytes of category names a categorical summary holds at most in ``categories`` and ``more_categories``
#: together (the 20 most frequent names of ``categories`` are always there, however long).
CATEGORY_BUDGET = 8192


def more_categories(counts: Mapping[str, int], shown: Mapping[str, int], *,
                    budget: int = CATEGORY_BUDGET) -> dict[str, int]:
    """The window's category counts beyond those ``shown``, most frequent first, while the JSON of all the
    names (``shown`` first) fits in ``budget`` bytes.

    >>> more_categories({"a": 1, "b": 5, "c": 4, "d": 4}, {"b": 5}, budget=45)
    {'c': 4, 'd': 4}
    """
    used = sum(len(orjson.dumps(name)) + 12 for name in shown)  # 12: a count, a colon and a comma, roughly
    out: dict[str, int] = {}
    for name in sorted((k for k in counts if k not in shown), key=lambda k: (-counts[k], k)):
        used += len(orjson.dumps(name)) + 12
        if used > budget:
            break
        out[name] = counts[name]
    return out


def read_shape(shape: object) -> np.ndarray | None:
    """The quantiles of a summary's ``shape``, or None if it is not one of this grid (finite, sorted)."""
    if not isinstance(shape, dict) or shape.get("grid") != SHAPE_GRID:
        return None
    q = shape.get("quantiles")
    if not isinstance(q, list) or len(q) != _P.size:
        return None
    if not all(type(v) in (int, float) for v in q):
        return None
    out = np.asarray(q, dtype=np.float64)
    if not np.isfinite(out).all() or (np.diff(out) < 0).any():
        return None
    return out


def _quantile_function(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The window's quantile function at ``u``: linear between grid points, a step next to an atom."""
    out = np.interp(u, _P, q)
    atom = np.zeros(q.size, dtype=bool)
    atom[1:] |= q[1:] == q[:-1]
    atom[:-1] |= q[:-1] == q[1:]
    i = np.clip(np.searchsorted(_P, u, side="right") - 1, 0, q.size - 2)  # interval [P[i], P[i+1]]
    step = (atom[i] | atom[i + 1]) & (q[i] != q[i + 1])
    if step.any():
        lo, hi = _P[i[step]], _P[i[step] + 1]
        out[step] = np.where(u[step] - lo < hi - u[step], q[i[step]], q[i[step] + 1])
    return out


def rebuild_values(windows: Iterable[tuple[int, np.ndarray]], *, limit: int = MAX_REBUILT_VALUES) -> np.ndarray:
    """Values whose distribution is the count-weighted mixture of the windows' shapes.

    ``windows``: ``(count, quantiles)`` pairs.  Deterministic: the same
    windows in the same order give the same values.
    """
    pairs: Sequence[tuple[int, np.ndarray]] = [(int(n), q) for n, q in windows if n > 0]
    total = sum(n for n, _ in pairs)
    scale = min(1.0, limit / total) if total else 1.0
    parts = []
    for n, q in pairs:
        m = max(1, int(math.ceil(n * scale)))
        parts.append(_quantile_function(q, (np.arange(m) + 0.5) / m))
    return np.concatenate(parts) if parts else np.empty(0)
