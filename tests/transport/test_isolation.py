"""Poison bookkeeping: suspects tried alone, culprits dead-lettered, bounded attempts, pruned when unreachable."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from driftline.contract.event import SourceRecord
from driftline.transport.isolation import ABORT_LIMIT, Isolation, Unit


def recs(offsets, partition=0, topic="in"):
    return [SourceRecord(topic, partition, o, None, None, b"{}") for o in offsets]


def offsets(units):
    return [(u.alone, [r.offset for r in u.records]) for u in units]


def test_nothing_known_is_one_unit_and_empty_is_none():
    iso = Isolation()
    assert offsets(iso.units(recs(range(5)))) == [(False, [0, 1, 2, 3, 4])]
    assert iso.units([]) == [] and not iso


def test_a_failed_batch_makes_suspects_and_only_they_are_processed_one_at_a_time():
    iso = Isolation()
    iso.failed(Unit(recs([3, 4, 5])), "ValueError: x")
    assert offsets(iso.units(recs(range(8)))) == [(False, [0, 1, 2]), (True, [3, 4, 5]), (False, [6, 7])]
    # another partition is not suspect
    assert offsets(iso.units(recs([3, 4], partition=1))) == [(False, [3, 4])]


def test_a_suspect_that_raises_on_its_own_is_a_culprit_and_committed_ones_are_cleared():
    iso = Isolation()
    iso.failed(Unit(recs([10, 11, 12])), "boom")
    (unit,) = iso.units(recs([10, 11, 12]))
    iso.failed(unit, "OverflowError: int too large to convert to float", culprit=unit.records[1])
    assert iso.poison(recs([11])[0]) == "OverflowError: int too large to convert to float"
    assert iso.poison(recs([10])[0]) is None
    # after the rewind: 10 to 12 still one at a time (11 becomes its dead letter), 13 with the others
    assert offsets(iso.units(recs([10, 11, 12, 13]))) == [(True, [10, 11, 12]), (False, [13])]
    iso.committed(Unit(recs([10, 11, 12]), alone=True))
    assert offsets(iso.units(recs([12, 13]))) == [(False, [12, 13])]  # no suspects left
    assert iso.counts() == (1, 0)


def test_a_group_of_one_record_that_raises_names_it_at_once():
    iso = Isolation()
    iso.failed(Unit(recs([7])), "TypeError: t")
    assert iso.poison(recs([7])[0]) == "TypeError: t"


def test_publishing_errors_escalate_to_a_transaction_per_record_then_a_culprit():
    iso = Isolation()
    iso.escalate(Unit(recs([0, 1, 2])), "e")
    assert offsets(iso.units(recs([0, 1, 2]))) == [(True, [0, 1, 2])]
    iso.escalate(Unit(recs([0, 1, 2]), alone=True), "e")
    units = iso.units(recs([0, 1, 2, 3]))
    assert [(u.separate, [r.offset for r in u.records]) for u in units] == [(True, [0]), (True, [1]), (True, [2]),
                                                                              (False, [3])]
    iso.escalate(units[1], "RuntimeError: on_alert")
    assert iso.poison(recs([1])[0]) == "RuntimeError: on_alert"


def test_record_caused_aborts_isolate_after_the_limit_and_broker_aborts_only_make_the_worker_stuck():
    iso = Isolation()
    unit = Unit(recs([0, 1, 2]))
    for _ in range(ABORT_LIMIT - 1):
        assert not iso.aborted(unit, "Broker: Message size too large", record_caused=True)
        assert iso.stuck() is None
    assert iso.aborted(unit, "Broker: Message size too large", record_caused=True)
    units = iso.units(unit.records)
    assert [(u.separate, [r.offset for r in u.records]) for u in units] == [(True, [0]), (True, [1]), (True, [2])]
    assert iso.stuck() is None  # isolating: not stuck
    for _ in range(ABORT_LIMIT):
        iso.aborted(units[2], "Broker: Message size too large", record_caused=True)
    assert iso.poison(recs([2])[0]) == "Broker: Message size too large"

    iso = Isolation()
    for _ in range(ABORT_LIMIT + 2):
        assert not iso.aborted(unit, "Local: Broker transport failure", record_caused=False)
    reason = iso.stuck()
    assert reason is not None and "in[0]@0" in reason and "5 times" in reason and "transport failure" in reason
    iso.committed(unit)
    assert iso.stuck() is None


def test_aborts_of_another_input_start_the_count_again():
    iso = Isolation()
    iso.aborted(Unit(recs([0, 1])), "e", record_caused=True)
    iso.aborted(Unit(recs([0, 1])), "e", record_caused=True)
    assert not iso.aborted(Unit(recs([5, 6])), "e", record_caused=True)  # progress was made: count is 1
    assert iso.abort_count() == 1
    # the same start offsets with a different extent are the same input
    iso.aborted(Unit(recs([5, 6, 7])), "e", record_caused=True)
    assert iso.aborted(Unit(recs([5])), "e", record_caused=True)


def test_a_culprit_whose_dead_letter_is_refused_too_cannot_be_isolated_further():
    iso = Isolation()
    iso.failed(Unit(recs([4]), alone=True), "boom")
    unit = Unit(recs([4]), alone=True)
    results = [iso.aborted(unit, "refused", record_caused=True) for _ in range(ABORT_LIMIT + 1)]
    assert not any(results) and iso.stuck() is not None


def test_prune_forgets_what_a_rewind_cannot_reach_and_forget_drops_partitions():
    iso = Isolation()
    for o in (1, 5, 9):
        iso.failed(Unit(recs([o]), alone=True), f"e{o}")
    iso.failed(Unit(recs([20, 21], partition=1)), "e")
    iso.prune(("in", 0), 6)
    assert [iso.poison(r) for r in recs([1, 5, 9])] == [None, None, "e9"]
    iso.prune(("in", 1), 21)
    assert iso.suspect(recs([21], partition=1)[0])  # 21 still reachable
    iso.prune(("in", 1), 22)
    assert not iso.suspect(recs([21], partition=1)[0])
    iso.forget([("in", 0)])
    assert not iso and iso.counts() == (0, 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), bad=st.sets(st.integers(0, 29)))
def test_isolation_always_ends_and_finds_exactly_the_culprits(n, bad):
    """The worker's loop on a batch in which some records raise: it ends within (culprits + 1) rewinds,
    every bad record is a culprit (dead-lettered), every good one is committed once, processed."""
    bad = {b for b in bad if b < n}
    iso = Isolation()
    start, rewinds = 0, 0
    committed: list[int] = []
    dead: list[int] = []
    while start < n:
        for unit in iso.units(recs(range(start, n))):
            todo = [r for r in unit.records if iso.poison(r) is None]
            raising = [r for r in todo if r.offset in bad]
            if raising:
                iso.failed(unit, "boom", culprit=raising[0] if unit.alone else None)
                rewinds += 1
                break  # rewind: read again from the first uncommitted offset
            iso.committed(unit)
            committed += [r.offset for r in todo]
            dead += [r.offset for r in unit.records if iso.poison(r) is not None]
            start = unit.records[-1].offset + 1
        assert rewinds <= len(bad) + 1
    assert sorted(committed) == sorted(set(range(n)) - bad) and sorted(dead) == sorted(bad)
