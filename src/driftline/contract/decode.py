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
import re
from datetime import datetime
from typing import NamedTuple

import orjson

from driftline.contract.event import DEFAULT_MODEL_VERSION, MAX_EVENT_MS, PREDICTION, InferenceEvent, build
from driftline.contract.names import is_utf8, plain

__all__ = ["DecodeError", "DeadLetterReason", "decode_event", "load_object", "parse_timestamp", "record_model",
           "record_version", "record_time", "MAX_TEXT_CHARS"]


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
#: Default longest event id (and label text) kept as it is; longer ones are kept in their bounded form.
MAX_TEXT_CHARS = 256
_orjson_loads = orjson.loads


#: RFC 3339 ``date-time`` (section 5.6): ``T``, ``t`` or a space between date and time (the RFC allows
#: the space), any fraction, ``Z``/``z`` or a numeric offset ``±hh:mm``; ASCII digits only.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")


def parse_timestamp(raw: object) -> int | None:
    """Epoch milliseconds from epoch milliseconds or an RFC 3339 string.

    Returns ``None`` when ``raw`` is neither, or a moment before 1970 or after
    9999 (the caller dead-letters).

    >>> parse_timestamp(1700000000123)
    1700000000123
    >>> parse_timestamp("2023-11-14T22:13:20.123Z")
    1700000000123
    >>> parse_timestamp("0001-01-01T00:00:00Z") is None
    True
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= MAX_EVENT_MS else None
    if isinstance(raw, float):
        return int(raw) if 0 <= raw <= MAX_EVENT_MS else None  # (NaN compares false)
    if isinstance(raw, str):
        if len(raw) > 64 or not _RFC3339.match(raw):
            return None  # ISO 8601 forms RFC 3339 does not have (week dates, basic format, +0000, ...) too
        text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
        try:
            parsed = datetime.fromisoformat(text)
            ms = int(round(parsed.timestamp() * 1000))
        except (ValueError, OverflowError):
            return None
        return ms if 0 <= ms <= MAX_EVENT_MS else None
    return None


def record_time(timestamp_ms: int | None) -> int | None:
    """A Kafka record timestamp as an event time: ``None`` when outside 1970 to 9999."""
    return timestamp_ms if timestamp_ms is not None and 0 <= timestamp_ms <= MAX_EVENT_MS else None


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
        # finding, not a dead letter.  So are numbers beyond a double (orjson
        # rejects them too), and lone surrogates ("\ud800"), which the names
        # and values they reach handle.  The text must be UTF-8: json.loads
        # of bytes would also take UTF-16 and UTF-32.
        try:
            doc = json.loads(value.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
            return DecodeError(DeadLetterReason.INVALID_JSON, f"not valid JSON: {str(exc)[:200]}")
    if type(doc) is not dict:
        return DecodeError(DeadLetterReason.NOT_AN_OBJECT, f"JSON value is a {type(doc).__name__}, not an object")
    return doc


def record_model(doc: dict) -> str | DecodeError:
    """The required ``model`` field of an event or label record, or why it is unusable."""
    model = doc.get("model")
    if model is None:
        return DecodeError(DeadLetterReason.MISSING_MODEL, "field 'model' is missing")
    if type(model) is not str or not model or len(model) > _MAX_NAME or not is_utf8(model):
        return DecodeError(DeadLetterReason.INVALID_MODEL,
                           "field 'model' must be a non-empty string of at most 256 characters, valid UTF-8")
    return model


def record_version(doc: dict, default: str | None) -> str | None | DecodeError:
    """The optional ``model_version`` field (``default`` when absent or null), or why it is unusable."""
    version = doc.get("model_version")
    if version is None:
        return default
    if type(version) is not str or not version or len(version) > _MAX_NAME or not is_utf8(version):
        return DecodeError(DeadLetterReason.INVALID_MODEL_VERSION,
                           "field 'model_version' must be a non-empty string of at most 256 characters, valid UTF-8")
    return version


def decode_event(value: bytes | None, *, max_bytes: int, record_timestamp_ms: int | None = None,
                 max_text_chars: int = MAX_TEXT_CHARS) -> InferenceEvent | DecodeError:
    """Decode one record value according to the input contract (``docs/input-contract.md``).

    An ``event_id`` longer than ``max_text_chars``, or not valid UTF-8, is
    kept in its bounded form (:mod:`driftline.contract.names`): it is only
    ever compared with the event ids of labels, which get the same form.
    """
    doc = load_object(value, max_bytes=max_bytes)
    if type(doc) is DecodeError:
        return doc
    model = record_model(doc)
    if type(model) is DecodeError:
        return model

    version = record_version(doc, DEFAULT_MODEL_VERSION)
    if type(version) is DecodeError:
        return version

    event_id = doc.get("event_id")
    if event_id is not None:
        if type(event_id) is not str:
            return DecodeError(DeadLetterReason.INVALID_EVENT_ID, "field 'event_id' must be a string")
        event_id = plain(event_id, max_text_chars)

    raw_ts = doc.get("timestamp")
    if raw_ts is None:
        timestamp_ms = record_time(record_timestamp_ms)
    elif type(raw_ts) is int and 0 <= raw_ts <= MAX_EVENT_MS:
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
