"""Which messages an incident's alert records become: grouping, joins, resolution, reminders.

Pure and clock-free like :mod:`.gate`: the caller passes a monotonic ``now``
(seconds, for the grouping delay) and each record's time ``at_ms`` (its
``detected_at``, for the reminder cooldown).

The worker gives every alert record an ``incident_id``: the feature episodes
of one model version that opened close together (one upstream break) share
it, and all records of a model version are on one alerts partition, so one
process sees an incident whole.  Per incident (``model``, ``model_version``,
``incident_id``) the book posts:

* **opened**: ``group_wait`` seconds after the incident's first ``firing``
  record, once, listing every feature seen by then (the other features of a
  break arrive within seconds as records of their own);
* **update**: when features join an incident already posted, one message
  ``group_wait`` seconds after the first of them, listing them all;
* **resolved**: at once, when every feature of the incident has resolved (a
  message still waiting is posted first);
* **reopened**: a feature fires again in an incident already resolved;
* **reminder**: a ``firing`` record with ``"reminder": true`` (the worker's
  optional reminders), grouped like joins, at most one message per reminder
  record and none within ``cooldown_seconds`` of the incident's last message.

Message ids are derived from the incident and the stage (``opened``,
``update-N`` with N the feature episodes of the incident after the update,
``resolved``, ``reopened-R``, ``resolved-R`` after a reopening,
``reminder-<alert_id>``), so a message posted again after a restart has the
id it had: receivers de-duplicate on it.  On assignment the records before
the committed offset are replayed with ``warm=True``: the state moves as if
their messages had been posted, and nothing is returned to post.

A ``resolved`` record of an incident this book has not seen (its opening is
older than the history re-read) is posted as a resolution of the features
it names: losing a resolution is worse than an extra one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

__all__ = ["IncidentBook", "Message", "Added", "incident_of", "STAGES", "OUTCOMES"]

#: Stages of a message (the ``stage`` field of the generic body and a label of the metrics).
STAGES = ("opened", "update", "reopened", "reminder", "resolved")
#: What became of one incident record: part of an incident's messages, a reminder within the
#: cooldown, a resolution of a feature not open, an alert_id seen before.
OUTCOMES = ("grouped", "suppressed", "resolved_dropped", "duplicate")

#: Longest incident_id kept as it is in an identity (a forged record may hold a megabyte).
_ID_CHARS = 256

Source = tuple[str, int, int]  # topic, partition, offset


def incident_of(alert: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(model, model_version, incident_id)`` of an alert record, ``None`` for records of older workers
    (no ``incident_id``, or not a non-empty string).

    >>> incident_of({"model": "m", "model_version": "v", "incident_id": "ab12"})
    ('m', 'v', 'ab12')
    >>> incident_of({"model": "m", "incident_id": 7}) is None
    True
    """
    ident = alert.get("incident_id")
    if not isinstance(ident, str) or not ident:
        return None
    return str(alert.get("model", "")), str(alert.get("model_version", "")), ident


def message_id(incident: tuple[str, str, str], label: str) -> str:
    """32 hex digits naming one message of an incident.

    >>> message_id(("m", "v", "ab"), "opened") == message_id(("m", "v", "ab"), "opened") != message_id(("m", "v", "ab"), "resolved")
    True
    """
    text = "\x00".join((*incident, label))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass
class _Member:
    """One alert key of an incident (a feature, kind and check) and its latest record."""

    key: str
    record: dict[str, Any]
    open: bool


@dataclass
class _Pending:
    stage: str
    due: float
    sources: list[Source] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)  # member keys new in this message
    reminder_id: str | None = None
    newest_ms: float | None = None


@dataclass
class _Incident:
    ident: tuple[str, str, str]
    members: dict[str, _Member] = field(default_factory=dict)
    partitions: set[tuple[str, int]] = field(default_factory=set)
    episodes: int = 0          # firing episodes of its features (a feature that fires again counts again)
    round: int = 0             # reopenings
    opened: bool = False       # the opening of the current round was posted (or is older than what was read)
    closed: bool = False       # its resolution was posted and nothing fired since
    seen_opening: bool = True  # False: the first record seen was not the opening
    pending: _Pending | None = None
    last_message_ms: float | None = None

    def open_members(self) -> list[_Member]:
        return [m for m in self.members.values() if m.open]


