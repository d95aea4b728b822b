"""Firings other workers report (the alerts topic is an input too): they hold keys for a bounded span and count.

A record on ``driftline.alerts`` dated year 9999 used to hold its key in
cooldown forever (every later finding of that key suppressed), and forged
firings of distinct keys piled up without bound in every worker's alert book.
"""

from __future__ import annotations

from driftline.detection import alerts as alerts_module
from driftline.detection.alerts import FIRING, AlertBook
from driftline.detection.findings import Finding, WindowSpan

YEAR_9999_MS = 253_402_300_799_000.0


def _finding(t: float, feature: str = "x") -> Finding:
    return Finding(model="m", model_version="v", feature=feature, kind="data_drift", detector="psi", severity="warning",
                   statistic=1.0, threshold=0.2, summary="s", reference="warmup",
                   window=WindowSpan("in", 0, 0, 10, t, t), event_time_ms=t, details={})


def test_a_firing_dated_year_9999_holds_a_key_for_two_cooldowns_at_most():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    book.tick({"m": 1_000_000.0})
    assert book.note_remote("m/v/x/data_drift", YEAR_9999_MS)
    assert book.observe(_finding(1_100_000.0), 1_100_000.0) == []  # held, as a peer's firing should be
    later = 1_000_000.0 + 2 * 300_000.0
    book.tick({"m": later})
    assert [a["status"] for a in book.observe(_finding(later), later)] == [FIRING]


def test_a_firing_noted_before_any_clock_is_bounded_by_the_first_tick():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    assert book.note_remote("m/v/x/data_drift", YEAR_9999_MS)
    book.tick({"m": 1_000_000.0})
    later = 1_000_000.0 + 2 * 300_000.0
    book.tick({"m": later})
    assert [a["status"] for a in book.observe(_finding(later), later)] == [FIRING]


def test_a_peer_slightly_ahead_is_still_honoured_for_its_whole_cooldown():
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    book.tick({"m": 1_000_000.0})
    assert book.note_remote("m/v/x/data_drift", 1_200_000.0)  # the other partition is 200 s ahead
    t = 1_200_000.0 + 299_000.0
    book.tick({"m": t})
    assert book.observe(_finding(t), t) == []


def test_firings_of_other_workers_are_held_up_to_a_bound(monkeypatch):
    monkeypatch.setattr(alerts_module, "MAX_REMOTE_KEYS", 1_000)
    book = AlertBook(cooldown_seconds=300, resolve_after_seconds=600)
    book.observe(_finding(1_000.0, feature="own"), 1_000.0)  # a key of its own is never evicted
    for i in range(5_000):
        book.note_remote(f"m/v/f{i}/data_drift", 2_000.0)
    assert len(book) == 1_001
    assert book.note_remote("m/v/f0/data_drift", 2_000.0)  # the oldest went first
    assert [f.feature for f in book.firing()] == ["own"]
