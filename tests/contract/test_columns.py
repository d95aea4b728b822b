"""Transposing events into columns: right whatever the key order, and linear in it."""

from __future__ import annotations

import time

from hypothesis import given, settings, strategies as st

from driftline.contract.columns import FEATURES, OUTPUTS, LocatedEvent, columns
from driftline.contract.event import InferenceEvent


def _event(offset: int, features: dict | None, outputs: dict | None = None) -> LocatedEvent:
    return LocatedEvent(offset, InferenceEvent("m", "v", None, offset, features, outputs))


def _naive(chunk):
    out = {}
    for idx, located in enumerate(chunk):
        for source, values in ((FEATURES, located.event.features), (OUTPUTS, located.event.outputs)):
            for name, value in (values or {}).items():
                rows, vals = out.setdefault((source, name), ([], []))
                rows.append(idx)
                vals.append(value)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.dictionaries(st.sampled_from("abcde"), st.integers(), max_size=5)),
                          st.one_of(st.none(), st.dictionaries(st.sampled_from("ab"), st.integers(), max_size=2))),
                max_size=30))
def test_columns_hold_every_value_in_row_order(rows):
    chunk = [_event(i, f, o) for i, (f, o) in enumerate(rows)]
    cols, n_source = columns(chunk)
    assert {k: (c.rows, c.values) for k, c in cols.items()} == _naive(chunk)
    assert n_source == {FEATURES: sum(f is not None for f, _ in rows), OUTPUTS: sum(o is not None for _, o in rows)}


def test_a_key_order_that_changes_every_record_costs_no_more_than_a_constant_one():
    """A producer that rotates its key order makes every record its own group: merging the groups
    one by one took time quadratic in the records (1,000 records of 500 features: 12 s)."""
    names = [f"f{i}" for i in range(300)]
    rotated = [_event(j, {k: 1.0 for k in names[j % 300:] + names[:j % 300]}) for j in range(600)]
    start = time.perf_counter()
    cols, _ = columns(rotated)
    elapsed = time.perf_counter() - start
    assert cols[(FEATURES, "f7")].rows == list(range(600))
    assert elapsed < 1.0, elapsed  # ~0.1 s; the quadratic merge took ~4 s


@settings(max_examples=30, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(), max_size=8), min_size=40, max_size=120),
       st.randoms(use_true_random=False))
def test_many_key_layouts_are_gathered_value_by_value_with_the_same_columns(rows, rnd):
    """Sparse features (keys left out) and unsorted keys give a layout per event: the value-by-value path."""
    shuffled = []
    for f in rows:
        items = list(f.items())
        rnd.shuffle(items)
        shuffled.append(dict(items))
    chunk = [_event(i, f, {"p": i} if i % 3 else None) for i, f in enumerate(shuffled)]
    cols, n_source = columns(chunk)
    assert {k: (c.rows, c.values) for k, c in cols.items()} == _naive(chunk)
    assert n_source == {FEATURES: len(rows), OUTPUTS: sum(1 for i in range(len(rows)) if i % 3)}


def _in_order(cols, source):
    return [name for s, name in cols if s == source]


def test_many_key_layouts_give_the_columns_of_the_grouped_path_in_the_same_order():
    """Past MAX_LAYOUTS layouts a chunk is gathered: every name in every event in its own order (unsorted
    keys, gathered in one order and transposed), or names left out (sparse): values, rows and the order
    of first appearance (features are created in it) as the per-value transposition gives them."""
    import random

    rnd = random.Random(3)
    names = [f"f{i}" for i in range(12)]
    values = [1, 2.5, "x", None, True, 10**30]
    shuffled, sparse = [], []
    for j in range(300):
        keys = names[:]
        rnd.shuffle(keys)
        shuffled.append(_event(j, {k: rnd.choice(values) for k in keys}, {"p": j} if j % 3 else None))
        sparse.append(_event(j, {k: rnd.choice(values) for k in keys if rnd.random() < 0.8} if j % 7 else None))
    for chunk in (shuffled, sparse, shuffled[:1] + sparse):
        cols, n_source = columns(chunk)
        naive = _naive(chunk)
        assert {k: (c.rows, c.values) for k, c in cols.items()} == naive
        for source in (FEATURES, OUTPUTS):
            assert _in_order(cols, source) == _in_order(naive, source)
        assert n_source[FEATURES] == sum(e.event.features is not None for e in chunk)


