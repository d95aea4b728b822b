"""Events located in their stream, and their transposition into columns.

The monitor (live or replayed) and the reference-profile builder both read
events a column at a time: one list of values per (source, name), with the
row each value came from.  A live batch never becomes one object per event:
the pipeline hands each monitor an :class:`EventBlock` (its events as
parallel lists), and :func:`block_columns` transposes it.
"""

from __future__ import annotations

from collections import deque
from itertools import chain, compress, repeat
from operator import contains, itemgetter
from typing import NamedTuple, Sequence

import numpy as np

from driftline.contract.decode import flatten_prediction
from driftline.contract.event import PREDICTION, InferenceEvent

__all__ = ["LocatedEvent", "Row", "EventBlock", "Column", "columns", "block_columns", "FEATURES", "OUTPUTS"]

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


class Row(NamedTuple):
    """Where one event of a block is: what a finding about it names."""

    offset: int
    time_ms: int | None


class EventBlock:
    """Events of one model version in offset order, as parallel lists (one entry per event).

    ``outputs`` holds each event's raw ``prediction`` (``None``, a scalar or an
    object of named outputs) or, when ``named_outputs``, its outputs already
    flattened (``{"prediction": …}`` / ``{"prediction.<name>": …}``, as
    :class:`InferenceEvent` has them).  ``block[i]`` is the :class:`Row` of event ``i``.
    """

    __slots__ = ("offsets", "times", "features", "outputs", "named_outputs")

    def __init__(self, offsets: list[int], times: list[int | None], features: list[dict | None],
                 outputs: list[object], *, named_outputs: bool = False) -> None:
        self.offsets = offsets
        self.times = times
        self.features = features
        self.outputs = outputs
        self.named_outputs = named_outputs

    @classmethod
    def of(cls, events: Sequence[LocatedEvent]) -> "EventBlock":
        """The block of decoded events (tests, the profile builder)."""
        return cls([e[0] for e in events], [e[1][3] for e in events], [e[1][4] for e in events],
                   [e[1][5] for e in events], named_outputs=True)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> Row:
        return Row(self.offsets[i], self.times[i])

    def cut(self, start: int, end: int) -> "EventBlock":
        """Events ``start`` to ``end`` (exclusive), as a block of their own."""
        if start == 0 and end >= len(self.offsets):
            return self
        return EventBlock(self.offsets[start:end], self.times[start:end], self.features[start:end],
                          self.outputs[start:end], named_outputs=self.named_outputs)


class Column:
    """Values of one (source, name) in a chunk of events, with their row numbers.

    A column gathered from events that leave names out finds its rows only when
    they are first read (most columns' rows are never read: they name a finding
    about one of the values), so gathering it costs one append per value; and
    when all its values are floats, it has them as float64 too (``floats``,
    else ``None``), converted while the values were in cache.
    """

    __slots__ = ("_rows", "values", "_where", "floats")

    def __init__(self, rows: list[int], values: list[object]) -> None:
        self._rows: list[int] | None = rows
        self.values = values
        self._where: tuple[object, list[dict], list[int]] | None = None
        self.floats: np.ndarray | None = None

    @classmethod
    def of_key(cls, key: object, values: list[object], dicts: list[dict], rows: list[int]) -> "Column":
        """The column of ``values`` of ``key`` in ``dicts`` (those of rows ``rows``), its rows found when read."""
        col = cls.__new__(cls)
        col._rows = None
        col.values = values
        col._where = (key, dicts, rows)
        col.floats = None
        return col

    @property
    def rows(self) -> list[int]:
        rows = self._rows
        if rows is None:
            key, dicts, at = self._where  # type: ignore[misc]
            rows = self._rows = list(compress(at, map(contains, dicts, repeat(key))))
            self._where = None
        return rows

    @rows.setter
    def rows(self, rows: list[int]) -> None:
        self._rows, self._where = rows, None


_NONE = type(None)
_FLOAT = {float}
#: events gathered value by value before their values' types are read and their floats converted, column
#: by column: few enough that their values are still in cache then.  (Read column by column once the whole
#: chunk is gathered, they came from memory, at strides as irregular as the events' key layouts, which no
#: prefetch follows: the columns of sparse events cost twice as much to check and convert as dense ones.)
_BLOCK = 1024


def columns(chunk: Sequence[LocatedEvent]) -> tuple[dict[tuple[str, str], Column], dict[str, int]]:
    """Transpose a chunk of decoded events into one column per (source, name).

    Returns the columns and, per source, how many events carried it (see :func:`block_columns`).
    """
    return block_columns(EventBlock.of(chunk))


