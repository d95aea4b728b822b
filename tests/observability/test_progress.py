"""The worker's progress line, dead-letter limit and start-up waits (no clock: time is passed in)."""

from __future__ import annotations

import logging

from driftline.observability.progress import DEFAULT_DEAD_LETTER_INTERVAL, Progress, Wait


def _recorder():
    lines: list[tuple[int, str, dict]] = []
    return lines, lambda level, message, ctx: lines.append((level, message, ctx))


def test_one_warning_per_reason_per_interval_and_the_rest_counted():
    lines, say = _recorder()
    p = Progress(10.0, now=0.0, say=say)
    for t, reason in [(1, "invalid_json"), (2, "invalid_json"), (3, "missing_model"), (11, "invalid_json")]:
        p.dead_letter(reason, "x" * 10_000, "in", 0, t, now=float(t))
    warnings = [ctx for level, _, ctx in lines if level == logging.WARNING]
    assert [w["reason"] for w in warnings] == ["invalid_json", "missing_model", "invalid_json"]  # a new interval at 11
    assert all(len(w["error"]) <= 200 for w in warnings)
    assert p.tick(now=12.0, lag=lambda: None, incidents=lambda: 2)
    level, message, ctx = lines[-1]
    assert level == logging.INFO and "lag unknown" in message and "open incidents 2" in message
    assert ctx["dead_letters"] == {"invalid_json": 3, "missing_model": 1} and "1 not logged" in message
    # counts start again
    assert p.tick(now=30.0, lag=lambda: 0, incidents=lambda: 0) and "dead letters 0," in lines[-1][1]


def test_progress_off_still_limits_dead_letters():
    lines, say = _recorder()
    p = Progress(0, now=0.0, say=say)
    for t in range(100):
        p.dead_letter("invalid_json", "bad", "in", 0, t, now=float(t))
    assert not p.tick(now=1e6, lag=lambda: 0, incidents=lambda: 0)
    assert len(lines) == 100 // int(DEFAULT_DEAD_LETTER_INTERVAL) + 1


def test_a_wait_reminds_at_doubling_intervals_and_ends_once():
    lines, say = _recorder()
    w = Wait("the broker", "broker answered", now=100.0, say=say)
    for t in range(100, 200):
        w.remind(now=float(t))
    w.done(now=200.0)
    w.done(now=201.0)
    w.remind(now=300.0)
    assert [m for _, m, _ in lines] == ["waiting for the broker", "still waiting for the broker after 10 s",
                                        "still waiting for the broker after 20 s", "still waiting for the broker after 40 s",
                                        "still waiting for the broker after 80 s", "broker answered after 100.0 s"]
    assert lines[-1][2]["wait_seconds"] == 100.0
