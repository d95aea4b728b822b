"""When to try a webhook again: exponential backoff with jitter, ``Retry-After``, give-up.

Pure: the caller sleeps, the caller's random generator jitters.  A delivery
is tried once and retried at most ``max_retries`` times; the wait before
retry *n* (0-based) is drawn from ``[d/2, d]`` with
``d = min(max_backoff, first_backoff * 2**n)`` ("equal jitter": instances
that failed together do not retry in lockstep, and the wait never collapses
to zero).  A ``Retry-After`` from the server (429 or 503) raises the wait to
what it asks, up to ``max_backoff``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after", "RETRYABLE_STATUSES"]

#: HTTP statuses worth another try: timeouts, rate limits and server errors.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one delivery to one endpoint.

    >>> policy = RetryPolicy(max_retries=4, first_backoff=1.0, max_backoff=5.0)
    >>> [policy.ceiling(n) for n in range(4)]
    [1.0, 2.0, 4.0, 5.0]
    """

    max_retries: int = 5
    first_backoff: float = 1.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not 0 < self.first_backoff <= self.max_backoff:
            raise ValueError(f"need 0 < first_backoff <= max_backoff, got {self.first_backoff} and {self.max_backoff}")

    @staticmethod
    def retryable(status: int | None) -> bool:
        """Whether a response status (``None`` = no response: connection error or timeout) deserves a retry."""
        return status is None or status >= 500 or status in RETRYABLE_STATUSES

    def ceiling(self, retry: int) -> float:
        """Longest wait before retry number ``retry`` (0-based), before jitter."""
        return min(self.max_backoff, self.first_backoff * 2.0 ** min(retry, 63))

    def delay(self, retry: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based).

        >>> RetryPolicy(first_backoff=1.0).delay(2, rng=random.Random(0)) <= 4.0
        True
        >>> RetryPolicy(max_backoff=30.0).delay(0, retry_after=12.0)
        12.0
        """
        top = self.ceiling(retry)
        wait = top / 2.0 + (rng or random).uniform(0.0, top / 2.0)
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.max_backoff)
        return wait

    def worst_case_seconds(self, request_timeout: float) -> float:
        """Longest one delivery to one endpoint can take: every attempt times out, every wait is the longest."""
        return (self.max_retries + 1) * request_timeout + sum(self.ceiling(n) for n in range(self.max_retries))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date), ``None`` if absent or unreadable.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("Wed, 26 Nov 2025 10:00:30 GMT", now=datetime(2025, 11, 26, 10, 0, 0, tzinfo=timezone.utc))
    30.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
