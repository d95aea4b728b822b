"""The cooldown and duplicate rules of driftline notify (pure, no clock)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.notify.gate import Decision, NotifyGate

S = Decision.SEND
MIN = 60_000.0  # ms


def test_repeated_firings_within_the_cooldown_are_suppressed_and_the_next_after_it_is_sent():
    gate = NotifyGate(cooldown_seconds=300)
    got = [gate.decide("k", "firing", f"f{i}", t * MIN) for i, t in enumerate([0, 1, 4.99, 5, 6, 10.5])]
    assert got == [S, Decision.SUPPRESSED, Decision.SUPPRESSED, S, Decision.SUPPRESSED, S]


def test_keys_have_their_own_cooldown():
    gate = NotifyGate(cooldown_seconds=300)
    assert gate.decide("a", "firing", "a1", 0) is S
    assert gate.decide("b", "firing", "b1", 1000) is S
    assert gate.decide("a", "firing", "a2", 2000) is Decision.SUPPRESSED


def test_a_resolved_always_follows_a_sent_firing_even_within_the_cooldown():
    gate = NotifyGate(cooldown_seconds=300)
    assert gate.decide("k", "firing", "f1", 0) is S
    assert gate.decide("k", "firing", "f2", 10_000) is Decision.SUPPRESSED  # a reminder: key stays open
    assert gate.is_open("k")
    assert gate.decide("k", "resolved", "r2", 20_000) is S  # resolves f2, whose key had f1 sent
    assert not gate.is_open("k")


def test_a_resolved_whose_firing_was_suppressed_is_dropped():
    gate = NotifyGate(cooldown_seconds=300)
    assert gate.decide("k", "firing", "f1", 0) is S
    assert gate.decide("k", "resolved", "r1", 1 * MIN) is S
    assert gate.decide("k", "firing", "f2", 2 * MIN) is Decision.SUPPRESSED  # re-fire within the cooldown
    assert gate.decide("k", "resolved", "r2", 3 * MIN) is Decision.RESOLVED_DROPPED
    assert gate.decide("k", "firing", "f3", 6 * MIN) is S


def test_a_resolved_of_an_unknown_key_is_sent():
    gate = NotifyGate(cooldown_seconds=300)
    assert gate.decide("k", "resolved", "r1", 0) is S  # its firing came before this process started
    assert gate.decide("k", "resolved", "r2", 1000) is Decision.RESOLVED_DROPPED  # already resolved


def test_duplicates_are_recognised_by_alert_id_and_the_memory_of_ids_is_bounded():
    gate = NotifyGate(cooldown_seconds=0, max_ids=2)
    assert gate.decide("k", "firing", "f1", 0) is S
    assert gate.decide("k", "firing", "f1", 10 * MIN) is Decision.DUPLICATE  # beyond any cooldown: still a duplicate
    assert gate.decide("k", "resolved", "r1", 11 * MIN) is S
    assert gate.decide("k", "resolved", "r1", 11 * MIN) is Decision.DUPLICATE
    gate.decide("x", "firing", "x1", 12 * MIN)
    gate.decide("y", "firing", "y1", 12 * MIN)
    assert gate.decide("k", "firing", "f1", 13 * MIN) is S  # forgotten after max_ids newer ids


def test_cooldown_zero_sends_every_firing():
    gate = NotifyGate(cooldown_seconds=0)
    assert all(gate.decide("k", "firing", f"f{i}", i) is S for i in range(5))


def test_memory_is_bounded_by_the_keys_still_firing():
    gate = NotifyGate(cooldown_seconds=1, max_ids=100)
    for i in range(5000):
        gate.decide(f"k{i}", "firing", f"f{i}", i * 10.0)
        gate.decide(f"k{i}", "resolved", f"r{i}", i * 10.0 + 5)
    gate.decide("open", "firing", "o1", 60_000.0)
    assert len(gate) < 1100
    assert gate.is_open("open")


_events = st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["firing", "resolved"]),
                             st.integers(0, 400_000)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(_events, st.sampled_from([0, 60, 300]))
def test_invariants_on_any_sequence(events, cooldown):
    """Sent firings of a key are a cooldown apart; after a sent firing, the key's next resolved is sent;
    a sent resolved follows a sent firing (or is the key's first message)."""
    gate = NotifyGate(cooldown_seconds=cooldown)
    t = 0
    sent: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    awaiting: dict[str, bool] = {"a": False, "b": False}
    for i, (key, status, dt) in enumerate(events):
        t += dt
        decision = gate.decide(key, status, f"id{i}", t)
        if status == "resolved" and awaiting[key]:
            assert decision is S, "the resolution of a sent firing was not sent"
        if decision is S:
            if status == "firing":
                firings = [at for s, at in sent[key] if s == "firing"]
                assert not firings or t - firings[-1] >= cooldown * 1000
                awaiting[key] = True
            else:
                assert not sent[key] or sent[key][-1][0] == "firing", "a resolved without a sent firing"
                awaiting[key] = False
            sent[key].append((status, t))


def test_forgotten_keys_are_unknown_again_but_their_ids_stay_duplicates():
    gate = NotifyGate(cooldown_seconds=300)
    assert gate.decide("k", "firing", "f1", 0) is S
    gate.forget(["k"])
    assert not gate.is_open("k")
    assert gate.decide("k", "firing", "f1", 1000) is Decision.DUPLICATE
    assert gate.decide("k", "firing", "f2", 2000) is S  # no cooldown remembered
