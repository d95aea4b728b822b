"""What a worker says while it runs: the progress line, dead-letter lines and start-up waits.

A worker that processes normal traffic would otherwise log nothing at all;
these keep its log readable at any rate of records:

* :class:`Progress`: one line every ``progress_interval_seconds`` with the
  records and events/s since the previous line, the consumer lag, dead
  letters by reason and open incidents; and, per dead-letter reason, the
  first dead letter of each interval at WARNING (where it came from and
  why), the others only counted (they appear in the next progress line, so
  a flood of bad records costs one line per reason per interval);
* :class:`Wait`: a start-up wait (the broker, the group join, the partition
  assignment) said when it starts, again while it lasts (after 10 s, then
  at doubling intervals) and when it ends, with how long it took.

Time is passed in (``now``, monotonic seconds), so both are tested without a
clock.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

__all__ = ["Progress", "Wait", "DEFAULT_DEAD_LETTER_INTERVAL", "dead_letter_text"]

#: Interval of the dead-letter limit when the progress line is off (``progress_interval_seconds`` 0).
DEFAULT_DEAD_LETTER_INTERVAL = 60.0
#: First reminder of a start-up wait; each next one after twice the time.
FIRST_REMINDER_SECONDS = 10.0
#: Longest detail of a dead letter in its log line.
DETAIL_CHARS = 200


def dead_letter_text(counts: Counter[str] | dict[str, int]) -> str:
    """``3 (invalid_json 2, missing_model 1)``: a total and its reasons, most frequent first.

    >>> dead_letter_text({"missing_model": 1, "invalid_json": 2})
    '3 (invalid_json 2, missing_model 1)'
    >>> dead_letter_text({})
    '0'
    """
    total = sum(counts.values())
    if not total:
        return "0"
    parts = ", ".join(f"{r} {n:,}" for r, n in sorted(counts.items(), key=lambda rn: (-rn[1], rn[0])) if n)
    return f"{total:,} ({parts})"


class Progress:
    """Counts of a worker between two progress lines, and the dead-letter limit per reason.

    >>> lines = []
    >>> p = Progress(60.0, now=0.0, say=lambda level, msg, ctx: lines.append((level, msg)))
    >>> p.records(1200)
    >>> for offset in range(3):
    ...     p.dead_letter("invalid_json", "not JSON", "in", 0, offset, now=1.0)
    >>> [level for level, _ in lines]      # the first of the interval only
    [30]
    >>> p.tick(now=30.0, lag=lambda: 0, incidents=lambda: 0)     # not due yet
    False
    >>> p.tick(now=60.0, lag=lambda: 5, incidents=lambda: 1)
    True
    >>> lines[-1][1]
    'progress: 1,200 records in 60 s (20.0 events/s), lag 5, dead letters 3 (invalid_json 3; 2 not logged), open incidents 1'
    """

    def __init__(self, interval: float, *, now: float,
                 say: Callable[[int, str, dict[str, object]], None]) -> None:
        self.interval = float(interval)
        self.say = say
        self._since = now
        self._limit_interval = self.interval if self.interval > 0 else DEFAULT_DEAD_LETTER_INTERVAL
        self._limit_since = now
        self._records = 0
        self.total_records = 0
        self._dead: Counter[str] = Counter()
        self.total_dead: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._quiet = 0

    def records(self, count: int) -> None:
        self._records += count
        self.total_records += count

    def dead_letter(self, reason: str, detail: str, topic: str, partition: int, offset: int, *, now: float) -> None:
        """Count a dead letter (published and committed); log it at WARNING if it is its reason's first
        in the interval, else count it as not logged."""
        if now - self._limit_since >= self._limit_interval:
            self._limit_since, self._logged = now, set()
        self._dead[reason] += 1
        self.total_dead[reason] += 1
        if reason in self._logged:
            self._quiet += 1
            return
        self._logged.add(reason)
        self.say(logging.WARNING, f"dead letter ({reason}): " + ("the record does not follow the input contract"
                                                                if reason != "processing_error" else "processing the record raised"), {
                     "reason": reason, "error": detail[:DETAIL_CHARS], "topic": topic, "partition": partition,
                     "offset": offset,
                     "limit": f"first {reason} in {self._limit_interval:g} s; the next ones are counted in the progress line"})

    def tick(self, *, now: float, lag: Callable[[], int | None], incidents: Callable[[], int]) -> bool:
        """Log the progress line if it is due; whether it was."""
        if self.interval <= 0 or now - self._since < self.interval:
            return False
        elapsed = now - self._since
        current = lag()
        dead = dead_letter_text(self._dead)
        if self._quiet:
            dead = dead[:-1] + f"; {self._quiet:,} not logged)"
        message = (f"progress: {self._records:,} records in {elapsed:.0f} s ({self._records / elapsed:,.1f} events/s), "
                   f"lag {'unknown' if current is None else format(current, ',')}, dead letters {dead}, "
                   f"open incidents {incidents()}")
        self.say(logging.INFO, message, {"records": self._records, "events_per_second": round(self._records / elapsed, 1),
                                         "lag": current, "dead_letters": dict(self._dead),
                                         "records_total": self.total_records})
        self._since, self._records, self._dead, self._quiet = now, 0, Counter(), 0
        return True


class Wait:
    """A start-up wait: said when it starts, at 10 s, 20 s, 40 s, ... while it lasts, and when it ends.

    >>> lines = []
    >>> w = Wait("the partition assignment", "partitions assigned", now=0.0, detail="group g",
    ...          say=lambda level, msg, ctx: lines.append(msg))
    >>> w.remind(now=5.0); w.remind(now=10.5); w.remind(now=15.0); w.remind(now=21.0)
    >>> w.done(now=22.0, result="2 partition(s)")
    >>> lines   # doctest: +NORMALIZE_WHITESPACE
    ['waiting for the partition assignment (group g)',
     'still waiting for the partition assignment after 10 s (group g)',
     'still waiting for the partition assignment after 21 s (group g)',
     'partitions assigned after 22.0 s: 2 partition(s)']
    """

    def __init__(self, what: str, ended: str, *, now: float, say: Callable[[int, str, dict[str, object]], None],
                 detail: str = "", ctx: dict[str, object] | None = None) -> None:
        self.what, self.ended, self.detail, self.say, self.ctx = what, ended, detail, say, dict(ctx or {})
        self.started = now
        self._next = now + FIRST_REMINDER_SECONDS
        self.finished = False
        self.say(logging.INFO, f"waiting for {what}" + (f" ({detail})" if detail else ""), self.ctx)

    def remind(self, *, now: float, detail: str | None = None) -> None:
        if self.finished or now < self._next:
            return
        self._next = self.started + 2 * (now - self.started)
        shown = self.detail if detail is None else detail
        self.say(logging.INFO, f"still waiting for {self.what} after {now - self.started:.0f} s"
                 + (f" ({shown})" if shown else ""), self.ctx)

    def done(self, *, now: float, result: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        self.say(logging.INFO, f"{self.ended} after {now - self.started:.1f} s" + (f": {result}" if result else ""),
                 {**self.ctx, "wait_seconds": round(now - self.started, 3)})
