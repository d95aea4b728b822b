"""Backoff schedule, jitter, Retry-After and give-up of driftline notify (pure)."""

import random
from datetime import datetime, timezone

import pytest

from driftline.notify.retry import RetryPolicy, parse_retry_after


def test_the_ceiling_doubles_up_to_the_cap():
    policy = RetryPolicy(max_retries=7, first_backoff=1.0, max_backoff=30.0)
    assert [policy.ceiling(n) for n in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.ceiling(10_000) == 30.0  # no overflow


def test_waits_are_jittered_between_half_and_all_of_the_ceiling():
    policy = RetryPolicy(first_backoff=1.0, max_backoff=30.0)
    rng = random.Random(7)
    for n in range(6):
        waits = [policy.delay(n, rng=rng) for _ in range(200)]
        assert all(policy.ceiling(n) / 2 <= w <= policy.ceiling(n) for w in waits)
        assert max(waits) - min(waits) > policy.ceiling(n) / 4  # really spread, not lockstep


def test_retry_after_raises_the_wait_up_to_the_cap():
    policy = RetryPolicy(first_backoff=1.0, max_backoff=30.0)
    assert policy.delay(0, retry_after=12.0, rng=random.Random(1)) == 12.0
    assert policy.delay(0, retry_after=3600.0, rng=random.Random(1)) == 30.0
    assert policy.delay(4, retry_after=0.0, rng=random.Random(1)) >= 8.0  # a shorter Retry-After does not shorten backoff


@pytest.mark.parametrize("status, retry", [(None, True), (500, True), (502, True), (503, True), (429, True),
                                           (408, True), (425, True), (400, False), (401, False), (403, False),
                                           (404, False), (413, False), (301, False)])
def test_which_answers_are_retried(status, retry):
    assert RetryPolicy.retryable(status) is retry


def test_worst_case_bounds_one_delivery():
    policy = RetryPolicy(max_retries=5, first_backoff=1.0, max_backoff=30.0)
    # six attempts of 10 s and the five longest waits 1 + 2 + 4 + 8 + 16
    assert policy.worst_case_seconds(10.0) == 60.0 + 31.0


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="first_backoff"):
        RetryPolicy(first_backoff=5.0, max_backoff=1.0)


def test_parse_retry_after():
    now = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Thu, 26 Nov 2026 10:01:00 GMT", now=now) == 60.0
    assert parse_retry_after("Thu, 26 Nov 2026 09:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("-5", now=now) == 0.0
    for bad in (None, "", "later", "nan"):
        assert parse_retry_after(bad, now=now) is None
