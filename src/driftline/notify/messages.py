"""What a webhook receives for one alert record: pure formatting, no I/O.

Two shapes (see ``docs/notify.md``), for a single alert record (of a worker
that writes no ``incident_id``) and for a message of an incident
(:mod:`.incidents`):

* **generic** — the alert record exactly as the worker wrote it to the alerts
  topic (``docs/outputs.md``), so a receiver parses one layout whether it reads
  Kafka or a webhook; ``alert_id`` is in it for de-duplication.  An incident's
  message is the incident document (``type`` ``incident``, ``message_id``,
  ``stage``, the features, kinds and detectors) with the latest record of each
  feature under ``alerts``.
* **slack** — a Slack incoming-webhook message: ``text`` (the notification
  line) and one attachment coloured by status and severity, with the details
  as fields.  Only the classic attachment keys are used, which Mattermost,
  Rocket.Chat and Discord's ``/slack`` endpoints understand too.

:func:`decode_alert` decides whether a Kafka value is an alert at all; a
value that is not becomes a counted skip in the loop, never an exception.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from driftline import __version__
from driftline.detection import published

__all__ = ["Decoded", "decode_alert", "alert_key", "slack_message", "generic_message", "request_body",
           "request_headers", "detected_at_ms", "slack_incident_message", "incident_request_body",
           "incident_request_headers", "COLOURS", "FIRING", "RESOLVED"]

FIRING = "firing"
RESOLVED = "resolved"

#: Attachment colours: status first, then severity for firing alerts.
COLOURS = {
    ("firing", "critical"): "#E01E5A",  # red
    ("firing", "warning"): "#ECB22E",   # amber
    ("resolved", None): "#2EB67D",      # green
}
_UNKNOWN_COLOUR = "#808080"

_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


class Decoded(NamedTuple):
    """An alert record, or why a value is not one (``problem``)."""

    alert: dict[str, Any] | None
    problem: str | None


def decode_alert(value: bytes | None) -> Decoded:
    """Parse one value of the alerts topic.

    An alert needs a JSON object with ``status`` firing/resolved, a string
    ``alert_id`` and a ``model``; anything else is reported, not raised.

    >>> decode_alert(b'{"status": "firing", "alert_id": "a1", "model": "m"}').problem is None
    True
    >>> decode_alert(b"not json").problem
    'not JSON'
    """
    if not value:
        return Decoded(None, "empty value")
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return Decoded(None, "not JSON")
    if not isinstance(record, dict):
        return Decoded(None, "not a JSON object")
    if record.get("status") not in (FIRING, RESOLVED):
        return Decoded(None, f"status {record.get('status')!r} is neither firing nor resolved")
    if not isinstance(record.get("alert_id"), str) or not record["alert_id"]:
        return Decoded(None, "no alert_id")
    if not isinstance(record.get("model"), str):
        return Decoded(None, "no model")
    return Decoded(record, None)


def alert_key(alert: dict[str, Any]) -> str:
    """The alert key ``model/model_version/feature/kind`` (plus ``/check`` for data and output quality; the
    Kafka key the worker uses; components percent-encoded so distinct incidents never share a key, see
    ``driftline.detection.keys``).

    >>> alert_key({"model": "fraud", "model_version": "v3", "feature": "amount", "kind": "data_drift", "detector": "adwin"})
    'fraud/v3/amount/data_drift'
    >>> alert_key({"model": "col/a", "model_version": "v", "feature": "x", "kind": "data_quality", "detector": "non_finite"})
    'col%2Fa/v/x/data_quality/non_finite'
    """
    return published.alert_key(alert)


def detected_at_ms(alert: dict[str, Any]) -> float | None:
    """``detected_at`` as epoch milliseconds, or ``None`` when absent or unreadable.

    >>> detected_at_ms({"detected_at": "2025-11-26T10:06:42.104Z"})
    1764151602104.0
    """
    text = alert.get("detected_at")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return round(moment.timestamp() * 1000.0, 3)


def _escape(text: object) -> str:
    """Slack's three control characters (``&``, ``<``, ``>``), escaped."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value) if value is not None else "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _colour(alert: dict[str, Any]) -> str:
    status = alert.get("status")
    if status == RESOLVED:
        return COLOURS[(RESOLVED, None)]
    return COLOURS.get((str(status), str(alert.get("severity"))), _UNKNOWN_COLOUR)