def _gather_before(dicts, source, prefix, out):
    """What ``columns._gather`` gives, written the plain way (the reference): one column per name, in the
    order names first appear event by event and key by key, each with the rows and values of the events
    (not None) that carry it; returns how many events are not None."""
    from driftline.contract.columns import Column

    gathered: dict = {}
    carried = 0
    for row, event in enumerate(dicts):
        if event is None:
            continue
        carried += 1
        for name, value in event.items():
            if name not in gathered:
                gathered[name] = Column([], [])
            gathered[name].rows.append(row)
            gathered[name].values.append(value)
    for name, col in gathered.items():
        out[(source, prefix + name)] = col
    return carried


_KEYS = st.one_of(st.sampled_from(["a", "b", "c", "a ", "A", "", "\ud800", "\x00", "prediction", "prediction.a",
                                   "a.b", "é", "e\u0301", "~" * 3, "x" * 70]), st.text(max_size=3))
_VALUES = st.one_of(st.none(), st.integers(), st.integers(min_value=2**63), st.floats(), st.text(max_size=3),
                    st.booleans(), st.just({}), st.lists(st.integers(), max_size=2))
_DICTS = st.one_of(st.none(), st.dictionaries(_KEYS, _VALUES, max_size=6))


@settings(max_examples=100, deadline=None)
@given(st.lists(_DICTS, max_size=25), st.sampled_from(["", "prediction."]), st.booleans(), st.booleans(),
       st.sampled_from([1, 2, 5, 1024]))
def test_the_gather_gives_the_columns_it_gave_before_on_any_layout(dicts, prefix, dense_first, read_late, block):
    """Missing keys, None values, explicit nulls, empty and None dicts, look-alike names: the same columns
    (order, rows, values by identity) and the same count as the gather before lazy rows; a column's floats,
    converted block by block (``block`` events at a time), are its values as float64 when all are floats."""
    import numpy as np

    from driftline.contract import columns as C

    if dense_first and dicts and dicts[0]:
        dicts = [dicts[0]] * 3 + dicts  # a run of one layout before the others
    before: dict = {}
    n_before = _gather_before(list(dicts), FEATURES, prefix, before)
    after: dict = {}
    given_list = list(dicts)
    was, C._BLOCK = C._BLOCK, block
    try:
        n_after = C._gather(given_list, FEATURES, prefix, after)
    finally:
        C._BLOCK = was
    for col in after.values():
        if col.floats is not None:
            assert all(type(v) is float for v in col.values)
            assert col.floats.dtype == np.float64
            assert col.floats.tobytes() == np.array(col.values, dtype=np.float64).tobytes()
        elif col._where is not None and len(after) <= block and all(type(v) is float for v in col.values):
            raise AssertionError("a gathered column of floats without its floats")
    assert n_after == n_before
    assert list(after) == list(before)
    if read_late:  # the caller's list changed before the rows are read: they are the gathered events' still
        given_list[:] = [{} for _ in given_list]
    for key, col in before.items():
        got = after[key]
        assert len(got.values) == len(col.values) and all(a is b for a, b in zip(got.values, col.values))
        assert got.rows == col.rows
        assert got.rows is got.rows  # found once


def test_events_with_more_names_than_a_block_leave_the_types_to_the_monitor_and_stay_linear():
    """Every event with names of its own: reading each column's types block by block would visit every
    name once per block; past a block's worth of names the gather stops reading them."""
    chunk = [_event(j, {f"f{j}_{i}": 1.5 for i in range(j % 3 + 1)}) for j in range(6000)]
    cols, _ = columns(chunk)
    assert len(cols) == sum(j % 3 + 1 for j in range(6000))
    assert all(c.floats is None for c in cols.values())
    assert cols[(FEATURES, "f5999_0")].rows == [5999] and cols[(FEATURES, "f5999_0")].values == [1.5]


def test_a_columns_rows_can_be_set_before_they_are_read():
    from driftline.contract.columns import Column

    col = Column.of_key("a", [1], [{"a": 1}, {"b": 2}], [4, 7])
    col.rows = [9]
    assert col.rows == [9]
    assert Column.of_key("b", [2], [{"a": 1}, {"b": 2}], [4, 7]).rows == [7]
