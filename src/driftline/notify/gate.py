"""Which alert records become messages: the per-key cooldown and duplicate rules.

Pure and clock-free: the caller passes each record's time (its
``detected_at``, so a backlog read after an outage is judged with the
spacing the alerts really had, not the speed at which they are read).

Rules, per alert key (``model/model_version/feature/detector``):

* A **firing** record is sent unless the key had a firing record *sent*
  less than ``cooldown_seconds`` before it (→ ``SUPPRESSED``).  Repeated
  firings inside the cooldown (the worker's reminders, a re-fire after a
  quick resolve, duplicates) are therefore dropped, and the next firing
  after the cooldown is sent.
* A **resolved** record is sent when the key is *open* (a firing was sent
  and not yet resolved), whatever the cooldown: a sent firing is always
  followed by its resolution.  It is also sent when the key is *unknown* to
  this gate (the firing came before this process started, or before a
  rebalance gave it the partition): losing a resolution is worse than an
  extra one.  It is dropped (→ ``RESOLVED_DROPPED``) when the key is known
  and not open: its firing was suppressed, or the key is already resolved.
* A record whose ``alert_id`` was seen recently is a duplicate
  (→ ``DUPLICATE``): the worker writes at-least-once.

The gate remembers closed keys for one cooldown and the last
``max_ids`` alert ids, so its memory is bounded by the keys firing at once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable
from enum import Enum

__all__ = ["Decision", "NotifyGate"]


class Decision(str, Enum):
    """What to do with one alert record."""

    SEND = "send"
    SUPPRESSED = "suppressed"               # a firing within the cooldown of the key's last sent firing
    RESOLVED_DROPPED = "resolved_dropped"   # a resolved whose firing was not sent, or a key already resolved
    DUPLICATE = "duplicate"                 # an alert_id already seen


@dataclass
class _KeyState:
    last_sent_ms: float | None = None  # time of the last firing sent
    open: bool = False                 # a firing was sent and its resolution not yet
    muted: bool = False                # a firing was suppressed while the key was closed; its resolution is dropped


class NotifyGate:
    """Cooldown and de-duplication per alert key.

    >>> gate = NotifyGate(cooldown_seconds=300)
    >>> [gate.decide("k", "firing", f"id{i}", t * 1000).value for i, t in enumerate([0, 60, 301])]
    ['send', 'suppressed', 'send']
    >>> gate.decide("k", "resolved", "r1", 400_000).value, gate.decide("k", "resolved", "r1", 400_000).value
    ('send', 'duplicate')
    """

    def __init__(self, cooldown_seconds: float, *, max_ids: int = 10_000) -> None:
        if cooldown_seconds < 0:
            raise ValueError(f"cooldown_seconds must be >= 0, got {cooldown_seconds}")
        self.cooldown_ms = cooldown_seconds * 1000.0
        self.max_ids = max_ids
        self._keys: dict[str, _KeyState] = {}
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._newest_ms = float("-inf")

    def decide(self, key: str, status: str, alert_id: str, at_ms: float) -> Decision:
        """Judge one record (``status`` firing or resolved) at time ``at_ms`` and remember the outcome."""
        if alert_id in self._ids:
            self._ids.move_to_end(alert_id)
            return Decision.DUPLICATE
        self._remember(alert_id)
        self._newest_ms = max(self._newest_ms, at_ms)
        state = self._keys.get(key)
        if status == "resolved":
            if state is None:
                self._keys[key] = _KeyState()
                return Decision.SEND
            was_open = state.open
            state.open = state.muted = False
            return Decision.SEND if was_open else Decision.RESOLVED_DROPPED
        if state is None:
            state = self._keys[key] = _KeyState()
        if state.last_sent_ms is not None and at_ms - state.last_sent_ms < self.cooldown_ms:
            state.muted = not state.open
            return Decision.SUPPRESSED
        state.last_sent_ms = at_ms
        state.open, state.muted = True, False
        self._prune()
        return Decision.SEND

    def forget(self, keys: Iterable[str]) -> None:
        """Drop what is known about ``keys`` (their partition went to another process, whose
        decisions this one does not see); alert ids are kept for de-duplication."""
        for key in keys:
            self._keys.pop(key, None)

    def is_open(self, key: str) -> bool:
        """Whether a firing of ``key`` was sent and its resolution not yet."""
        state = self._keys.get(key)
        return state is not None and state.open

    def __len__(self) -> int:
        """Alert keys remembered."""
        return len(self._keys)

    def _remember(self, alert_id: str) -> None:
        self._ids[alert_id] = None
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)

    def _prune(self) -> None:
        """Forget closed keys whose cooldown is over (for a firing, an unknown key decides the same).

        Runs once 1024 keys are remembered; open and muted keys are kept.
        """
        if len(self._keys) < 1024:
            return
        horizon = self._newest_ms - self.cooldown_ms
        for key in [k for k, s in self._keys.items()
                    if not (s.open or s.muted) and (s.last_sent_ms is None or s.last_sent_ms <= horizon)]:
            del self._keys[key]