def block_columns(block: EventBlock) -> tuple[dict[tuple[str, str], Column], dict[str, int]]:
    """Transpose a block into one column per (source, name), features first.

    Returns the columns and, per source, how many events carried it.  Columns
    come in the order their names first appear, event by event and key by key;
    each column's rows are in event order.  The common case, every event with
    the same names (in any order), is transposed in C (``itemgetter`` and
    ``zip``); events that leave names out are gathered value by value in one
    linear pass (one append per value, the rows found only if read: see
    :class:`Column`), so no key layout costs more than a visit per value.
    """
    out: dict[tuple[str, str], Column] = {}
    n_features = _gather(block.features, FEATURES, "", out)
    if block.named_outputs:
        n_outputs = _gather(block.outputs, OUTPUTS, "", out)  # type: ignore[arg-type]
    else:
        n_outputs = _predictions(block.outputs, out)
    return out, {FEATURES: n_features, OUTPUTS: n_outputs}


def _predictions(raw: list[object], out: dict[tuple[str, str], Column]) -> int:
    """Columns of the outputs of raw ``prediction`` values; returns how many events had one."""
    if not raw:
        return 0
    types = set(map(type, raw))
    if dict not in types:  # single outputs (and events without one)
        if _NONE in types:
            rows = [i for i, p in enumerate(raw) if p is not None]
            if not rows:
                return 0
            values = [raw[i] for i in rows]
        else:
            rows, values = list(range(len(raw))), list(raw)
        out[(OUTPUTS, PREDICTION)] = Column(rows, values)
        return len(rows)
    if types <= {dict, _NONE}:
        return _gather(raw, OUTPUTS, PREDICTION + ".", out)  # type: ignore[arg-type]
    # single and named outputs mixed in one block: flatten event by event
    return _gather([flatten_prediction(p) for p in raw], OUTPUTS, "", out)


def _gather(dicts: list[dict | None], source: str, prefix: str, out: dict[tuple[str, str], Column]) -> int:
    """Columns of one source (names prefixed with ``prefix``); returns how many events carried it."""
    given = dicts
    if None in dicts:
        rows = [i for i, d in enumerate(dicts) if d is not None]
        dicts = [dicts[i] for i in rows]  # type: ignore[misc]
    else:
        rows = list(range(len(dicts)))
    if not dicts:
        return 0
    first = dicts[0]
    width = len(first)
    if width and len(set(map(len, dicts))) == 1:
        # the same number of names in every event: the same names if each has the first one's
        names = list(first)
        getter = itemgetter(*names)
        try:
            taken = list(map(getter, dicts))
        except KeyError:
            pass
        else:
            if width == 1:
                out[(source, prefix + names[0])] = Column(rows, taken)
            else:
                for name, col in zip(names, zip(*taken)):
                    out[(source, prefix + name)] = Column(rows.copy(), list(col))
            return len(dicts)
    # one visit per value, through each column's bound append; the rows are found if read (Column.of_key)
    gathered: dict[object, list] = {}
    appends: dict[object, object] = {}
    #: per column: how many of its values have had their types read, those types, their floats (while only floats)
    read: dict[object, list] | None = {}
    for start in range(0, len(dicts), _BLOCK):
        block_dicts = dicts[start:start + _BLOCK]
        # the block's dicts and values fetched by one pass in C first, many loads in flight at a time (the
        # loop below waits on them one by one): sparse records about 4 % cheaper in Pipeline.process
        deque(chain.from_iterable(map(dict.values, block_dicts)), maxlen=0)
        for values in block_dicts:
            for name, value in values.items():  # type: ignore[union-attr]
                try:
                    appends[name](value)  # type: ignore[operator]
                except KeyError:
                    col = gathered[name] = [value]
                    appends[name] = col.append
        if read is None:
            continue
        if len(gathered) > _BLOCK:  # more names than a block has events: their types are the monitor's to read
            read = None  # (a visit per name and block would outgrow the values: quadratic in the chunk)
            continue
        for name, col in gathered.items():
            state = read.get(name)
            if state is None:
                state = read[name] = [0, set(), []]
            done = state[0]
            if done == len(col):
                continue
            block = col[done:]
            state[0] = len(col)
            kinds = state[1]
            kinds.update(map(type, block))
            if state[2] is not None:
                if kinds == _FLOAT:
                    state[2].append(np.array(block, dtype=np.float64))
                else:
                    state[2] = None
    if dicts is given:
        dicts = dicts.copy()  # the rows are found in these events, whatever becomes of the caller's list
    for name, col in gathered.items():
        column = out[(source, prefix + name)] = Column.of_key(name, col, dicts, rows)  # type: ignore[arg-type, operator]
        floats = read[name][2] if read is not None else None
        if floats is not None:
            column.floats = floats[0] if len(floats) == 1 else np.concatenate(floats)
    return len(dicts)
