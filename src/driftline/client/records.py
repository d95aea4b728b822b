"""Predictions and labels → record values of the input contract (pure, no I/O).

The encoders check exactly what the worker's decoder would dead-letter
(``docs/input-contract.md``), so a value they return is never a dead letter;
anything else raises :class:`~driftline.errors.RecordError`, which the logger
counts as ``invalid`` instead of sending.  Values are written with orjson
(numpy scalars and arrays included).  One exception: a record holding a NaN or
infinite float is written with the standard ``json`` module, because orjson
turns them into ``null``, and the worker tells the two apart (``null`` is a
missing value, NaN a ``non_finite`` data-quality finding or a ``not_finite``
output).

>>> encode_inference(model="fraud", features={"amount": 12.5, "country": "de"}, prediction=0.91,
...                  model_version="v3", event_id="e-1", timestamp=1764151200000)
b'{"model":"fraud","model_version":"v3","event_id":"e-1","timestamp":1764151200000,"features":{"amount":12.5,"country":"de"},"prediction":0.91}'
>>> encode_label(model="fraud", event_id="e-1", label=1)
b'{"model":"fraud","event_id":"e-1","label":1}'
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from collections.abc import Mapping
from typing import Union

import orjson

from driftline.contract.event import MAX_EVENT_MS
from driftline.contract.names import is_utf8
from driftline.errors import RecordError

__all__ = ["Timestamp", "DEFAULT_MAX_RECORD_BYTES", "encode_inference", "encode_label", "timestamp_ms"]

#: Epoch milliseconds (int or float), or a time-zone aware datetime.
Timestamp = Union[int, float, datetime]

#: The worker's default ``max_record_bytes``: longer values are dead letters (``too_large``).
DEFAULT_MAX_RECORD_BYTES = 1_000_000

_MAX_NAME = 256
#: one past the last epoch millisecond the worker takes (the end of year 9999, as RFC 3339 can write it)
_MAX_MS = MAX_EVENT_MS + 1
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_dumps = orjson.dumps
_SCALARS = (float, int, str, bool)


def _name(field: str, value: object, *, optional: bool) -> None:
    if value is None:
        if optional:
            return
        raise RecordError(f"field {field!r} is required (a non-empty string of at most {_MAX_NAME} characters)")
    if type(value) is not str or not value or len(value) > _MAX_NAME or not is_utf8(value):
        raise RecordError(f"field {field!r} must be a non-empty string of at most {_MAX_NAME} characters, got {value!r:.80}")


def timestamp_ms(value: Timestamp) -> int:
    """Epoch milliseconds of an event time: epoch milliseconds as they are, an aware datetime converted.

    >>> from datetime import timezone
    >>> timestamp_ms(datetime(2025, 11, 26, 10, 0, tzinfo=timezone.utc))
    1764151200000
    >>> timestamp_ms(1764151200000.7)
    1764151200000
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise RecordError("field 'timestamp': a datetime needs a time zone (naive datetimes are ambiguous)")
        ms = int(round(value.timestamp() * 1000))
        if not 0 <= ms < _MAX_MS:
            raise RecordError(f"field 'timestamp' must be a date-time from 1970 to 9999, got {value.isoformat()}")
        return ms
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"field 'timestamp' must be epoch milliseconds or an aware datetime, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 <= value < _MAX_MS):
        raise RecordError(f"field 'timestamp' must be epoch milliseconds from 0 to {MAX_EVENT_MS} (1970 to 9999), got {value!r}")
    return int(value)


def _is_array(value: object) -> bool:
    # numpy arrays (and anything array-like orjson writes as a list) have a non-empty shape
    return isinstance(value, (list, tuple)) or bool(getattr(value, "shape", ()))


def _non_finite(values: object) -> bool:
    for v in values:  # type: ignore[attr-defined]
        if type(v) is float:
            if v - v != 0.0:  # NaN or infinite
                return True
        elif isinstance(v, float) and not math.isfinite(v):
            return True
    return False