class Message(NamedTuple):
    """One message to post: its id, stage, the records it covers and the body every endpoint formats."""

    message_id: str
    stage: str
    incident: tuple[str, str, str]
    sources: list[Source]
    document: dict[str, Any]


class Added(NamedTuple):
    """What :meth:`IncidentBook.add` made of a record: its outcome and the messages due at once."""

    outcome: str
    messages: list[Message]


def _detectors(record: dict[str, Any]) -> list[str]:
    found = record.get("detectors")
    names = [str(d) for d in found] if isinstance(found, list) else []
    detector = record.get("detector")
    if detector is not None and str(detector) not in names:
        names.insert(0, str(detector))
    return names


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class IncidentBook:
    """Open incidents and the messages they owe.

    >>> book = IncidentBook(group_wait_seconds=5, cooldown_seconds=300)
    >>> rec = lambda f, s: {"alert_id": f + s, "status": s, "model": "m", "model_version": "v", "feature": f,
    ...                     "kind": "data_drift", "detector": "cusum", "incident_id": "i1"}
    >>> [book.add(rec(f, "firing"), f, now=t, at_ms=0).outcome for f, t in (("a", 0.0), ("b", 1.0))]
    ['grouped', 'grouped']
    >>> book.due(4.9), [(m.stage, m.document["features"]) for m in book.due(5.0)]
    ([], [('opened', ['a', 'b'])])
    >>> book.add(rec("a", "resolved"), "a", now=9, at_ms=0).messages
    []
    >>> [m.stage for m in book.add(rec("b", "resolved"), "b", now=9, at_ms=0).messages]
    ['resolved']
    """

    def __init__(self, group_wait_seconds: float, cooldown_seconds: float, *, max_incidents: int = 10_000,
                 max_ids: int = 10_000) -> None:
        if group_wait_seconds < 0 or cooldown_seconds < 0:
            raise ValueError(f"group_wait_seconds and cooldown_seconds must be >= 0, got {group_wait_seconds}, "
                             f"{cooldown_seconds}")
        self.group_wait = float(group_wait_seconds)
        self.cooldown_ms = cooldown_seconds * 1000.0
        self.max_incidents = max_incidents
        self.max_ids = max_ids
        self._incidents: OrderedDict[tuple[str, str, str], _Incident] = OrderedDict()
        self._waiting: dict[tuple[str, str, str], _Incident] = {}  # the incidents with a message waiting
        self._ids: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------ records
    def add(self, alert: dict[str, Any], key: str, *, now: float, at_ms: float, source: Source | None = None,
            warm: bool = False) -> Added:
        """Fold one decoded alert record with an ``incident_id`` (``key``: its alert key) into its incident.

        ``warm``: a record re-read on assignment, whose messages were posted before; nothing is returned
        and nothing is left waiting."""
        ident = incident_of(alert)
        if ident is None:
            raise ValueError("not an incident record (no incident_id)")
        ident = (ident[0], ident[1], ident[2][:_ID_CHARS] if len(ident[2]) <= _ID_CHARS else
                 ident[2][:_ID_CHARS] + hashlib.blake2b(ident[2].encode("utf-8", "surrogatepass"),
                                                        digest_size=8).hexdigest())
        alert_id = alert["alert_id"]
        if alert_id in self._ids:
            self._ids.move_to_end(alert_id)
            return Added("duplicate", [])
        self._ids[alert_id] = None
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        incident = self._incidents.get(ident)
        if incident is None:
            incident = self._incidents[ident] = _Incident(ident)
            self._prune()
        else:
            self._incidents.move_to_end(ident)
        if source is not None:
            incident.partitions.add(source[:2])
        if alert.get("status") == "resolved":
            outcome, messages = self._resolved(incident, alert, key, now, at_ms, source)
        elif alert.get("reminder") is True:
            outcome, messages = self._reminder(incident, alert, key, now, at_ms, source)
        else:
            outcome, messages = self._firing(incident, alert, key, now, at_ms, source)
        if warm and incident.pending is not None:  # posted before the restart: move on as if it were now
            messages.append(self._flush(incident))
        return Added(outcome, [] if warm else messages)

    def _wait(self, incident: _Incident, stage: str, now: float, at_ms: float, source: Source | None,
              joined: str | None = None, reminder_id: str | None = None) -> None:
        """Start the incident's waiting message, or fold the record into the one waiting."""
        p = incident.pending
        if p is None:
            p = incident.pending = _Pending(stage, now + self.group_wait, reminder_id=reminder_id)
            self._waiting[incident.ident] = incident
        elif p.stage == "reminder" and stage != "reminder":
            p.stage, p.reminder_id = stage, None  # a join supersedes the reminder: the update lists every feature
        if source is not None:
            p.sources.append(source)
        if joined is not None and joined not in p.joined:
            p.joined.append(joined)
        p.newest_ms = at_ms if p.newest_ms is None else max(p.newest_ms, at_ms)

    def _firing(self, incident: _Incident, alert: dict[str, Any], key: str, now: float, at_ms: float,
                source: Source | None) -> tuple[str, list[Message]]:
        messages: list[Message] = []
        member = incident.members.get(key)
        if member is not None and member.open:  # the open episode restated (a worker that lost its state)
            member.record = alert
            return "grouped", messages
        if incident.pending is not None and incident.pending.stage == "resolved":
            messages.append(self._flush(incident))  # a resolution of features whose opening was not seen
        incident.members[key] = _Member(key, alert, True)
        incident.episodes += 1
        if incident.closed:
            incident.round += 1
            incident.closed = incident.opened = False
        if not incident.opened:
            stage = "opened" if incident.round == 0 else "reopened"
        else:
            stage = "update"
        self._wait(incident, stage, now, at_ms, source, joined=key)
        return "grouped", messages

    def _reminder(self, incident: _Incident, alert: dict[str, Any], key: str, now: float, at_ms: float,
                  source: Source | None) -> tuple[str, list[Message]]:
        member = incident.members.get(key)
        if member is None and not incident.members:  # its opening is older than what was read: say it is still on
            incident.seen_opening = False
            incident.opened = True
            incident.members[key] = _Member(key, alert, True)
            incident.episodes += 1
            self._wait(incident, "reminder", now, at_ms, source, reminder_id=alert["alert_id"])
            return "grouped", []
        if member is None or not member.open:  # an episode not seen firing: people were not told of it
            return self._firing(incident, alert, key, now, at_ms, source)
        member.record = alert
        if incident.pending is not None:
            if source is not None:
                incident.pending.sources.append(source)
            return "grouped", []
        if incident.last_message_ms is not None and at_ms - incident.last_message_ms < self.cooldown_ms:
            return "suppressed", []
        self._wait(incident, "reminder", now, at_ms, source, reminder_id=alert["alert_id"])
        return "grouped", []

    def _resolved(self, incident: _Incident, alert: dict[str, Any], key: str, now: float, at_ms: float,
                  source: Source | None) -> tuple[str, list[Message]]:
        member = incident.members.get(key)
        if member is None and (not incident.members or not incident.seen_opening):
            # the incident's opening is older than what this book has read: post what resolved
            incident.seen_opening = False
            incident.opened = True
            incident.members[key] = _Member(key, alert, False)
            self._wait(incident, "resolved", now, at_ms, source, joined=key)
            return "grouped", []
        if member is None or not member.open:
            return "resolved_dropped", []
        if [m.key for m in incident.open_members()] != [key]:
            member.open, member.record = False, alert
            return "grouped", []
        messages = []
        if incident.pending is not None:
            messages.append(self._flush(incident))  # what is waiting goes first, as it was before this record
        member.open, member.record = False, alert
        self._wait(incident, "resolved", now, at_ms, source)
        messages.append(self._flush(incident))
        return "grouped", messages

    # ------------------------------------------------------------ messages due
    def due(self, now: float) -> list[Message]:
        """The waiting messages whose grouping delay is over, oldest first (each is handed out once)."""
        ready = sorted((i for i in self._waiting.values() if i.pending is not None and i.pending.due <= now),
                       key=lambda i: i.pending.due)  # type: ignore[union-attr]
        return [self._flush(i) for i in ready]

    def next_due(self) -> float | None:
        """When the next waiting message is due (``now`` of :meth:`due`), ``None`` when nothing waits."""
        dues = [i.pending.due for i in self._waiting.values() if i.pending is not None]
        return min(dues) if dues else None

    def waiting(self) -> dict[tuple[str, int], int]:
        """Per partition, the lowest offset of a record whose message has not been handed out yet: the
        consumer must not commit past it."""
        low: dict[tuple[str, int], int] = {}
        for incident in self._waiting.values():
            for topic, partition, offset in (incident.pending.sources if incident.pending else ()):
                tp = (topic, partition)
                low[tp] = min(offset, low.get(tp, offset))
        return low

    def forget(self, partitions: Iterable[tuple[str, int]]) -> int:
        """Drop the incidents of ``partitions`` (revoked: their next owner decides now), with the messages they
        had waiting (not committed, so the next owner posts them); alert ids are kept.  Returns how many."""
        gone = set(partitions)
        drop = [ident for ident, i in self._incidents.items() if i.partitions & gone]
        for ident in drop:
            del self._incidents[ident]
            self._waiting.pop(ident, None)
        return len(drop)

    def is_open(self, incident: tuple[str, str, str]) -> bool:
        """Whether the incident has a feature open."""
        found = self._incidents.get(incident)
        return found is not None and bool(found.open_members())

    def __len__(self) -> int:
        """Incidents remembered."""
        return len(self._incidents)

    def _prune(self) -> None:
        """Keep at most ``max_incidents``: closed ones go first, then the least recently touched."""
        if len(self._incidents) <= self.max_incidents:
            return
        for ident in [k for k, i in self._incidents.items() if i.closed and i.pending is None]:
            if len(self._incidents) <= self.max_incidents:
                return
            del self._incidents[ident]
        for ident in [k for k, i in self._incidents.items() if i.pending is None]:
            if len(self._incidents) <= self.max_incidents:
                return
            del self._incidents[ident]

    def _flush(self, incident: _Incident) -> Message:
        p = incident.pending
        assert p is not None
        incident.pending = None
        self._waiting.pop(incident.ident, None)
        if p.stage == "opened":
            label = "opened"
        elif p.stage == "reopened":
            label = f"reopened-{incident.round}"
        elif p.stage == "update":
            label = f"update-{incident.episodes}"
        elif p.stage == "reminder":
            label = f"reminder-{p.reminder_id}"
        elif incident.seen_opening:
            label = "resolved" if incident.round == 0 else f"resolved-{incident.round}"
        else:
            label = f"resolved-unseen-{len(incident.members)}"
        if p.stage in ("opened", "reopened"):
            incident.opened = True
        if p.stage == "resolved" and not incident.open_members():
            incident.closed = True
        if p.newest_ms is not None:
            incident.last_message_ms = p.newest_ms
        mid = message_id(incident.ident, label)
        return Message(mid, p.stage, incident.ident, p.sources, _document(incident, p, mid))


