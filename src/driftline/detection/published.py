"""What the pipeline's outputs look like as Kafka records: key, value bytes and headers.

Pure (no I/O): the worker produces exactly what these functions return, so the
whole path from a consumed record to the bytes published can be tested and
fuzzed without Kafka.

* :func:`encode_json` never raises on anything a record could have put into an
  output (lone surrogates, integers of any size, non-finite floats).
* :func:`dead_letter_record` bounds the value it republishes: an oversized
  record's dead letter carries a prefix, with headers giving the original size
  and digest.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, NamedTuple

import orjson

from driftline.contract.decode import DeadLetterReason
from driftline.contract.event import SourceRecord

__all__ = [
    "DEADLETTER_HEADERS", "OutputRecord", "PROCESSING_ERROR", "alert_record", "summary_record",
    "dead_letter_record", "encode_json",
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


def alert_record(alert: dict[str, object]) -> tuple[bytes, bytes]:
    """Key and value of an alert record."""
    key = f"{alert['model']}/{alert['model_version']}/{alert['feature']}/{alert['detector']}"
    return _utf8(key), encode_json(alert)


def summary_record(summary: dict[str, object]) -> tuple[bytes, bytes]:
    """Key and value of a window summary: ``model/model_version/feature`` for feature summaries,
    ``model/model_version/performance`` and ``model/champion..challenger/comparison`` for the others."""
    kind = summary.get("type")
    if kind == "performance_summary":
        key = f"{summary['model']}/{summary['model_version']}/performance"
    elif kind == "version_comparison":
        key = f"{summary['model']}/{summary['champion']}..{summary['challenger']}/comparison"
    else:
        key = f"{summary['model']}/{summary['model_version']}/{summary['feature']}"
    return _utf8(key), encode_json(summary)


def dead_letter_record(record: SourceRecord, reason: str, detail: str, *,
                       max_value_bytes: int = DEAD_LETTER_VALUE_BYTES) -> OutputRecord:
    """The dead letter of ``record``: its key, its value (a prefix when longer than
    ``max_value_bytes``, with ``driftline.value.*`` headers saying so) and reason headers."""
    value = record.value
    headers: list[tuple[str, bytes]] = [(str(k), v if isinstance(v, bytes) else b"") for k, v in record.headers]
    headers += [
        ("driftline.reason", _utf8(reason)),
        ("driftline.error", _utf8(detail[:HEADER_TEXT_CHARS])),
        ("driftline.source.topic", _utf8(record.topic)),
        ("driftline.source.partition", str(record.partition).encode()),
        ("driftline.source.offset", str(record.offset).encode()),
        ("driftline.source.timestamp", str(record.timestamp_ms if record.timestamp_ms is not None else "").encode()),
    ]
    if value is not None and len(value) > max_value_bytes:
        headers += [
            ("driftline.value.truncated", b"true"),
            ("driftline.value.size", str(len(value)).encode()),
            ("driftline.value.sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
        value = value[:max_value_bytes]
    return OutputRecord(record.key, value, headers)