def slack_message(alert: dict[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook payload for one alert record.

    >>> msg = slack_message({"status": "firing", "severity": "critical", "model": "fraud", "model_version": "v3",
    ...                      "feature": "amount", "kind": "data_drift", "detector": "psi", "alert_id": "a1"})
    >>> msg["attachments"][0]["color"], msg["text"]
    ('#E01E5A', ':rotating_light: *FIRING* (critical) fraud/v3 · amount · data_drift/psi')
    """
    status = str(alert.get("status", "?"))
    where = f"{alert.get('model')}/{alert.get('model_version', '-')} · {alert.get('feature', '-')}"
    what = f"{alert.get('kind', '-')}/{alert.get('detector', '-')}"
    severity = f" ({_escape(alert.get('severity'))})" if status == FIRING and alert.get("severity") else ""
    text = f"{_EMOJI.get(status, '')} *{_escape(status.upper())}*{severity} {_escape(where)} · {_escape(what)}".strip()
    window = alert.get("window") if isinstance(alert.get("window"), dict) else {}
    fields = [
        {"title": "Model", "value": _escape(f"{alert.get('model')} {alert.get('model_version', '')}".strip()), "short": True},
        {"title": "Feature", "value": _escape(alert.get("feature", "-")), "short": True},
        {"title": "Check", "value": _escape(what), "short": True},
        {"title": "Severity", "value": _escape(alert.get("severity", "-")), "short": True},
        {"title": "Statistic", "value": f"{_number(alert.get('statistic'))} (threshold {_number(alert.get('threshold'))})",
         "short": True},
        {"title": "Event time", "value": _escape(alert.get("event_time") or "-"), "short": True},
        {"title": "Reference", "value": _escape(alert.get("reference", "-")), "short": True},
        {"title": "Records", "value": _escape(f"{window.get('topic', '-')}[{window.get('partition', '-')}] "
                                              f"offsets {window.get('first_offset', '-')}–{window.get('last_offset', '-')}"),
         "short": True},
    ]
    attachment: dict[str, Any] = {
        "color": _colour(alert),
        "fallback": _escape(f"{status.upper()} {where} {what}: {alert.get('summary', '')}"),
        "title": _escape(alert.get("summary") or f"{status} {what}"),
        "fields": fields,
        "footer": _escape(f"driftline · alert {alert.get('alert_id')} · key {alert_key(alert)}"),
    }
    detected = detected_at_ms(alert)
    if detected is not None:
        attachment["ts"] = int(detected // 1000)
    return {"text": text, "attachments": [attachment]}


def generic_message(alert: dict[str, Any]) -> dict[str, Any]:
    """The generic webhook payload: the alert record as it is on the alerts topic."""
    return alert


def request_body(kind: str, alert: dict[str, Any]) -> bytes:
    """The POST body for an endpoint of ``kind`` (``slack`` or ``webhook``)."""
    return orjson.dumps(slack_message(alert) if kind == "slack" else generic_message(alert))


def request_headers(alert: dict[str, Any]) -> dict[str, str]:
    """Headers of every POST: JSON, and the ids a receiver can de-duplicate on."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"driftline-notify/{__version__}",
        "Idempotency-Key": _header_value(alert.get("alert_id", "")),
        "X-Driftline-Alert-Id": _header_value(alert.get("alert_id", "")),
        "X-Driftline-Alert-Key": _header_value(alert_key(alert)),
        "X-Driftline-Alert-Status": _header_value(alert.get("status", "")),
    }


def _header_value(value: object, limit: int = 256) -> str:
    """Printable ASCII only (a feature name may hold anything; headers may not)."""
    text = str(value).encode("ascii", "backslashreplace").decode()
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:limit]


#: Incident messages: the emoji and words of each stage.
_STAGE_TEXT = {
    "opened": (":rotating_light:", "INCIDENT"),
    "update": (":heavy_plus_sign:", "INCIDENT UPDATE"),
    "reopened": (":rotating_light:", "INCIDENT REOPENED"),
    "reminder": (":bell:", "STILL FIRING"),
    "resolved": (":white_check_mark:", "RESOLVED"),
}
#: Features named in a Slack message (the rest are counted); longest name shown.
SLACK_FEATURES = 25
_NAME_CHARS = 80


def _names(names: list[str], limit: int = SLACK_FEATURES) -> str:
    """Bounded, escaped list of names: ``a, b, c`` or ``a, b and 7 more``."""
    from driftline.redact import bounded, escape

    shown = [escape(bounded(str(n), _NAME_CHARS)) for n in names[:limit]]
    text = ", ".join(shown) or "-"
    if len(names) > limit:
        text += f" and {len(names) - limit} more"
    return _escape(text)


