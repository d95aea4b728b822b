"""Ground truth: one label record per inference, on the labels topic (default ``ml.labels``).

``{"model": "fraud", "model_version": "v3", "event_id": "e-123", "label": 1, "timestamp": ...}``

``model`` and ``event_id`` are required, ``label`` is a number, string or
boolean; ``model_version`` is optional (a label belongs to the event, whatever
versions scored it); ``timestamp`` (epoch ms or RFC 3339) is when the truth
became known, else the Kafka record time.  Producers key label records by
``model``, like inference records, so both land on the same partition number.
"""

from __future__ import annotations

from typing import NamedTuple

from driftline.contract.decode import (MAX_TEXT_CHARS, DeadLetterReason, DecodeError, load_object, parse_timestamp,
                                       record_model, record_time, record_version)
from driftline.contract.names import plain

__all__ = ["LabelEvent", "decode_label", "label_text", "class_text"]


class LabelEvent(NamedTuple):
    model: str
    model_version: str | None
    event_id: str
    label: float | str
    timestamp_ms: int | None


def label_text(value: object) -> str:
    """A label or predicted class as a class name: ``1``, ``1.0`` and ``"1"`` are the same class.

    >>> [label_text(v) for v in (1, 1.0, "1", True, "fraud", 0.5)]
    ['1', '1', '1', 'true', 'fraud', '0.5']
    """
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def class_text(value: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A class name (a string label or predicted class) as it is kept: itself, or its bounded form
    when longer than ``max_chars`` or not valid UTF-8 (:mod:`driftline.contract.names`)."""
    return plain(value, max_chars)


def decode_label(value: bytes | None, *, max_bytes: int, record_timestamp_ms: int | None = None,
                 max_text_chars: int = MAX_TEXT_CHARS) -> LabelEvent | DecodeError:
    """Decode one label record (``docs/input-contract.md``, labels section).

    ``event_id`` and a string ``label`` are kept as :func:`class_text` keeps
    them (so a long id still joins its inference, whose id gets the same
    form); a number that is not finite, or beyond a double, is ``invalid_label``.
    """
    doc = load_object(value, max_bytes=max_bytes)
    if type(doc) is DecodeError:
        return doc
    model = record_model(doc)
    if type(model) is DecodeError:
        return model
    version = record_version(doc, None)
    if type(version) is DecodeError:
        return version
    event_id = doc.get("event_id")
    if event_id is None:
        return DecodeError(DeadLetterReason.MISSING_EVENT_ID, "field 'event_id' is missing: a label must name its inference")
    if type(event_id) is not str or not event_id:
        return DecodeError(DeadLetterReason.INVALID_EVENT_ID, "field 'event_id' must be a non-empty string")
    event_id = plain(event_id, max_text_chars)
    label = doc.get("label")
    if type(label) is bool:
        label = "true" if label else "false"
    elif type(label) in (int, float):
        try:
            label = float(label)
        except OverflowError:  # an integer beyond a double
            label = float("inf")
        if label - label != 0.0:
            return DecodeError(DeadLetterReason.INVALID_LABEL, "field 'label' must be a finite number (within a double)")
    elif type(label) is not str or not label:
        return DecodeError(DeadLetterReason.INVALID_LABEL,
                           "field 'label' must be a number, a non-empty string or a boolean")
    else:
        label = plain(label, max_text_chars)
    raw_ts = doc.get("timestamp")
    timestamp_ms = record_time(record_timestamp_ms) if raw_ts is None else parse_timestamp(raw_ts)
    if raw_ts is not None and timestamp_ms is None:
        return DecodeError(DeadLetterReason.INVALID_TIMESTAMP, "field 'timestamp' must be epoch milliseconds or an RFC 3339 date-time")
    return LabelEvent(model, version, event_id, label, timestamp_ms)