def _json_default(value: object) -> object:
    item = getattr(value, "item", None)  # numpy scalars and arrays
    if item is not None:
        return value.tolist() if getattr(value, "shape", ()) else item()  # type: ignore[attr-defined]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _serialize(doc: dict[str, object], nan_check: tuple[object, ...], max_bytes: int) -> bytes:
    try:
        if _non_finite(nan_check[0]) or _non_finite(nan_check[1]) if nan_check else False:
            value = json.dumps(doc, allow_nan=True, default=_json_default, separators=(",", ":"),
                               ensure_ascii=False).encode()
        else:
            value = _dumps(doc, option=_OPTIONS)
    except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
        raise RecordError(f"record is not JSON-serializable: {exc}") from None
    if len(value) > max_bytes:
        raise RecordError(f"record value is {len(value)} bytes, above the limit of {max_bytes} (max_record_bytes)")
    return value


def encode_inference(*, model: str, features: Mapping[str, object] | None = None, prediction: object = None,
                     model_version: str | None = None, event_id: str | None = None,
                     timestamp: Timestamp | None = None, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> bytes:
    """The record value of one prediction; raises :class:`RecordError` if the worker would dead-letter it.

    ``features`` maps names (strings) to numbers, strings, booleans or None;
    ``prediction`` is a number, string, boolean or a non-empty mapping of named
    outputs; at least one of the two is required.  ``timestamp`` is the event
    time (omitted when None: the worker then uses the Kafka record time).
    """
    if type(model) is not str or not model or len(model) > _MAX_NAME:
        _name("model", model, optional=False)
    if model_version is not None and (type(model_version) is not str or not model_version or len(model_version) > _MAX_NAME):
        _name("model_version", model_version, optional=True)
    if event_id is not None and type(event_id) is not str:
        raise RecordError(f"field 'event_id' must be a string, got {type(event_id).__name__}")
    if features is not None and type(features) is not dict:
        if not isinstance(features, Mapping):
            raise RecordError(f"field 'features' must be a mapping of feature name to value, got {type(features).__name__}")
        features = dict(features)
    if prediction is None:
        if features is None:
            raise RecordError("a record needs 'features' or 'prediction' (both are None)")
        outputs: object = ()
    elif type(prediction) is dict or isinstance(prediction, Mapping):
        if not prediction:
            raise RecordError("field 'prediction' must not be an empty mapping")
        if type(prediction) is not dict:
            prediction = dict(prediction)  # type: ignore[call-overload]
        outputs = prediction.values()  # type: ignore[union-attr]
    elif type(prediction) in _SCALARS:
        outputs = (prediction,)
    elif _is_array(prediction) or isinstance(prediction, (set, frozenset, bytes)):
        raise RecordError(f"field 'prediction' must be a number, string, boolean or a mapping of named outputs, "
                          f"got {type(prediction).__name__}")
    else:
        outputs = (prediction,)

    doc: dict[str, object] = {"model": model}
    if model_version is not None:
        doc["model_version"] = model_version
    if event_id is not None:
        doc["event_id"] = event_id
    if timestamp is not None:
        doc["timestamp"] = timestamp if type(timestamp) is int and 0 <= timestamp < _MAX_MS else timestamp_ms(timestamp)
    if features is not None:
        doc["features"] = features
    if prediction is not None:
        doc["prediction"] = prediction
    return _serialize(doc, (features.values() if features is not None else (), outputs), max_bytes)


def encode_label(*, model: str, event_id: str, label: object, model_version: str | None = None,
                 timestamp: Timestamp | None = None, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> bytes:
    """The record value of one ground-truth label (``docs/labels.md``); raises :class:`RecordError` if invalid.

    ``label`` is a finite number, a non-empty string or a boolean (numpy
    scalars are converted); ``event_id`` names the inference it belongs to.
    """
    _name("model", model, optional=False)
    _name("model_version", model_version, optional=True)
    if type(event_id) is not str or not event_id:
        raise RecordError(f"field 'event_id' must be a non-empty string (the inference's event_id), got {event_id!r:.80}")
    item = getattr(label, "item", None)
    if item is not None and not getattr(label, "shape", ()):
        label = item()  # a numpy scalar
    if isinstance(label, bool) or (isinstance(label, str) and label):
        pass
    elif isinstance(label, (int, float)):
        if not math.isfinite(label):
            raise RecordError(f"field 'label' must be finite, got {label!r}")
    else:
        raise RecordError(f"field 'label' must be a finite number, a non-empty string or a boolean, got {label!r:.80}")
    doc: dict[str, object] = {"model": model, "event_id": event_id, "label": label}
    if model_version is not None:
        doc["model_version"] = model_version
    if timestamp is not None:
        doc["timestamp"] = timestamp_ms(timestamp)
    return _serialize(doc, (), max_bytes)
