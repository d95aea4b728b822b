"""Events located in their stream, and their transposition into columns.

The monitor (live or replayed) and the reference-profile builder both read
events a column at a time: one list of values per (source, name), with the
row each value came from.
"""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple, Sequence

from driftline.contract.event import InferenceEvent

__all__ = ["LocatedEvent", "Column", "columns", "FEATURES", "OUTPUTS"]

#: The two sources of monitored values in an event.
FEATURES = "features"
OUTPUTS = "prediction"


class LocatedEvent(NamedTuple):
    """A decoded event and its offset in the partition (or row in the file)."""

    offset: int
    event: InferenceEvent

    @property
    def time_ms(self) -> int | None:
        return self.event.timestamp_ms


class Column:
    """Values of one (source, name) in a chunk of events, with their row numbers."""

    __slots__ = ("rows", "values")

    def __init__(self, rows: list[int], values: list[object]) -> None:
        self.rows = rows
        self.values = values


#: Distinct key layouts (key tuples) in a chunk that are transposed group by group; beyond it, value by value.
MAX_LAYOUTS = 16

_FEATURES_AT = InferenceEvent._fields.index("features")
_OUTPUTS_AT = InferenceEvent._fields.index("outputs")


def columns(chunk: Sequence[LocatedEvent]) -> tuple[dict[tuple[str, str], Column], dict[str, int]]:
    """Transpose a chunk of events into one column per (source, name).

    Returns the columns and, per source, how many events carried it.  Events
    are grouped by their exact key tuple (model servers nearly always send the
    same keys in the same order), so the transposition runs in C
    (``zip(*rows)``) instead of a Python loop per value.
    """
    n_source = {FEATURES: 0, OUTPUTS: 0}
    out: dict[tuple[str, str], Column] = {}
    for source, position in ((FEATURES, _FEATURES_AT), (OUTPUTS, _OUTPUTS_AT)):
        groups: dict[tuple[str, ...], tuple[list[int], list[tuple[object, ...]]]] = {}
        last_keys: tuple[str, ...] | None = None
        last_group = None
        count = 0
        for idx, located in enumerate(chunk):
            values = located[1][position]
            if values is None:
                continue
            count += 1
            keys = tuple(values)
            if keys != last_keys:
                last_group = groups.get(keys)
                if last_group is None:
                    if len(groups) >= MAX_LAYOUTS:
                        # keys vary from event to event (optional features left out, unsorted keys):
                        # gather value by value instead, in one linear pass
                        count = _gather(chunk, position, source, out)
                        groups = {}
                        break
                    last_group = groups[keys] = ([], [])
                last_keys = keys
            last_group[0].append(idx)
            last_group[1].append(tuple(values.values()))
        n_source[source] = count
        # (a name in several groups has one part per group, merged once at the end: merging group by
        # group would cost time quadratic in the groups, which a producer varying its key order controls)
        parts: dict[tuple[str, str], list[tuple[list[int], tuple[object, ...]]]] = {}
        for keys, (rows, tuples) in groups.items():
            transposed = list(zip(*tuples)) if keys else []
            for name, col_values in zip(keys, transposed):
                key = (source, name)
                col = out.get(key)
                if col is None:
                    out[key] = Column(rows, list(col_values))
                else:
                    if key not in parts:
                        parts[key] = [(col.rows, tuple(col.values))]
                    parts[key].append((rows, col_values))
        for key, pieces in parts.items():
            merged = sorted((rv for rows, values in pieces for rv in zip(rows, values)), key=lambda rv: rv[0])
            out[key] = Column([r for r, _ in merged], [v for _, v in merged])
    return out, n_source


def _gather(chunk: Sequence[LocatedEvent], position: int, source: str, out: dict[tuple[str, str], Column]) -> int:
    """Columns of one source, in row order, for chunks whose events have many key layouts; returns how
    many events carried the source.

    When every event has the same names in its own order (unsorted keys), each event's values are taken
    in one order (``itemgetter``) and transposed in C; otherwise (names left out) value by value, in one
    pass.  Both visit each event's dict once (a pass per name was slower: the dicts of a chunk do not
    stay in cache).  Columns come in the order names first appear, row by row and key by key.
    """
    rows: list[int] = []
    dicts: list[dict] = []
    for idx, located in enumerate(chunk):
        values = located[1][position]
        if values is not None:
            rows.append(idx)
            dicts.append(values)
    if not dicts:
        return 0
    width = len(dicts[0])
    if width > 1 and all(len(values) == width for values in dicts):
        names: dict[str, object] = {}
        for values in dicts:
            names.update(values)  # (only the keys count: first appearance keeps its place)
        if len(names) == width:
            for name, col in zip(names, zip(*map(itemgetter(*names), dicts))):
                out[(source, name)] = Column(rows.copy(), list(col))
            return len(dicts)
    gathered: dict[str, tuple[list[int], list[object]]] = {}
    for idx, values in zip(rows, dicts):
        for name, value in values.items():
            col = gathered.get(name)
            if col is None:
                col = gathered[name] = ([], [])
            col[0].append(idx)
            col[1].append(value)
    for name, (col_rows, vals) in gathered.items():
        out[(source, name)] = Column(col_rows, vals)
    return len(dicts)
