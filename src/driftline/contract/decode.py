"""Bytes → :class:`InferenceEvent`, or the reason the record is a dead letter.

Decoding is a pure function and never raises on bad input: structural problems
of the record (not JSON, not an object, no model, ...) return a
:class:`DecodeError` naming a stable ``reason`` (these become the
``driftline.reason`` header of the dead letter and the ``reason`` label of
``driftline_dead_letters_total``).  Problems with a single feature value are
*not* decode errors: they are data-quality findings of that feature, so one bad
field does not cost the rest of the record.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import NamedTuple

import orjson

from driftline.contract.event import DEFAULT_MODEL_VERSION, PREDICTION, InferenceEvent, build

__all__ = ["DecodeError", "DeadLetterReason", "decode_event", "load_object", "parse_timestamp", "record_model"]


class DeadLetterReason:
    """The reasons a record is dead-lettered (values of the ``driftline.reason`` header)."""

    EMPTY_VALUE = "empty_value"
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_MODEL = "missing_model"
    INVALID_MODEL = "invalid_model"
    INVALID_MODEL_VERSION = "invalid_model_version"
    INVALID_EVENT_ID = "invalid_event_id"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_FEATURES = "invalid_features"
    INVALID_PREDICTION = "invalid_prediction"
    NO_PAYLOAD = "no_payload"
    #: label records (the labels topic)
    MISSING_EVENT_ID = "missing_event_id"
    INVALID_LABEL = "invalid_label"
    #: processing the record raised; the worker isolated it (exception class and message in headers)
    PROCESSING_ERROR = "processing_error"

    ALL = (
        EMPTY_VALUE, TOO_LARGE, INVALID_JSON, NOT_AN_OBJECT, MISSING_MODEL, INVALID_MODEL,
        INVALID_MODEL_VERSION, INVALID_EVENT_ID, INVALID_TIMESTAMP, INVALID_FEATURES,
        INVALID_PREDICTION, NO_PAYLOAD, MISSING_EVENT_ID, INVALID_LABEL, PROCESSING_ERROR,
    )


class DecodeError(NamedTuple):
    """Why a record could not be decoded: a stable reason and a human detail."""

    reason: str
    detail: str


_MAX_NAME = 256
_orjson_loads = orjson.loads


def parse_timestamp(raw: object) -> int | None:
    """Epoch milliseconds from epoch milliseconds or an RFC 3339 string.

    Returns ``None`` when ``raw`` is neither (the caller dead-letters).

    >>> parse_timestamp(1700000000123)
    1700000000123
    >>> parse_timestamp("2023-11-14T22:13:20.123Z")
    1700000000123
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw < 10**15 else None
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and 0 <= raw < 1e15 else None
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None or "T" not in text.upper() and " " not in text:
            return None
        return int(round(parsed.timestamp() * 1000))
    return None


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (int, float, str))


def load_object(value: bytes | None, *, max_bytes: int) -> dict | DecodeError:
    """The JSON object of a record value, or why it is not one (shared by events and labels)."""
    if value is None or len(value) == 0:
        return DecodeError(DeadLetterReason.EMPTY_VALUE, "record value is empty or null")
    if len(value) > max_bytes:
        return DecodeError(DeadLetterReason.TOO_LARGE, f"record value is {len(value)} bytes, limit is {max_bytes}")
    try:
        doc = _orjson_loads(value)
    except ValueError:
        # Python's json module (and so many model servers) writes NaN and
        # Infinity literals, which orjson rejects; they are a data-quality
        # finding, not a dead letter.
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError) as exc:
            return DecodeError(DeadLetterReason.INVALID_JSON, f"not valid JSON: {str(exc)[:200]}")
    if type(doc) is not dict:
        return DecodeError(DeadLetterReason.NOT_AN_OBJECT, f"JSON value is a {type(doc).__name__}, not an object")
    return doc


def record_model(doc: dict) -> str | DecodeError:
    """The required ``model`` field of an event or label record, or why it is unusable."""
    model = doc.get("model")
    if model is None:
        return DecodeError(DeadLetterReason.MISSING_MODEL, "field 'model' is missing")
    if type(model) is not str or not model or len(model) > _MAX_NAME:
        return DecodeError(DeadLetterReason.INVALID_MODEL, "field 'model' must be a non-empty string of at most 256 characters")
    return model


def decode_event(value: bytes | None, *, max_bytes: int, record_timestamp_ms: int | None = None) -> InferenceEvent | DecodeError:
    """Decode one record value according to the input contract (``docs/input-contract.md``)."""
    doc = load_object(value, max_bytes=max_bytes)
    if type(doc) is DecodeError:
        return doc
    model = record_model(doc)
    if type(model) is DecodeError:
        return model

    version = doc.get("model_version", DEFAULT_MODEL_VERSION)
    if version is None:
        version = DEFAULT_MODEL_VERSION
    elif type(version) is not str or not version or len(version) > _MAX_NAME:
        return DecodeError(DeadLetterReason.INVALID_MODEL_VERSION, "field 'model_version' must be a non-empty string")

    event_id = doc.get("event_id")
    if event_id is not None and type(event_id) is not str:
        return DecodeError(DeadLetterReason.INVALID_EVENT_ID, "field 'event_id' must be a string")

    raw_ts = doc.get("timestamp")
    if raw_ts is None:
        timestamp_ms = record_timestamp_ms
    elif type(raw_ts) is int and 0 <= raw_ts < 10**15:
        timestamp_ms = raw_ts
    else:
        timestamp_ms = parse_timestamp(raw_ts)
        if timestamp_ms is None:
            return DecodeError(DeadLetterReason.INVALID_TIMESTAMP, "field 'timestamp' must be epoch milliseconds or an RFC 3339 date-time")

    features = doc.get("features")
    if features is not None and type(features) is not dict:
        return DecodeError(DeadLetterReason.INVALID_FEATURES, f"field 'features' is a {type(features).__name__}, not an object")

    prediction = doc.get("prediction")
    outputs: dict[str, object] | None
    if prediction is None:
        outputs = None
    elif type(prediction) is dict:
        if not prediction:
            return DecodeError(DeadLetterReason.INVALID_PREDICTION, "field 'prediction' is an empty object")
        outputs = {f"{PREDICTION}.{name}": v for name, v in prediction.items()}
    elif _scalar(prediction):
        outputs = {PREDICTION: prediction}
    else:
        return DecodeError(DeadLetterReason.INVALID_PREDICTION, f"field 'prediction' is a {type(prediction).__name__}; expected number, string or object")

    if features is None and outputs is None:
        return DecodeError(DeadLetterReason.NO_PAYLOAD, "record has neither 'features' nor 'prediction'")
    return build(InferenceEvent, (model, version, event_id, timestamp_ms, features, outputs))
