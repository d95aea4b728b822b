"""Incidents: findings and health in, one ``firing`` and one ``resolved`` alert record per episode out.

An *incident* is one episode of one problem of one feature: per incident key
(``model/model_version/feature/kind``, plus the check for data and output
quality, see :func:`driftline.detection.keys.incident_key`) at most one is open.

* It **opens** with one ``firing`` record on the first finding.  Further
  findings while it is open publish nothing: they update it (the detectors
  that agree, the finding count, the latest statistic), which window
  summaries, ``/metrics`` and ``driftline status`` show.
* A **drift** incident (kinds ``data_drift`` and ``prediction_drift``)
  **resolves** with one ``resolved`` record only once its feature has matched
  the reference again for ``resolve_after`` of event time: the monitors report
  each feature's *health* (:meth:`AlertBook.health`: the sequential statistics
  under their thresholds and the last windowed test passed), any finding or
  "differs" report restarts the span, and the ``resolved`` record's window is
  the data that showed the feature back.  A drift that persists stays open
  (with an optional reminder every ``reminder`` of event time).
* Any other incident (data quality, output rules, concept drift, version
  divergence) resolves after ``resolve_after`` without a finding: its checks
  find per occurrence (per window for rates), so quiet is what "back" means.
* A new profile for a model version closes its open drift incidents
  (:meth:`AlertBook.close_model`, resolution ``reference_changed``).

Features of one model version whose incidents open within ``group`` of event
time of each other share an ``incident_id`` (a model incident): an upstream
break that moves eight features is one incident.

All spans are measured in *event time*, so a replay of the same records
produces the same alerts as the live stream.  ``alert_id`` is derived from
the key, the status and the cooldown span of event time the incident opened
in: re-processing the same records after a crash yields the same id, and so
do two workers that find the same drift of a *hot* model (one model's traffic
spread over partitions owned by different workers) within the same span.
Workers also tell each other about firings through the alerts topic
(:meth:`AlertBook.note_remote`): a key another worker fired is held here for
a cooldown, so the hot model's incident is not opened twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote

from driftline.detection.findings import Finding, Kind, WindowSpan
from driftline.detection.timefmt import rfc3339

__all__ = ["AlertBook", "alert_id", "FIRING", "RESOLVED", "ALERT_SCHEMA_VERSION", "HEALTH_KINDS",
           "BACK_TO_REFERENCE", "QUIET", "REFERENCE_CHANGED"]

FIRING = "firing"
RESOLVED = "resolved"
ALERT_SCHEMA_VERSION = 1
#: Kinds whose incidents resolve by the monitors' health reports, not by quiet.
HEALTH_KINDS = frozenset((Kind.DATA_DRIFT, Kind.PREDICTION_DRIFT))
#: ``resolution`` of a ``resolved`` record
BACK_TO_REFERENCE = "back_to_reference"
QUIET = "quiet"
REFERENCE_CHANGED = "reference_changed"
#: Keys other workers fired that one book holds at most (the oldest go first): the alerts topic is an input
#: anyone with write access can fill, and an idle worker's clocks do not move to expire them.
MAX_REMOTE_KEYS = 100_000
#: Detectors listed per incident at most (a feature has a handful; the list is bounded anyway).
MAX_DETECTORS = 16


def alert_id(finding: Finding, status: str, cooldown_ms: float = 0.0, salt: str = "") -> str:
    """Deterministic id from key, status and the cooldown span of the finding's event time
    (or its window, when it has no event time or there is no cooldown)."""
    if finding.event_time_ms is not None and cooldown_ms > 0:
        raw = f"{finding.key}|span|{int(finding.event_time_ms // cooldown_ms)}|{status}"
    else:
        w = finding.window
        raw = f"{finding.key}|{w.topic}|{w.partition}|{w.first_offset}|{w.last_offset}|{status}"
    if salt:
        raw += f"|{salt}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _incident_id(finding: Finding, firing_id: str) -> str:
    raw = f"incident|{finding.model}|{finding.model_version}|{firing_id}"
    return hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(slots=True)
class _KeyState:
    #: the finding that opened the open incident; None once resolved (or for a key held for another worker)
    firing: Finding | None
    #: event time the incident opened (or another worker fired the key)
    fired_at_ms: float
    #: event time of the latest finding
    last_seen_ms: float
    #: findings the incident absorbed (published nothing)
    suppressed: int = 0
    #: (topic, partition) whose finding opened this state: its checkpoint carries the key
    origin: tuple[str, int] | None = None
    #: the model of the key: its event-time clock decides when the key resolves
    model: str | None = None
    #: the model incident this feature's incident belongs to
    incident_id: str | None = None
    #: the firing record's alert_id (``salt`` makes it unique when one span holds two episodes of a key)
    firing_id: str | None = None
    salt: str = ""
    #: every detector that found the problem during the episode, the opener first
    detectors: list[str] = field(default_factory=list)
    #: the latest finding (its statistic, threshold, detector)
    latest: Finding | None = None
    #: resolves by health reports (drift kinds), else by quiet
    by_health: bool = False
    #: event time since which the feature has matched its reference (None: it differs), and the data showing it
    clear_since_ms: float | None = None
    clear_window: WindowSpan | None = None
    #: event time of the last firing or reminder record
    reminded_ms: float = 0.0
    reminders: int = 0


class AlertBook:
    """The incidents of every key seen by one worker."""

    def __init__(self, *, cooldown_seconds: float, resolve_after_seconds: float, group_seconds: float = 300.0,
                 reminder_seconds: float = 0.0) -> None:
        self.cooldown_ms = cooldown_seconds * 1000.0
        self.resolve_after_ms = resolve_after_seconds * 1000.0
        self.group_ms = group_seconds * 1000.0
        self.reminder_ms = reminder_seconds * 1000.0
        self._keys: dict[str, _KeyState] = {}
        self.suppressed_total = 0
        #: keys held only because another worker fired them, oldest first
        self._remote: dict[str, None] = {}
        #: the clocks of the last tick (model -> ms) and the newest of them
        self._seen: Mapping[str, float] = {}
        self._newest: float | None = None
        #: (model, model_version) -> the model incident new feature incidents may join: [id, latest opening ms]
        self._joinable: dict[tuple[str, str], list] = {}
        #: model incident -> its open feature incidents
        self._open_ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def firing(self) -> list[Finding]:
        """Findings that opened the incidents open now."""
        return [s.firing for s in self._keys.values() if s.firing is not None]

    def open_incident(self, key: str) -> dict[str, object] | None:
        """What window summaries show of the open incident of ``key`` (None if none is open)."""
        state = self._keys.get(key)
        if state is None or state.firing is None:
            return None
        latest = state.latest or state.firing
        return {"incident_id": state.incident_id, "alert_id": state.firing_id, "kind": state.firing.kind,
                "opened_event_time": rfc3339(state.fired_at_ms), "detectors": list(state.detectors),
                "findings": state.suppressed + 1, "detector": latest.detector, "statistic": latest.statistic,
                "matching_since": rfc3339(state.clear_since_ms)}

    def incidents(self) -> dict[tuple[str, str, str], int]:
        """Open feature incidents per model incident: (model, model_version, incident_id) -> count."""
        out: dict[tuple[str, str, str], int] = {}
        for state in self._keys.values():
            f = state.firing
            if f is not None and state.incident_id is not None:
                k = (f.model, f.model_version, state.incident_id)
                out[k] = out.get(k, 0) + 1
        return out

    # ----------------------------------------------------------------- intake
    def observe(self, finding: Finding, now_ms: float) -> list[dict[str, object]]:
        """Register a finding; return what it causes: a firing record if it opens an incident (perhaps
        after the resolution of the key's previous, quiet one), else nothing."""
        out: list[dict[str, object]] = []
        key = finding.key
        state = self._keys.get(key)
        if state is not None and state.firing is not None:
            if self._due(state, now_ms):  # it was over before this finding, however the stream was batched
                out.append(self._resolve(state, BACK_TO_REFERENCE if state.by_health else QUIET))
            else:
                self._absorb(state, finding, now_ms)
                return out
        elif state is not None and state.origin is None and now_ms - state.fired_at_ms < self.cooldown_ms:
            # another worker opened this key's incident (a hot model): it is reported there
            state.last_seen_ms = max(state.last_seen_ms, now_ms)
            state.suppressed += 1
            self.suppressed_total += 1
            return out
        salt = ""
        firing_id = alert_id(finding, FIRING, self.cooldown_ms)
        if state is not None and state.firing_id == firing_id:
            # a second episode in the span of the previous one: its ids must differ
            salt = f"{finding.event_time_ms}|{finding.window.first_offset}|{finding.window.last_offset}"
            firing_id = alert_id(finding, FIRING, self.cooldown_ms, salt)
        new = _KeyState(finding, now_ms, now_ms, origin=(finding.window.topic, finding.window.partition),
                        model=finding.model, firing_id=firing_id, salt=salt, detectors=[finding.detector],
                        latest=finding, by_health=finding.kind in HEALTH_KINDS, reminded_ms=now_ms)
        new.incident_id = self._join(finding, firing_id, now_ms)
        self._open_ids[new.incident_id] = self._open_ids.get(new.incident_id, 0) + 1
        self._keys[key] = new
        self._remote.pop(key, None)
        out.append(self._render(new, FIRING))
        return out

    def _absorb(self, state: _KeyState, finding: Finding, now_ms: float) -> None:
        state.last_seen_ms = max(state.last_seen_ms, now_ms)
        state.suppressed += 1
        self.suppressed_total += 1
        state.latest = finding
        if finding.detector not in state.detectors and len(state.detectors) < MAX_DETECTORS:
            state.detectors.append(finding.detector)
        state.clear_since_ms = None  # it still differs
        state.clear_window = None

    def _join(self, finding: Finding, firing_id: str, now_ms: float) -> str:
        """The model incident of a feature incident opening at ``now_ms``."""
        mv = (finding.model, finding.model_version)
        joinable = self._joinable.get(mv)
        if joinable is not None and abs(now_ms - joinable[1]) <= self.group_ms and self._is_open(joinable[0]):
            joinable[1] = max(joinable[1], now_ms)
            return joinable[0]
        incident = _incident_id(finding, firing_id)
        self._joinable[mv] = [incident, now_ms]
        return incident

    def _is_open(self, incident: str) -> bool:
        return self._open_ids.get(incident, 0) > 0

    def _recount(self) -> None:
        """Open feature incidents per model incident, from the keys (after a merge or forget)."""
        counts: dict[str, int] = {}
        for state in self._keys.values():
            if state.firing is not None and state.incident_id is not None:
                counts[state.incident_id] = counts.get(state.incident_id, 0) + 1
        self._open_ids = counts

    def _due(self, state: _KeyState, now_ms: float) -> bool:
        """Whether the open incident of ``state`` is over at ``now_ms``: back for the span (drift), quiet (checks)."""
        if state.by_health:
            return state.clear_since_ms is not None and now_ms - state.clear_since_ms >= self.resolve_after_ms
        return now_ms - state.last_seen_ms >= self.resolve_after_ms

    def health(self, key: str, matches: bool, now_ms: float | None, window: WindowSpan) -> list[dict[str, object]]:
        """A monitor's report on the feature of ``key``: it matches its reference now, or it differs.

        Only open drift incidents take note: "differs" restarts the span it must match for; "matches"
        starts it (if not running) and extends the data that shows it back.  A report from after the
        span was complete resolves the incident first (returned), as a tick then would have.
        """
        state = self._keys.get(key)
        if state is None or state.firing is None or not state.by_health:
            return []
        if now_ms is not None and self._due(state, now_ms):
            return [self._resolve(state, BACK_TO_REFERENCE)]
        if not matches:
            state.clear_since_ms = None
            state.clear_window = None
            return []
        at = now_ms if now_ms is not None else state.last_seen_ms
        if state.clear_since_ms is None:
            state.clear_since_ms = max(at, state.last_seen_ms)
            state.clear_window = window
        elif state.clear_window is not None and state.clear_window.topic == window.topic \
                and state.clear_window.partition == window.partition:
            first = state.clear_window
            state.clear_window = WindowSpan(first.topic, first.partition, min(first.first_offset, window.first_offset),
                                            max(first.last_offset, window.last_offset), first.first_event_time_ms,
                                            window.last_event_time_ms)
        return []

    def close_model(self, model: str, model_version: str, now_ms: float | None) -> list[dict[str, object]]:
        """A new reference for ``model_version``: resolve its open drift incidents (``reference_changed``)."""
        out = []
        for state in self._keys.values():
            f = state.firing
            if f is not None and state.by_health and f.model == model and f.model_version == model_version:
                out.append(self._resolve(state, REFERENCE_CHANGED, now_ms))
        return out

    def note_remote(self, key: str, fired_at_ms: float) -> bool:
        """Another worker fired ``key`` at event time ``fired_at_ms``: hold its findings here for a
        cooldown (a hot model's partitions on several workers).  False if nothing changed.

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
                f = state.firing
                if f is not None and state.incident_id is not None:
                    mv = (f.model, f.model_version)
                    joinable = self._joinable.get(mv)
                    if joinable is None or state.fired_at_ms > joinable[1]:
                        self._joinable[mv] = [state.incident_id, state.fired_at_ms]
        self._recount()

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the keys opened by these partitions (they moved to another worker with their checkpoint)."""
        for key in [k for k, state in self._keys.items() if state.origin in partitions]:
            del self._keys[key]
        self._recount()

    # ---------------------------------------------------------------- records
    def _resolve(self, state: _KeyState, resolution: str, now_ms: float | None = None) -> dict[str, object]:
        assert state.firing is not None
        alert = self._render(state, RESOLVED)
        alert["firing_alert_id"] = state.firing_id
        alert["resolution"] = resolution
        alert["quiet_seconds"] = self.resolve_after_ms / 1000.0
        key = state.firing.key
        if resolution == BACK_TO_REFERENCE:
            assert state.clear_since_ms is not None
            resolved_at = state.clear_since_ms + self.resolve_after_ms
            if state.clear_window is not None:
                alert["window"] = state.clear_window.to_dict()
            alert["summary"] = (f"Resolved: {key} has matched its reference again for "
                                f"{self.resolve_after_ms / 1000.0:.0f} s of event time (since "
                                f"{rfc3339(state.clear_since_ms)}).")
        elif resolution == REFERENCE_CHANGED:
            resolved_at = now_ms if now_ms is not None else state.last_seen_ms
            alert["summary"] = (f"Resolved: a new reference for {state.firing.model} {state.firing.model_version} "
                                f"is in force; {key} is compared with it from now on.")
        else:
            resolved_at = state.last_seen_ms + self.resolve_after_ms
            alert["summary"] = (f"Resolved: no further findings for {key} "
                                f"in {self.resolve_after_ms / 1000.0:.0f} s of event time.")
        alert["resolved_event_time"] = rfc3339(int(resolved_at))
        if state.incident_id is not None:
            left = self._open_ids.get(state.incident_id, 0) - 1
            if left > 0:
                self._open_ids[state.incident_id] = left
            else:
                self._open_ids.pop(state.incident_id, None)
        state.firing = None
        state.latest = None
        state.clear_since_ms = None
        state.clear_window = None
        return alert

    def _render(self, state: _KeyState, status: str, *, reminder: bool = False) -> dict[str, object]:
        assert state.firing is not None
        record = render(state.firing, status, self.cooldown_ms, state.salt)
        if status == FIRING and reminder:
            record["alert_id"] = alert_id(state.firing, FIRING, self.cooldown_ms,
                                          f"{state.salt}|reminder|{state.reminders}")
            record["reminder"] = True
        record["incident_id"] = state.incident_id
        record["detectors"] = list(state.detectors)
        record["opened_event_time"] = rfc3339(state.fired_at_ms)
        latest = state.latest
        if status != FIRING or reminder:
            if latest is not None:
                record["statistic"] = latest.statistic
                record["threshold"] = latest.threshold
                record["latest_detector"] = latest.detector
            record["findings"] = state.suppressed + 1
        return record

    def tick(self, now_ms: float | Mapping[str, float]) -> list[dict[str, object]]:
        """Resolve incidents that are back (drift) or quiet (checks); send due reminders; forget
        closed keys past their cooldown.

        ``now_ms`` is one event time for every key, or each model's own
        (model → ms): then a key is judged by the clock of its model only, so
        one model's records (however far ahead their event times) never
        resolve another model's incidents.  Keys of a model without a clock here
        (firings other workers reported) are forgotten by the newest clock of
        all once past their cooldown; they never resolve here anyway.
        """
        out: list[dict[str, object]] = []
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
            if state.firing is not None and self._due(state, now):
                out.append(self._resolve(state, BACK_TO_REFERENCE if state.by_health else QUIET))
            if state.firing is not None and self.reminder_ms > 0 and now - state.reminded_ms >= self.reminder_ms:
                state.reminders += 1
                state.reminded_ms = now
                out.append(self._render(state, FIRING, reminder=True))
            if state.firing is None and now - state.fired_at_ms >= max(self.cooldown_ms, self.resolve_after_ms):
                del self._keys[key]
                self._remote.pop(key, None)
        for mv in [mv for mv, (incident, _) in self._joinable.items() if not self._is_open(incident)]:
            del self._joinable[mv]
        return out


def _key_model(key: str) -> str:
    """The model of an alert key (its first component, percent-decoded)."""
    return unquote(key.split("/", 1)[0], errors="surrogateescape")


def render(finding: Finding, status: str, cooldown_ms: float = 0.0, salt: str = "") -> dict[str, object]:
    """The alert record published on the alerts topic (the incident's fields are added by the book)."""
    return {
        "schema_version": ALERT_SCHEMA_VERSION,
        "alert_id": alert_id(finding, status, cooldown_ms, salt),
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
