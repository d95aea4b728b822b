"""Alert lifecycle: findings in, ``firing`` / ``resolved`` alert records out.

A key (``model/model_version/feature/detector``, see :mod:`driftline.detection.keys`) fires at most once per
``cooldown``; while it keeps finding things inside the cooldown the findings are
suppressed (counted, not published).  Once a firing key has been quiet for
``resolve_after`` it is resolved.  Both spans are measured in *event time*, so a
replay of the same records produces the same alerts as the live stream.

``alert_id`` is derived from the key, the status and the cooldown span of
event time the firing fell in (``event_time // cooldown``): re-processing the
same records after a crash yields the same id, and so do two workers that
find the same drift of a *hot* model (one model's traffic spread over
partitions owned by different workers) within the same span, which is how a
consumer recognises a duplicate.  Workers also tell each other about
firings through the alerts topic (:meth:`AlertBook.note_remote`): a key
another worker fired is in cooldown here too.  Without event times (or with
no cooldown) the id falls back to the window (topic, partition, offsets).  Nothing in an alert but
``detected_at`` depends on how the stream was cut into batches: a key that
has been quiet long enough is resolved before its next finding is judged,
whether or not a :meth:`AlertBook.tick` ran in between.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote
from datetime import datetime, timezone

from driftline.detection.findings import Finding
from driftline.detection.timefmt import rfc3339

__all__ = ["AlertBook", "alert_id", "FIRING", "RESOLVED", "ALERT_SCHEMA_VERSION"]

FIRING = "firing"
RESOLVED = "resolved"
ALERT_SCHEMA_VERSION = 1
#: Keys other workers fired that one book holds at most (the oldest go first): the alerts topic is an input
#: anyone with write access can fill, and an idle worker's clocks do not move to expire them.
MAX_REMOTE_KEYS = 100_000


def alert_id(finding: Finding, status: str, cooldown_ms: float = 0.0) -> str:
    """Deterministic id from key, status and the cooldown span of the finding's event time
    (or its window, when it has no event time or there is no cooldown)."""
    if finding.event_time_ms is not None and cooldown_ms > 0:
        raw = f"{finding.key}|span|{int(finding.event_time_ms // cooldown_ms)}|{status}"
    else:
        w = finding.window
        raw = f"{finding.key}|{w.topic}|{w.partition}|{w.first_offset}|{w.last_offset}|{status}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


@dataclass(slots=True)
class _KeyState:
    firing: Finding | None
    fired_at_ms: float
    last_seen_ms: float
    suppressed: int = 0
    #: (topic, partition) whose finding opened this state: its checkpoint carries the key
    origin: tuple[str, int] | None = None
    #: the model of the key: its event-time clock decides when the key resolves
    model: str | None = None


class AlertBook:
    """The firing / resolved state of every alert key seen by one worker."""

    def __init__(self, *, cooldown_seconds: float, resolve_after_seconds: float) -> None:
        self.cooldown_ms = cooldown_seconds * 1000.0
        self.resolve_after_ms = resolve_after_seconds * 1000.0
        self._keys: dict[str, _KeyState] = {}
        self.suppressed_total = 0
        #: keys held only because another worker fired them, oldest first
        self._remote: dict[str, None] = {}
        #: the clocks of the last tick (model -> ms) and the newest of them
        self._seen: Mapping[str, float] = {}
        self._newest: float | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def firing(self) -> list[Finding]:
        """Findings behind the keys currently firing."""
        return [s.firing for s in self._keys.values() if s.firing is not None]

    def observe(self, finding: Finding, now_ms: float) -> list[dict[str, object]]:
        """Register a finding; return what it causes: a firing alert (perhaps
        after the resolution of the key's previous one), or nothing if the key
        is in cooldown."""
        out: list[dict[str, object]] = []
        state = self._keys.get(finding.key)
        if state is not None and state.firing is not None and now_ms - state.last_seen_ms >= self.resolve_after_ms:
            out.append(self._resolve(state))
        if state is not None and now_ms - state.fired_at_ms < self.cooldown_ms:
            state.last_seen_ms = max(state.last_seen_ms, now_ms)
            state.suppressed += 1
            self.suppressed_total += 1
            return out
        self._keys[finding.key] = _KeyState(finding, now_ms, now_ms, origin=(finding.window.topic, finding.window.partition),
                                            model=finding.model)
        self._remote.pop(finding.key, None)
        out.append(render(finding, FIRING, self.cooldown_ms))
        return out

    def note_remote(self, key: str, fired_at_ms: float) -> bool:
        """Another worker fired ``key`` at event time ``fired_at_ms``: hold its findings here in
        cooldown too (a hot model's partitions on several workers).  False if nothing changed.

        The alerts topic is an input like any other: a firing dated further ahead than one cooldown
        of this book's clock for the key's model (or its newest clock) counts as fired then, so a
        record dated year 9999 holds a key for two cooldowns at most, not forever; and at most
        :data:`MAX_REMOTE_KEYS` keys are held for other workers.
        """
        if not math.isfinite(fired_at_ms):
            return False
        model = _key_model(key)
        now = self._seen.get(model, self._newest)
        if now is not None:
            fired_at_ms = min(fired_at_ms, now + self.cooldown_ms)
        state = self._keys.get(key)
        if state is not None and (state.firing is not None or state.fired_at_ms >= fired_at_ms):
            return False
        self._keys[key] = _KeyState(None, fired_at_ms, fired_at_ms, origin=None, model=model)
        self._remote.pop(key, None)
        self._remote[key] = None
        while len(self._remote) > MAX_REMOTE_KEYS:
            oldest = next(iter(self._remote))
            del self._remote[oldest]
            held = self._keys.get(oldest)
            if held is not None and held.origin is None and held.firing is None:
                del self._keys[oldest]
        return True

    # ------------------------------------------------------------ checkpoints
    def export(self, topic: str, partition: int) -> list[tuple[str, _KeyState]]:
        """The keys opened by findings of ``(topic, partition)``, for its checkpoint."""
        origin = (topic, partition)
        return [(key, state) for key, state in self._keys.items() if state.origin == origin]

    def merge(self, entries: list[tuple[str, _KeyState]]) -> None:
        """Take keys from a checkpoint; a key known here keeps the state that fired last."""
        for key, state in entries:
            mine = self._keys.get(key)
            if mine is None or state.fired_at_ms > mine.fired_at_ms:
                self._keys[key] = state
                self._remote.pop(key, None)

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the keys opened by these partitions (they moved to another worker with their checkpoint)."""
        for key in [k for k, state in self._keys.items() if state.origin in partitions]:
            del self._keys[key]

    def _resolve(self, state: _KeyState) -> dict[str, object]:
        assert state.firing is not None
        alert = render(state.firing, RESOLVED, self.cooldown_ms)
        alert["firing_alert_id"] = alert_id(state.firing, FIRING, self.cooldown_ms)
        alert["quiet_seconds"] = self.resolve_after_ms / 1000.0
        alert["resolved_event_time"] = rfc3339(int(state.last_seen_ms + self.resolve_after_ms))
        alert["summary"] = f"Resolved: no further findings for {state.firing.key} " \
                           f"in {self.resolve_after_ms / 1000.0:.0f} s of event time."
        state.firing = None
        return alert

    def tick(self, now_ms: float | Mapping[str, float]) -> list[dict[str, object]]:
        """Resolve keys quiet for ``resolve_after``; forget keys past cooldown.

        ``now_ms`` is one event time for every key, or each model's own
        (model → ms): then a key is judged by the clock of its model only, so
        one model's records (however far ahead their event times) never
        resolve another model's alerts.  Keys of a model without a clock here
        (firings other workers reported) are forgotten by the newest clock of
        all once past their cooldown; they never resolve here anyway.
        """
        resolved: list[dict[str, object]] = []
        if isinstance(now_ms, Mapping):
            clocks, newest = now_ms, max(now_ms.values(), default=None)
            self._seen, self._newest = dict(now_ms), newest
        else:
            clocks, newest = None, now_ms
            self._seen, self._newest = {}, now_ms
        for key in list(self._keys):
            state = self._keys[key]
            now = newest if clocks is None else clocks.get(state.model)  # type: ignore[arg-type]
            if state.origin is None and state.firing is None:  # held for another worker (see note_remote)
                ahead = (now if now is not None else newest)
                if ahead is not None and state.fired_at_ms > ahead + self.cooldown_ms:
                    state.fired_at_ms = state.last_seen_ms = ahead + self.cooldown_ms
            if now is None:
                if state.firing is None and newest is not None and newest - state.fired_at_ms >= self.cooldown_ms:
                    del self._keys[key]
                    self._remote.pop(key, None)
                continue
            if state.firing is not None and now - state.last_seen_ms >= self.resolve_after_ms:
                resolved.append(self._resolve(state))
            if state.firing is None and now - state.fired_at_ms >= self.cooldown_ms:
                del self._keys[key]
                self._remote.pop(key, None)
        return resolved


def _key_model(key: str) -> str:
    """The model of an alert key (its first component, percent-decoded)."""
    return unquote(key.split("/", 1)[0], errors="surrogateescape")


def render(finding: Finding, status: str, cooldown_ms: float = 0.0) -> dict[str, object]:
    """The alert record published on the alerts topic."""
    return {
        "schema_version": ALERT_SCHEMA_VERSION,
        "alert_id": alert_id(finding, status, cooldown_ms),
        "status": status,
        "model": finding.model,
        "model_version": finding.model_version,
        "feature": finding.feature,
        "source": finding.source,
        "kind": finding.kind,
        "detector": finding.detector,
        "severity": finding.severity,
        "statistic": finding.statistic,
        "threshold": finding.threshold,
        "summary": finding.summary,
        "reference": finding.reference,
        "window": finding.window.to_dict(),
        "event_time": rfc3339(finding.event_time_ms),
        "detected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "details": finding.details,
    }
