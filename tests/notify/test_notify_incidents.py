"""The incident rules of driftline notify (pure, no clock): grouping, joins, resolution, warm-up, reminders."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.notify.incidents import IncidentBook, incident_of, message_id

_ids = itertools.count()
INC = "5f1c" * 8


def rec(feature, status="firing", *, incident=INC, kind="data_drift", detector="cusum", reminder=False, **kw):
    out = {"alert_id": f"a{next(_ids)}", "status": status, "model": "fraud", "model_version": "v3",
           "feature": feature, "kind": kind, "detector": detector, "detectors": [detector], "severity": "warning",
           "incident_id": incident, "detected_at": "2026-12-01T10:00:00.000Z",
           "opened_event_time": "2026-12-01T09:59:00.000Z", **kw}
    if reminder:
        out["reminder"] = True
    return out


def add(book, alert, now, at_ms=0.0, offset=None, warm=False):
    source = ("alerts", 0, offset) if offset is not None else None
    return book.add(alert, f"{alert['feature']}/{alert['kind']}", now=now, at_ms=at_ms, source=source, warm=warm)


FEATURES = [f"f{i}" for i in range(8)]


def test_an_upstream_break_is_one_opening_after_the_grouping_delay_and_one_resolution():
    book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    for i, f in enumerate(FEATURES):
        assert add(book, rec(f), now=0.1 * i, offset=i) == ("grouped", [])
    assert book.next_due() == 5.0 and book.due(4.99) == []
    assert book.waiting() == {("alerts", 0): 0}  # nothing may be committed before the opening is posted
    [opened] = book.due(5.0)
    assert opened.stage == "opened" and opened.document["features"] == FEATURES
    assert opened.document["status"] == "firing" and opened.document["incident_id"] == INC
    assert opened.document["kinds"] == ["data_drift"] and opened.document["detectors"] == ["cusum"]
    assert len(opened.sources) == 8 and book.waiting() == {} and book.due(100) == []
    for i, f in enumerate(FEATURES[:-1]):
        assert add(book, rec(f, "resolved"), now=60 + i, offset=10 + i).messages == []
        assert book.is_open(("fraud", "v3", INC))
    [resolved] = add(book, rec(FEATURES[-1], "resolved"), now=70, offset=20).messages
    assert resolved.stage == "resolved" and resolved.document["status"] == "resolved"
    assert resolved.document["resolved_features"] == FEATURES and resolved.document["open_features"] == []
    assert not book.is_open(("fraud", "v3", INC))
    assert resolved.message_id == message_id(("fraud", "v3", INC), "resolved") != opened.message_id


def test_features_joining_close_together_are_one_update():
    book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    add(book, rec("a"), now=0)
    [opened] = book.due(5)
    add(book, rec("b"), now=30)
    add(book, rec("c"), now=31)
    assert book.due(34.9) == []
    [update] = book.due(35)
    assert update.stage == "update" and update.document["joined_features"] == ["b", "c"]
    assert update.document["features"] == ["a", "b", "c"] and update.document["update"] == 3
    add(book, rec("d"), now=60)
    [second] = book.due(65)
    assert second.document["joined_features"] == ["d"] and len({opened.message_id, update.message_id,
                                                                 second.message_id}) == 3


def test_the_resolution_waits_for_every_feature_and_flushes_a_waiting_opening_first():
    book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    add(book, rec("a"), now=0)
    add(book, rec("b"), now=0.1)
    assert add(book, rec("a", "resolved"), now=0.2).messages == []
    opened, resolved = add(book, rec("b", "resolved"), now=0.3).messages
    assert (opened.stage, resolved.stage) == ("opened", "resolved")
    assert opened.document["features"] == ["a", "b"] and opened.document["resolved_features"] == ["a"]
    assert book.due(10) == []


def test_a_resolved_of_a_feature_not_open_is_dropped_and_duplicates_are_recognised():
    book = IncidentBook(group_wait_seconds=0, cooldown_seconds=300)
    first = rec("a")
    add(book, first, now=0)
    add(book, rec("b"), now=0)
    book.due(0)
    assert add(book, dict(first), now=1).outcome == "duplicate"
    done = rec("a", "resolved")
    assert add(book, done, now=2).outcome == "grouped"
    assert add(book, rec("a", "resolved"), now=3).outcome == "resolved_dropped"  # already back
    assert add(book, rec("zz", "resolved"), now=3).outcome == "resolved_dropped"  # never seen firing here
    assert add(book, dict(done), now=4).outcome == "duplicate"


def test_a_firing_after_the_resolution_reopens_the_incident_with_new_message_ids():
    book = IncidentBook(group_wait_seconds=0, cooldown_seconds=300)
    add(book, rec("a"), now=0)
    [opened] = book.due(0)
    [resolved] = add(book, rec("a", "resolved"), now=1).messages
    add(book, rec("a"), now=2)
    [reopened] = book.due(2)
    [again] = add(book, rec("a", "resolved"), now=3).messages
    assert [m.stage for m in (opened, resolved, reopened, again)] == ["opened", "resolved", "reopened", "resolved"]
    assert len({m.message_id for m in (opened, resolved, reopened, again)}) == 4


def test_warm_up_rebuilds_membership_without_posting_and_the_restart_posts_only_what_is_new():
    records = [rec(f) for f in FEATURES[:5]]
    live = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    for i, r in enumerate(records):
        add(live, r, now=0, offset=i)
    [opened] = live.due(5)

    restarted = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    for i, r in enumerate(records):  # before the committed offset: posted before the restart
        assert add(restarted, r, now=100, offset=i, warm=True).messages == []
    assert restarted.due(1e9) == [] and restarted.waiting() == {} and restarted.is_open(("fraud", "v3", INC))
    assert add(restarted, dict(records[0]), now=101).outcome == "duplicate"
    add(restarted, rec("late"), now=101, offset=5)  # joins after the restart: an update, not a second opening
    [update] = restarted.due(106)
    assert update.stage == "update" and update.document["features"] == FEATURES[:5] + ["late"]
    for f in FEATURES[:5]:
        add(restarted, rec(f, "resolved"), now=200)
    [resolved] = add(restarted, rec("late", "resolved"), now=200).messages
    assert resolved.message_id == message_id(("fraud", "v3", INC), "resolved") and opened.stage == "opened"


def test_the_same_records_give_the_same_message_ids_however_they_were_grouped():
    """A restart re-posts a message with the id it had: receivers drop it."""
    records = [rec("a"), rec("b"), rec("c")]
    slow, fast = IncidentBook(group_wait_seconds=5, cooldown_seconds=0), IncidentBook(group_wait_seconds=5, cooldown_seconds=0)
    add(slow, records[0], now=0)
    slow_ids = [m.message_id for m in slow.due(5)]
    add(slow, records[1], now=10)
    add(slow, records[2], now=11)
    slow_ids += [m.message_id for m in slow.due(20)]
    add(fast, records[0], now=0)
    fast_ids = [m.message_id for m in fast.due(5)]
    add(fast, records[1], now=10)
    fast_ids += [m.message_id for m in fast.due(15)]
    add(fast, records[2], now=16)
    fast_ids += [m.message_id for m in fast.due(30)]
    assert slow_ids[0] == fast_ids[0] and slow_ids[-1] == fast_ids[-1]  # opened; update with 3 episodes


def test_reminders_post_at_most_once_per_record_and_not_within_the_cooldown():
    book = IncidentBook(group_wait_seconds=2, cooldown_seconds=300)
    add(book, rec("a"), now=0, at_ms=0)
    add(book, rec("b"), now=0, at_ms=0)
    book.due(2)
    assert add(book, rec("a", reminder=True), now=10, at_ms=60_000).outcome == "suppressed"  # within the cooldown
    reminder = rec("a", reminder=True)
    assert add(book, reminder, now=20, at_ms=400_000).outcome == "grouped"
    assert add(book, rec("b", reminder=True), now=21, at_ms=400_500).outcome == "grouped"  # the same message
    [message] = book.due(22)
    assert message.stage == "reminder" and message.document["status"] == "firing"
    assert message.message_id == message_id(("fraud", "v3", INC), f"reminder-{reminder['alert_id']}")
    assert add(book, dict(reminder), now=30, at_ms=800_000).outcome == "duplicate"
    assert book.due(1e9) == []
    # a reminder for an incident whose opening this process never read says it is still on
    other = IncidentBook(group_wait_seconds=0, cooldown_seconds=300)
    add(other, rec("x", reminder=True), now=0)
    [still] = other.due(0)
    assert still.stage == "reminder" and still.document["seen_opening"] is False


def test_a_resolved_of_an_incident_never_seen_is_posted():
    book = IncidentBook(group_wait_seconds=1, cooldown_seconds=300)
    add(book, rec("a", "resolved"), now=0)
    add(book, rec("b", "resolved"), now=0.5)
    [message] = book.due(1)
    assert message.stage == "resolved" and message.document["features"] == ["a", "b"]
    assert message.document["seen_opening"] is False


def test_incidents_of_a_revoked_partition_are_forgotten_with_what_waits():
    book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    add(book, rec("a"), now=0, offset=3)
    add(book, rec("b", incident="other"), now=0, offset=4)
    assert book.forget([("alerts", 1)]) == 0 and len(book) == 2
    assert book.forget([("alerts", 0)]) == 2 and book.waiting() == {} and book.due(10) == []


def test_incident_ids_of_any_shape():
    assert incident_of({"model": "m", "model_version": "v", "incident_id": ""}) is None
    assert incident_of({"model": "m", "incident_id": ["x"]}) is None
    book = IncidentBook(group_wait_seconds=0, cooldown_seconds=0)
    huge = "\u2028\x1b" + "x" * 1_000_000
    add(book, rec("a", incident=huge), now=0)
    [m] = book.due(0)
    assert len(m.incident[2]) < 300 and m.document["incident_id"] == m.incident[2]


def test_memory_is_bounded():
    book = IncidentBook(group_wait_seconds=0, cooldown_seconds=0, max_incidents=50, max_ids=100)
    for i in range(500):
        add(book, rec("a", incident=f"i{i}"), now=i)
        book.due(i)
        add(book, rec("a", "resolved", incident=f"i{i}"), now=i)
    assert len(book) <= 50


_steps = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["firing", "resolved", "reminder"]),
                            st.floats(0, 10)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(_steps, st.sampled_from([0.0, 2.0, 5.0]))
def test_invariants_on_any_sequence(steps, wait):
    """Openings and resolutions alternate, a resolution only when nothing is open; every waiting message is
    handed out by its due time; message ids never repeat."""
    book = IncidentBook(group_wait_seconds=wait, cooldown_seconds=0)
    now, posted = 0.0, []
    for i, (feature, kind, dt) in enumerate([("a", "firing", 0.0)] + steps):
        now += dt
        posted += book.due(now)
        r = rec(feature, "resolved" if kind == "resolved" else "firing", reminder=kind == "reminder")
        for m in add(book, r, now=now, offset=i).messages:
            posted.append(m)
            if m.stage == "resolved":
                assert not book.is_open(("fraud", "v3", INC))
        nd = book.next_due()
        assert nd is None or nd <= now + wait
    posted += book.due(now + wait)
    assert book.next_due() is None and book.waiting() == {}
    assert len({m.message_id for m in posted}) == len(posted)
    rounds = [m.stage for m in posted if m.stage in ("opened", "reopened", "resolved")]
    assert rounds[:1] == ["opened"] and all(s == "opened" for s in rounds[:1])
    for prev, nxt in zip(rounds, rounds[1:]):
        assert (prev == "resolved") != (nxt == "resolved"), rounds
