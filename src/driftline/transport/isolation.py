"""Which input records the worker processes alone, and which it dead-letters unprocessed.

When processing a batch raises, the state it changed cannot be trusted, so
the worker rewinds to the last checkpoint and reads again.  The records of
the failed batch become *suspects*: on the re-read each is processed on its
own (one pipeline call per record; their outputs still go out in one
transaction).  A suspect that raises on its own is a *culprit*: after the
next rewind it is dead-lettered (reason ``processing_error``, the exception
in ``driftline.error``) instead of processed.  Every rewind adds a culprit
or clears suspects, so isolating a batch with ``k`` culprits takes ``k + 1``
rewinds and always ends.

Transactions that Kafka aborts are counted per input (the start offset of
each partition in it).  When Kafka refused a record for what it is (too
large, invalid) and the same input was aborted ``abort_limit`` times, its
records are isolated one transaction each (*separate* suspects); one
aborted that often on its own is a culprit.  Aborts for other reasons (a
broker outage) are only counted: the same input aborted ``abort_limit``
times in a row makes the worker *stuck* (its ``/healthz`` fails) until a
transaction commits.

Culprits and suspects are kept only as long as a rewind can reach them:
:meth:`Isolation.prune` drops those below the offset a rewind would go back
to (the partition's checkpoint, or its committed offset without one).
Pure: no Kafka, no clock.

>>> from driftline.contract.event import SourceRecord
>>> recs = [SourceRecord("in", 0, i, None, None, b"{}") for i in range(4)]
>>> iso = Isolation()
>>> [(u.alone, len(u.records)) for u in iso.units(recs)]   # nothing known: one unit
[(False, 4)]
>>> iso.failed(iso.units(recs)[0], "ValueError: boom")     # the batch raised: all four are suspects
>>> [(u.alone, len(u.records)) for u in iso.units(recs)]   # processed one at a time
[(True, 4)]
>>> iso.failed(iso.units(recs)[0], "ValueError: boom", culprit=recs[1])  # offset 1 raised on its own
>>> iso.poison(recs[1])
'ValueError: boom'
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from driftline.contract.event import SourceRecord

__all__ = ["Isolation", "Unit", "ABORT_LIMIT"]

TP = tuple[str, int]

#: Aborts of the same input after which a record-caused failure is isolated (or a worker counts as stuck).
ABORT_LIMIT = 3


class Unit(NamedTuple):
    """Records processed, published and committed together.

    ``alone``: each record is processed on its own (suspects); ``separate``: a single record in a
    transaction of its own (a suspect of a transaction Kafka kept refusing)."""

    records: Sequence[SourceRecord]
    alone: bool = False
    separate: bool = False

    @property
    def key(self) -> tuple:
        """The input this unit starts at: (topic, partition, first offset) of each partition in it, and its kind."""
        first: dict[TP, int] = {}
        for r in self.records:
            first.setdefault((r.topic, r.partition), r.offset)
        return (tuple(sorted((t, p, o) for (t, p), o in first.items())), self.alone, self.separate)


def _widen(spans: dict[TP, list[int]], record: SourceRecord) -> None:
    span = spans.setdefault((record.topic, record.partition), [record.offset, record.offset])
    span[0], span[1] = min(span[0], record.offset), max(span[1], record.offset)


def _within(spans: dict[TP, list[int]], record: SourceRecord) -> bool:
    span = spans.get((record.topic, record.partition))
    return span is not None and span[0] <= record.offset <= span[1]


class Isolation:
    def __init__(self, abort_limit: int = ABORT_LIMIT) -> None:
        self.abort_limit = abort_limit
        #: culprits: partition -> offset -> what it raised
        self._poison: dict[TP, dict[int, str]] = {}
        #: suspects: partition -> [lowest, highest] offset still to be processed on its own
        self._suspects: dict[TP, list[int]] = {}
        #: separate suspects: partition -> [lowest, highest] offset still to be committed on its own
        self._separate: dict[TP, list[int]] = {}
        #: consecutive aborts of one input: (unit key, count, last error)
        self._aborts: tuple[tuple, int, str] = ((), 0, "")

    def __bool__(self) -> bool:
        return bool(self._poison or self._suspects or self._separate)

    def poison(self, record: SourceRecord) -> str | None:
        """What ``record`` raised when it was processed on its own, or None if it is not a culprit."""
        found = self._poison.get((record.topic, record.partition))
        return found.get(record.offset) if found else None

    def suspect(self, record: SourceRecord) -> bool:
        return _within(self._suspects, record) or _within(self._separate, record)

    def units(self, records: Sequence[SourceRecord]) -> list[Unit]:
        """``records`` (in order) cut into units: runs of suspects (processed one at a time), separate
        suspects (a transaction each), and the runs of other records between them."""
        if not records:
            return []
        if not self._suspects and not self._separate:
            return [Unit(records)]
        out: list[Unit] = []
        run: list[SourceRecord] = []
        run_alone = False
        for r in records:
            if _within(self._separate, r):
                if run:
                    out.append(Unit(run, run_alone))
                    run = []
                out.append(Unit((r,), alone=True, separate=True))
                continue
            alone = _within(self._suspects, r)
            if run and alone != run_alone:
                out.append(Unit(run, run_alone))
                run = []
            run_alone = alone
            run.append(r)
        if run:
            out.append(Unit(run, run_alone))
        return out

    def failed(self, unit: Unit, detail: str, *, culprit: SourceRecord | None = None) -> None:
        """Processing (or publishing) ``unit`` raised: ``culprit`` (the record that raised on its own) or
        the only record processed is a culprit; otherwise the unit's records become suspects."""
        todo = [r for r in unit.records if self.poison(r) is None]
        if culprit is None and len(todo) == 1:
            culprit = todo[0]
        if culprit is not None:
            self._poison.setdefault((culprit.topic, culprit.partition), {})[culprit.offset] = detail
        else:
            for r in todo:
                _widen(self._suspects, r)
        self._aborts = ((), 0, "")

    def escalate(self, unit: Unit, detail: str) -> None:
        """Publishing ``unit`` raised (outside Kafka): a batch's records become suspects, suspects each get a
        transaction of their own, and one on its own is a culprit."""
        todo = [r for r in unit.records if self.poison(r) is None]
        if not unit.alone and len(todo) > 1:
            self.failed(unit, detail)
            return
        if len(todo) == 1:
            self._poison.setdefault((todo[0].topic, todo[0].partition), {})[todo[0].offset] = detail
        for r in todo if len(todo) > 1 else ():
            _widen(self._separate, r)
        self._aborts = ((), 0, "")

    def aborted(self, unit: Unit, detail: str, *, record_caused: bool) -> bool:
        """Kafka aborted the transaction of ``unit``; True when that isolated it (see the module docstring)."""
        key = unit.key
        count = self._aborts[1] + 1 if self._aborts[0] == key else 1
        self._aborts = (key, count, detail)
        if not record_caused or count < self.abort_limit:
            return False
        todo = [r for r in unit.records if self.poison(r) is None]
        if not todo:
            return False  # only dead letters left, and Kafka refuses those too: nothing more to isolate
        if len(todo) == 1:
            self._poison.setdefault((todo[0].topic, todo[0].partition), {})[todo[0].offset] = detail
        else:
            for r in todo:
                _widen(self._separate, r)
        self._aborts = ((), 0, "")
        return True

    def committed(self, unit: Unit) -> None:
        """``unit`` was committed: its suspects are cleared, the abort count starts again."""
        self._aborts = ((), 0, "")
        self.cleared(unit)

    def cleared(self, unit: Unit) -> None:
        """``unit`` was processed without raising (a muted re-read): its suspects are cleared."""
        for spans in (self._suspects, self._separate):
            if not spans:
                continue
            for r in unit.records:
                tp = (r.topic, r.partition)
                span = spans.get(tp)
                if span is not None and r.offset >= span[0]:
                    span[0] = r.offset + 1
                    if span[0] > span[1]:
                        del spans[tp]

    def prune(self, tp: TP, floor: int) -> None:
        """A rewind of ``tp`` goes back no further than ``floor`` now: forget what lies below it."""
        found = self._poison.get(tp)
        if found:
            for offset in [o for o in found if o < floor]:
                del found[offset]
            if not found:
                del self._poison[tp]
        for spans in (self._suspects, self._separate):
            span = spans.get(tp)
            if span is not None and span[1] < floor:
                del spans[tp]

    def forget(self, tps: Sequence[TP]) -> None:
        """Partitions this worker no longer owns (the next owner finds its own culprits)."""
        for tp in tps:
            self._poison.pop(tp, None)
            self._suspects.pop(tp, None)
            self._separate.pop(tp, None)

    def stuck(self) -> str | None:
        """Why the worker is stuck (one input aborted ``abort_limit`` times in a row), or None."""
        key, count, detail = self._aborts
        if count < self.abort_limit:
            return None
        where = ", ".join(f"{t}[{p}]@{o}" for t, p, o in key[0]) if key and key[0] else "no input"
        return f"the same input ({where}) was aborted {count} times in a row; last error: {detail}"

    def abort_count(self) -> int:
        return self._aborts[1]

    def counts(self) -> tuple[int, int]:
        """(culprits, partitions with suspects) held now."""
        return sum(len(v) for v in self._poison.values()), len(set(self._suspects) | set(self._separate))