def _document(incident: _Incident, pending: _Pending, mid: str) -> dict[str, Any]:
    """The generic webhook body of one message: the incident, its features and their latest records."""
    model, version, ident = incident.ident
    members = list(incident.members.values())
    records = [m.record for m in members]
    open_members = [m for m in members if m.open]
    severities = {str(m.record.get("severity")) for m in (open_members or members)}
    opened = sorted(str(t) for t in (m.record.get("opened_event_time") or m.record.get("event_time") for m in members)
                    if isinstance(t, str))
    newest = [m.record.get("detected_at") for m in members if isinstance(m.record.get("detected_at"), str)]
    resolved = pending.stage == "resolved"
    return {
        "type": "incident",
        "schema_version": 1,
        "message_id": mid,
        "stage": pending.stage,
        "update": incident.episodes if pending.stage == "update" else None,
        "status": "resolved" if resolved else "firing",
        "incident_id": ident,
        "model": model,
        "model_version": version,
        "severity": "critical" if "critical" in severities else "warning",
        "opened_event_time": opened[0] if opened else None,
        "features": _unique(str(r.get("feature", "")) for r in records),
        "open_features": _unique(str(m.record.get("feature", "")) for m in open_members),
        "resolved_features": _unique(str(m.record.get("feature", "")) for m in members if not m.open),
        "joined_features": _unique(str(incident.members[k].record.get("feature", "")) for k in pending.joined
                                   if k in incident.members),
        "kinds": _unique(str(r.get("kind", "")) for r in records),
        "detectors": _unique(d for r in records for d in _detectors(r)),
        "seen_opening": incident.seen_opening,
        "detected_at": max(str(t) for t in newest) if newest else None,
        "alerts": records,
    }
