"""What the pipeline's outputs look like as Kafka records: key, value bytes and headers.

Pure (no I/O): the worker produces exactly what these functions return, so the
whole path from a consumed record to the bytes published can be tested and
fuzzed without Kafka.

* :func:`encode_json` never raises on anything a record could have put into an
  output (lone surrogates, integers of any size, non-finite floats).
* :func:`dead_letter_record` bounds what it republishes: an oversized
  record's dead letter carries a prefix of its value (and of its key), with
  headers giving the original size and digest.
* Keys are the alert and summary keys of :mod:`driftline.detection.keys`:
  distinct names never share one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from driftline.contract.decode import DeadLetterReason
from driftline.contract.event import PREDICTION, SourceRecord
from driftline.detection import keys
from driftline.detection.keys import OUTPUTS_SOURCE

__all__ = [
    "DEADLETTER_HEADERS", "OutputRecord", "PROCESSING_ERROR", "alert_record", "summary_record",
    "dead_letter_record", "encode_json", "alert_key", "summary_key",
]

#: Dead-letter reason of a record whose processing raised (the worker isolated it).
PROCESSING_ERROR = DeadLetterReason.PROCESSING_ERROR

#: Headers added to every dead letter (beside the record's own headers).
DEADLETTER_HEADERS = (
    "driftline.reason", "driftline.error", "driftline.source.topic",
    "driftline.source.partition", "driftline.source.offset", "driftline.source.timestamp",
)

#: Longest dead-letter value republished as it is; longer ones carry this many bytes of prefix.
DEAD_LETTER_VALUE_BYTES = 64 * 1024
#: Longest text of a header value (the error detail).
HEADER_TEXT_CHARS = 1000
#: Longest dead-letter key republished as it is (longer ones: a prefix, with driftline.key.* headers).
DEAD_LETTER_KEY_BYTES = 16 * 1024
#: Room for the record's own headers on its dead letter (names and values together).
DEAD_LETTER_HEADER_BYTES = 64 * 1024


class OutputRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _clean(value: Any) -> Any:
    """A copy of ``value`` that orjson can encode: strings made valid UTF-8, huge integers as strings."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _clean(str(value))


def encode_json(value: Any) -> bytes:
    """JSON bytes of an output record; never raises on what a record could have put into it."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_clean(value))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


_OUTPUT_KINDS = ("prediction_drift", "concept_drift", "output_quality", "version_divergence")


def alert_key(alert: Mapping[str, Any]) -> str:
    """The alert key of an alert record (its Kafka key, as text), from its fields.

    Records written before alerts had a ``source`` are read as the worker
    wrote them: outputs for the kinds about outputs, else by the name.

    The key is the incident key (:func:`driftline.detection.keys.incident_key`): one per feature and kind,
    plus the check for data and output quality.  A record without a ``kind`` (none is written so) reads as
    data drift.

    >>> alert_key({"model": "m/x", "model_version": "v3", "feature": "amount", "source": "features",
    ...            "kind": "data_drift", "detector": "psi"})
    'm%2Fx/v3/amount/data_drift'
    """
    feature = str(alert.get("feature", ""))
    source = alert.get("source")
    if not isinstance(source, str):
        output = alert.get("kind") in _OUTPUT_KINDS or feature == PREDICTION or feature.startswith(PREDICTION + ".")
        source = OUTPUTS_SOURCE if output else "features"
    kind = alert.get("kind")
    return keys.incident_key(str(alert.get("model", "")), str(alert.get("model_version", "")), source, feature,
                             kind if isinstance(kind, str) and kind else "data_drift", str(alert.get("detector", "")))


def alert_record(alert: dict[str, object]) -> tuple[bytes, bytes]:
    """Key and value of an alert record."""
    return _utf8(alert_key(alert)), encode_json(alert)


def summary_key(summary: Mapping[str, Any]) -> str:
    """``model/model_version/feature`` for feature summaries, ``model/model_version/performance`` and
    ``model/champion..challenger/comparison`` for the others (components encoded, see
    :mod:`driftline.detection.keys`)."""
    kind = summary.get("type")
    model = str(summary.get("model", ""))
    if kind == "performance_summary":
        return keys.performance_key(model, str(summary.get("model_version", "")))
    if kind == "version_comparison":
        return keys.comparison_key(model, str(summary.get("champion", "")), str(summary.get("challenger", "")))
    return keys.summary_key(model, str(summary.get("model_version", "")), str(summary.get("source", "features")),
                            str(summary.get("feature", "")))


def summary_record(summary: dict[str, object]) -> tuple[bytes, bytes]:
    """Key and value of a window summary (key: :func:`summary_key`)."""
    return _utf8(summary_key(summary)), encode_json(summary)


def _truncated(name: str, data: bytes, limit: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """``data`` cut to ``limit`` bytes, and the headers saying so (nothing when it fits)."""
    if len(data) <= limit:
        return data, []
    return data[:limit], [
        (f"driftline.{name}.truncated", b"true"),
        (f"driftline.{name}.size", str(len(data)).encode()),
        (f"driftline.{name}.sha256", hashlib.sha256(data).hexdigest().encode()),
    ]


def dead_letter_record(record: SourceRecord, reason: str, detail: str, *,
                       max_value_bytes: int = DEAD_LETTER_VALUE_BYTES) -> OutputRecord:
    """The dead letter of ``record``: its key, its value and headers, and reason headers.

    Bounded whatever the record: a value longer than ``max_value_bytes`` is cut
    to that prefix, with ``driftline.value.truncated`` / ``.size`` / ``.sha256``
    headers; a key longer than :data:`DEAD_LETTER_KEY_BYTES` likewise
    (``driftline.key.*``); the record's own headers are kept while they fit in
    :data:`DEAD_LETTER_HEADER_BYTES` together (``driftline.headers.dropped``
    counts the others).
    """
    headers: list[tuple[str, bytes]] = []
    room = DEAD_LETTER_HEADER_BYTES
    dropped = 0
    for k, v in record.headers:
        name = _utf8(str(k)).decode("utf-8")
        data = v if isinstance(v, bytes) else b""
        size = len(name) + len(data)
        if size > room:
            dropped += 1
            continue
        room -= size
        headers.append((name, data))
    headers += [
        ("driftline.reason", _utf8(reason)),
        ("driftline.error", _utf8(detail[:HEADER_TEXT_CHARS])),
        ("driftline.source.topic", _utf8(record.topic)),
        ("driftline.source.partition", str(record.partition).encode()),
        ("driftline.source.offset", str(record.offset).encode()),
        ("driftline.source.timestamp", str(record.timestamp_ms if record.timestamp_ms is not None else "").encode()),
    ]
    if dropped:
        headers.append(("driftline.headers.dropped", str(dropped).encode()))
    value = record.value
    if value is not None:
        value, extra = _truncated("value", value, max_value_bytes)
        headers += extra
    key = record.key
    if key is not None:
        key, extra = _truncated("key", key, DEAD_LETTER_KEY_BYTES)
        headers += extra
    return OutputRecord(key, value, headers)
