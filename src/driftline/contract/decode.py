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
from itertools import repeat
from typing import NamedTuple, Sequence

import orjson

from driftline.contract.event import DEFAULT_MODEL_VERSION, MAX_EVENT_MS, PREDICTION, InferenceEvent, build
from driftline.contract.names import is_utf8, plain

__all__ = ["DecodeError", "DeadLetterReason", "DecodedBatch", "decode_event", "decode_batch", "decode_fields",
           "flatten_prediction", "load_object", "parse_timestamp", "record_model",
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
    fields = decode_fields(value, max_bytes=max_bytes, record_timestamp_ms=record_timestamp_ms,
                           max_text_chars=max_text_chars)
    if type(fields) is DecodeError:
        return fields
    model, version, event_id, timestamp_ms, features, prediction = fields  # type: ignore[misc]
    return build(InferenceEvent, (model, version, event_id, timestamp_ms, features, flatten_prediction(prediction)))


def flatten_prediction(prediction: object) -> dict[str, object] | None:
    """A record's ``prediction`` as outputs: ``{"prediction": x}``, ``{"prediction.<name>": x}`` or None."""
    if prediction is None:
        return None
    if type(prediction) is dict:
        return {f"{PREDICTION}.{name}": v for name, v in prediction.items()}
    return {PREDICTION: prediction}


def decode_fields(value: bytes | None, *, max_bytes: int, record_timestamp_ms: int | None = None,
                  max_text_chars: int = MAX_TEXT_CHARS) -> tuple | DecodeError:
    """What :func:`decode_event` decodes, with the ``prediction`` as the record has it (not flattened):
    ``(model, model_version, event_id, timestamp_ms, features, prediction)``, or why it is a dead letter."""
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
    if prediction is None or _scalar(prediction):
        pass
    elif type(prediction) is dict:
        if not prediction:
            return DecodeError(DeadLetterReason.INVALID_PREDICTION, "field 'prediction' is an empty object")
    else:
        return DecodeError(DeadLetterReason.INVALID_PREDICTION, f"field 'prediction' is a {type(prediction).__name__}; expected number, string or object")

    if features is None and prediction is None:
        return DecodeError(DeadLetterReason.NO_PAYLOAD, "record has neither 'features' nor 'prediction'")
    return (model, version, event_id, timestamp_ms, features, prediction)


class DecodedBatch(NamedTuple):
    """The decoded events of a batch of record values, as parallel lists in record order.

    ``index`` is each event's position in the values decoded; ``predictions``
    are as the records have them (see :func:`flatten_prediction`).
    """

    index: list[int]
    models: list[str]
    versions: list[str]
    event_ids: list[str | None]
    times: list[int | None]
    features: list[dict | None]
    predictions: list[object]


_get = dict.get
_NONE = type(None)
_EMPTY: dict = {}
_SCALARS = frozenset((_NONE, int, float, str, bool, dict))
#: a text posing as a bounded form ends in "~" and 12 hex digits (see names.is_plain); \x00 ends each id
_BOUNDED_TAIL = re.compile(r"~[0-9a-f]{12}\x00")


def decode_batch(values: Sequence[bytes | None], record_times: Sequence[int | None], *, max_bytes: int,
                 max_text_chars: int = MAX_TEXT_CHARS) -> tuple[DecodedBatch, list[tuple[int, DecodeError]]]:
    """:func:`decode_event` of every value (``record_times``: each record's Kafka timestamp), without an
    object per event; returns the events and the dead letters (position, why), both in record order.

    Each field is checked for the whole batch at once (the types it has, its
    distinct model names, the range of its timestamps); a record that any of
    those checks does not clear is decoded on its own by :func:`decode_fields`,
    so every record gets exactly :func:`decode_event`'s answer.
    """
    n = len(values)
    if n == 0:
        return DecodedBatch([], [], [], [], [], [], []), []
    odd: set[int] = set()  # records decoded on their own
    try:
        if max(map(len, values)) > max_bytes:  # type: ignore[arg-type]
            raise ValueError("too large")
        docs = list(map(_orjson_loads, values))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        docs = []
        for i, value in enumerate(values):
            try:
                if value is None or len(value) > max_bytes:
                    raise ValueError("empty or too large")
                docs.append(_orjson_loads(value))
            except (TypeError, ValueError):
                docs.append(_EMPTY)
                odd.add(i)
    if set(map(type, docs)) != {dict}:
        for i, doc in enumerate(docs):
            if type(doc) is not dict:
                docs[i] = _EMPTY
                odd.add(i)

    models = list(map(_get, docs, repeat("model")))
    _strings(models, odd, allow_none=False)
    bad = {m for m in set(models) if not _name_ok(m)}
    if bad:
        odd.update(i for i, m in enumerate(models) if m in bad)

    versions = list(map(_get, docs, repeat("model_version")))
    _strings(versions, odd, allow_none=True)
    distinct = set(versions)
    distinct.discard(None)
    bad = {v for v in distinct if not _name_ok(v)}
    if bad:
        odd.update(i for i, v in enumerate(versions) if v in bad)
    if None in versions:
        versions = [DEFAULT_MODEL_VERSION if v is None else v for v in versions]

    event_ids = list(map(_get, docs, repeat("event_id")))
    _strings(event_ids, odd, allow_none=True)
    texts = [e for e in event_ids if e is not None] if None in event_ids else event_ids
    if texts:
        joined = "\x00".join(texts) + "\x00"  # type: ignore[arg-type]
        if (max(map(len, texts)) > max_text_chars or not is_utf8(joined)  # type: ignore[arg-type]
                or _BOUNDED_TAIL.search(joined)):
            event_ids = [e if e is None or type(e) is not str else plain(e, max_text_chars) for e in event_ids]

    times = list(map(_get, docs, repeat("timestamp")))
    kinds = set(map(type, times))
    if kinds == {int} and min(times) >= 0 and max(times) <= MAX_EVENT_MS:  # type: ignore[type-var]
        pass
    else:
        for i, t in enumerate(times):
            if t is None:
                times[i] = record_time(record_times[i])
            elif type(t) is not int or not 0 <= t <= MAX_EVENT_MS:
                odd.add(i)

    features = list(map(_get, docs, repeat("features")))
    kinds = set(map(type, features))
    if not kinds <= {dict, _NONE}:
        odd.update(i for i, f in enumerate(features) if f is not None and type(f) is not dict)

    predictions = list(map(_get, docs, repeat("prediction")))
    kinds = set(map(type, predictions))
    if not kinds <= _SCALARS:
        odd.update(i for i, p in enumerate(predictions) if type(p) not in _SCALARS)
    if dict in kinds:
        odd.update(i for i, p in enumerate(predictions) if type(p) is dict and not p)
    if _NONE in kinds and None in features:
        odd.update(i for i, (f, p) in enumerate(zip(features, predictions)) if f is None and p is None)

    dead: list[tuple[int, DecodeError]] = []
    if odd:
        gone = set()
        for i in sorted(odd):
            fields = decode_fields(values[i], max_bytes=max_bytes, record_timestamp_ms=record_times[i],
                                   max_text_chars=max_text_chars)
            if type(fields) is DecodeError:
                dead.append((i, fields))
                gone.add(i)
                continue
            models[i], versions[i], event_ids[i], times[i], features[i], predictions[i] = fields  # type: ignore[misc]
        if gone:
            keep = [i for i in range(n) if i not in gone]
            pick = (lambda xs: [xs[i] for i in keep])
            return DecodedBatch(keep, pick(models), pick(versions), pick(event_ids), pick(times), pick(features),
                                pick(predictions)), dead
    return DecodedBatch(list(range(n)), models, versions, event_ids, times, features, predictions), dead


def _strings(values: list, odd: set[int], *, allow_none: bool) -> None:
    """Records whose field is not a string (nor absent, when ``allow_none``) are odd; their value
    becomes a valid placeholder so the batch checks can go on (the record is decoded on its own)."""
    kinds = set(map(type, values))
    if kinds == {str} or (allow_none and kinds <= {str, _NONE}):
        return
    for i, v in enumerate(values):
        if type(v) is not str and not (allow_none and v is None):
            values[i] = "-"
            odd.add(i)


def _name_ok(name: object) -> bool:
    return type(name) is str and 0 < len(name) <= _MAX_NAME and is_utf8(name)  # type: ignore[arg-type]
