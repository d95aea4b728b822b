"""Ground truth: one label record per inference, on the labels topic (default ``ml.labels``).

``{"model": "fraud", "model_version": "v3", "event_id": "e-123", "label": 1, "timestamp": ...}``

``model`` and ``event_id`` are required, ``label`` is a number, string or
boolean; ``model_version`` is optional (a label belongs to the event, whatever
versions scored it); ``timestamp`` (epoch ms or RFC 3339) is when the truth
became known, else the Kafka record time.  Producers key label records by
``model``, like inference records, so both land on the same partition number.
"""

from __future__ import annotations

import math
from typing import NamedTuple


from driftline.contract.decode import _MAX_NAME, DeadLetterReason, DecodeError, load_object, parse_timestamp, record_model

__all__ = ["LabelEvent", "decode_label", "label_text"]


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


def decode_label(value: bytes | None, *, max_bytes: int, record_timestamp_ms: int | None = None) -> LabelEvent | DecodeError:
    """Decode one label record (``docs/input-contract.md``, labels section)."""
    doc = load_object(value, max_bytes=max_bytes)
    if type(doc) is DecodeError:
        return doc
    model = record_model(doc)
    if type(model) is DecodeError:
        return model
    version = doc.get("model_version")
    if version is not None and (type(version) is not str or not version or len(version) > _MAX_NAME):
        return DecodeError(DeadLetterReason.INVALID_MODEL_VERSION, "field 'model_version' must be a non-empty string")
    event_id = doc.get("event_id")
    if event_id is None:
        return DecodeError(DeadLetterReason.MISSING_EVENT_ID, "field 'event_id' is missing: a label must name its inference")
    if type(event_id) is not str or not event_id:
        return DecodeError(DeadLetterReason.INVALID_EVENT_ID, "field 'event_id' must be a non-empty string")
    label = doc.get("label")
    if type(label) is bool:
        label = "true" if label else "false"
    elif type(label) in (int, float):
        if not math.isfinite(label):
            return DecodeError(DeadLetterReason.INVALID_LABEL, "field 'label' must be finite")
        label = float(label)
    elif type(label) is not str or not label:
        return DecodeError(DeadLetterReason.INVALID_LABEL,
                           "field 'label' must be a number, a non-empty string or a boolean")
    raw_ts = doc.get("timestamp")
    timestamp_ms = record_timestamp_ms if raw_ts is None else parse_timestamp(raw_ts)
    if raw_ts is not None and timestamp_ms is None:
        return DecodeError(DeadLetterReason.INVALID_TIMESTAMP, "field 'timestamp' must be epoch milliseconds or an RFC 3339 date-time")
    return LabelEvent(model, version, event_id, label, timestamp_ms)