def slack_incident_message(doc: dict[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook payload of one incident message (a document of :mod:`.incidents`).

    >>> msg = slack_incident_message({"stage": "opened", "status": "firing", "severity": "warning", "model": "fraud",
    ...     "model_version": "v3", "incident_id": "ab12", "message_id": "m1", "features": ["amount", "age"],
    ...     "open_features": ["amount", "age"], "resolved_features": [], "joined_features": ["amount", "age"],
    ...     "kinds": ["data_drift"], "detectors": ["cusum", "psi"], "alerts": []})
    >>> msg["text"]
    ':rotating_light: *INCIDENT* (warning) fraud/v3 · 2 features: amount, age · data_drift'
    """
    from driftline.redact import bounded, escape

    stage = str(doc.get("stage"))
    emoji, word = _STAGE_TEXT.get(stage, ("", stage.upper()))
    status = str(doc.get("status", FIRING))
    features = [str(f) for f in doc.get("features") or ()]
    joined = [str(f) for f in doc.get("joined_features") or ()]
    where = _escape(escape(bounded(f"{doc.get('model')}/{doc.get('model_version', '-')}", 200)))
    kinds = _names([str(k) for k in doc.get("kinds") or ()], 10)
    severity = f" ({_escape(doc.get('severity'))})" if status == FIRING and doc.get("severity") else ""
    if stage == "update":
        what = f"+{len(joined)} feature{'s' * (len(joined) != 1)} ({len(features)} in all): {_names(joined)}"
    elif stage == "resolved":
        what = f"{len(features)} feature{'s' * (len(features) != 1)} back: {_names(features)}"
    else:
        what = f"{len(features)} feature{'s' * (len(features) != 1)}: {_names(features)}"
    text = f"{emoji} *{word}*{severity} {where} · {what} · {kinds}".strip()
    ident = _escape(escape(bounded(str(doc.get("incident_id")), 100)))
    fields = [
        {"title": "Model", "value": _escape(escape(bounded(f"{doc.get('model')} {doc.get('model_version', '')}".strip(),
                                                           200))), "short": True},
        {"title": "Incident", "value": ident, "short": True},
        {"title": "Features", "value": _names(features), "short": False},
        {"title": "Kinds", "value": kinds, "short": True},
        {"title": "Detectors", "value": _names([str(d) for d in doc.get("detectors") or ()], 15), "short": True},
        {"title": "Severity", "value": _escape(doc.get("severity", "-")), "short": True},
        {"title": "Opened (event time)", "value": _escape(escape(bounded(str(doc.get("opened_event_time") or "-"), 40))),
         "short": True},
    ]
    if stage == "resolved":  # back_to_reference, quiet (checks), reference_changed (a new profile was put in force)
        counts: dict[str, int] = {}
        for a in doc.get("alerts") or ():
            if isinstance(a, dict) and a.get("resolution") is not None:
                counts[str(a["resolution"])] = counts.get(str(a["resolution"]), 0) + 1
        if counts:
            fields.append({"title": "Resolution", "value": _names([f"{k} ({n})" for k, n in sorted(counts.items())], 10),
                           "short": True})
    if stage != "resolved" and doc.get("resolved_features"):
        fields.append({"title": "Back already", "value": _names([str(f) for f in doc["resolved_features"]]),
                       "short": False})
    colour = COLOURS[(RESOLVED, None)] if status == RESOLVED else COLOURS.get((FIRING, str(doc.get("severity"))),
                                                                             _UNKNOWN_COLOUR)
    summaries = [str(a.get("summary")) for a in doc.get("alerts") or () if isinstance(a, dict) and a.get("summary")]
    head = f"[{doc.get('model')} {doc.get('model_version', '')}] "
    if stage == "update":
        title = f"{head}{len(joined)} more feature(s) drifted with the incident's {len(features) - len(joined)}"
    elif len(features) == 1 and summaries and stage != "reminder":
        title = summaries[-1] if summaries[-1].startswith("[") else head + summaries[-1]
    else:
        title = head + {"resolved": f"{len(features)} feature(s) of the incident are back",
                        "reminder": f"{len(features)} feature(s) still drifting"}.get(
            stage, f"{len(features)} features drifted together")
    attachment: dict[str, Any] = {
        "color": colour,
        "fallback": _escape(escape(bounded(f"{word} {doc.get('model')}/{doc.get('model_version', '-')}: "
                                           f"{', '.join(features[:SLACK_FEATURES])}", 500))),
        "title": _escape(escape(bounded(title, 500))),
        "fields": fields,
        "footer": f"driftline · incident {ident} · message {_escape(doc.get('message_id'))}",
    }
    detected = detected_at_ms({"detected_at": doc.get("detected_at")})
    if detected is not None:
        attachment["ts"] = int(detected // 1000)
    return {"text": text, "attachments": [attachment]}


def incident_request_body(kind: str, doc: dict[str, Any]) -> bytes:
    """The POST body of an incident message for an endpoint of ``kind``: Slack's shape, or the document."""
    from driftline.detection.published import encode_json

    return encode_json(slack_incident_message(doc) if kind == "slack" else doc)


def incident_request_headers(doc: dict[str, Any]) -> dict[str, str]:
    """Headers of an incident message: the message id to de-duplicate on, the incident and its stage.

    ``X-Driftline-Alert-Id`` / ``-Key`` name the newest record of the message (the last of ``alerts``)."""
    records = [a for a in doc.get("alerts") or () if isinstance(a, dict)]
    newest = max(records, key=lambda a: str(a.get("detected_at", "")), default={})
    return {
        "Content-Type": "application/json",
        "User-Agent": f"driftline-notify/{__version__}",
        "Idempotency-Key": _header_value(doc.get("message_id", "")),
        "X-Driftline-Message-Id": _header_value(doc.get("message_id", "")),
        "X-Driftline-Incident-Id": _header_value(doc.get("incident_id", "")),
        "X-Driftline-Incident-Stage": _header_value(doc.get("stage", "")),
        "X-Driftline-Alert-Id": _header_value(newest.get("alert_id", "")),
        "X-Driftline-Alert-Key": _header_value(alert_key(newest) if newest else ""),
        "X-Driftline-Alert-Status": _header_value(doc.get("status", "")),
    }
