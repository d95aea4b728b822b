"""What the producer may refuse, and what the worker sends instead.

Every output record (alert, window summary, dead letter) is checked against
the limit of its topic before it is produced: the producer's
``message.max.bytes`` (librdkafka's default 1,000,000, or the ``kafka``
setting), lowered for a topic by what the broker said (its
``max.message.bytes``, read at start-up, or learned from a delivery report
that refused a record as too large).  A record over the limit is replaced by
a small ``oversized_output`` record on the same topic: what it was, its
identifying fields, its key, size and SHA-256.  Sizes are counted
uncompressed (librdkafka checks ``message.max.bytes`` that way; a broker
checks the compressed batch, so this errs on the safe side).

Also here: which Kafka errors are a record's fault (the record is replaced or
isolated) and which mean this worker was fenced by another with its
transactional id.  Pure apart from reading error codes.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from confluent_kafka import KafkaError

from driftline.detection.published import OutputRecord, encode_json

__all__ = [
    "PRODUCER_MAX_BYTES", "RECORD_MARGIN", "OVERSIZED_OUTPUT", "OutputLimits", "record_size", "oversized_output",
    "output_fields", "is_record_error", "is_size_error", "is_fenced", "producer_limit",
]

#: librdkafka's default ``message.max.bytes``.
PRODUCER_MAX_BYTES = 1_000_000
#: Bytes kept free below a limit for Kafka's own record and batch overhead (librdkafka refused a
#: 999,991-byte record at its 1,000,000 default and took a 999,951-byte one: measured).
RECORD_MARGIN = 512
#: ``type`` of the record that replaces an output Kafka would refuse.
OVERSIZED_OUTPUT = "oversized_output"
#: Longest key kept as it is in a replacement record (longer: a prefix and the digest).
KEY_BYTES = 1024
#: Longest value of a ``driftline.*`` header kept in a replacement record.
HEADER_BYTES = 1024
#: Longest text of an identifying field in a replacement record.
FIELD_CHARS = 256

#: Errors that refuse one record for what it is (its size or its bytes), not for the state of the broker.
_SIZE_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
_RECORD_ERRORS = _SIZE_ERRORS | {KafkaError.INVALID_RECORD, KafkaError._BAD_MSG}
#: This producer was fenced: another one started with the same transactional id.
_FENCED_ERRORS = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})

#: Fields of an alert or summary that say which one it was (copied, bounded, into the replacement).
_IDENTIFYING = ("type", "alert_id", "status", "kind", "detector", "severity", "model", "model_version", "feature",
                "source", "champion", "challenger", "event_time", "window")


def is_size_error(code: int) -> bool:
    return code in _SIZE_ERRORS


def is_record_error(code: int) -> bool:
    """Kafka refused this record itself (too large, invalid): replacing it can help, retrying cannot."""
    return code in _RECORD_ERRORS


def is_fenced(err: object) -> bool:
    return isinstance(err, KafkaError) and err.code() in _FENCED_ERRORS


def producer_limit(kafka_properties: Mapping[str, str]) -> int:
    """The producer's ``message.max.bytes``: the configured one, else librdkafka's default."""
    try:
        return max(1000, int(str(kafka_properties.get("message.max.bytes", PRODUCER_MAX_BYTES)).strip()))
    except ValueError:
        return PRODUCER_MAX_BYTES


def record_size(key: bytes | None, value: bytes | None, headers: Any = ()) -> int:
    """Uncompressed bytes of a record as librdkafka counts them against ``message.max.bytes`` (about)."""
    size = len(key or b"") + len(value or b"")
    for name, data in headers or ():
        size += len(str(name).encode("utf-8", "backslashreplace")) + len(data or b"") + 8
    return size


class OutputLimits:
    """The largest record each topic takes: the producer's limit, lowered per topic by what Kafka said."""

    def __init__(self, producer_bytes: int = PRODUCER_MAX_BYTES) -> None:
        self.producer_bytes = producer_bytes
        self._topics: dict[str, int] = {}
        #: (topic, key, value length) of records Kafka refused for a reason other than size
        self._refused: set[tuple[str, bytes | None, int]] = set()

    def limit(self, topic: str) -> int:
        return min(self.producer_bytes, self._topics.get(topic, self.producer_bytes))

    def set_topic(self, topic: str, max_message_bytes: int) -> None:
        """The broker's ``max.message.bytes`` of ``topic``."""
        if max_message_bytes > 0:
            self._topics[topic] = min(self._topics.get(topic, max_message_bytes), max_message_bytes)

    def fits(self, topic: str, record: OutputRecord, size: int | None = None) -> bool:
        size = record_size(*record) if size is None else size
        if size + RECORD_MARGIN > self.limit(topic):
            return False
        return not self._refused or (topic, record.key, len(record.value or b"")) not in self._refused

    def refused(self, topic: str, key: bytes | None, value: bytes | None, headers: Any, *, too_large: bool) -> None:
        """Kafka refused this record (a delivery report or a produce error): replace it next time."""
        if too_large:
            # the limit is below this size: records this large are replaced from now on
            self._topics[topic] = min(self.limit(topic), record_size(key, value, headers) + RECORD_MARGIN - 1)
        else:
            self._refused.add((topic, key, len(value or b"")))

    def forget_refused(self) -> None:
        """After a commit: the refused records were replaced, nothing more to recognise."""
        self._refused.clear()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bounded_text(text: str, chars: int = FIELD_CHARS) -> str:
    """``text``, or its prefix with a digest of the whole when longer (distinct texts stay distinct)."""
    if len(text) <= chars:
        return text
    whole = text.encode("utf-8", "backslashreplace")
    return f"{text[:chars]}…(sha256:{_digest(whole)[:16]}, {len(text)} chars)"


def _bounded(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _bounded_text(value)
    if isinstance(value, bytes):
        return _bounded_text(value.decode("utf-8", "backslashreplace"))
    if isinstance(value, Mapping) and depth < 2:
        return {_bounded_text(str(k), 64): _bounded(v, depth + 1) for k, v in list(value.items())[:16]}
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else _bounded_text(str(value))
    return _bounded_text(str(value))


def output_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The identifying fields of an alert or summary (:func:`oversized_output` bounds them)."""
    return {name: doc[name] for name in _IDENTIFYING if name in doc}


def _bounded_key(key: bytes | None) -> bytes | None:
    if key is None or len(key) <= KEY_BYTES:
        return key
    return key[:KEY_BYTES - 80] + b"...#sha256:" + _digest(key).encode()


def oversized_output(what: str, topic: str, record: OutputRecord, *, limit: int, reason: str,
                     fields: Mapping[str, Any] | None = None) -> OutputRecord:
    """A small record (a few KiB at most) that stands for ``record``, which Kafka would refuse on ``topic``.

    ``what``: alert, window_summary, performance_summary, version_comparison or dead_letter;
    ``fields``: what identifies it (see :func:`output_fields`; for a dead letter its reason and source).
    The key is kept when short, else a prefix and its digest; the value is JSON:

    >>> out = oversized_output("alert", "driftline.alerts", OutputRecord(b"m/v/f/psi", b"x" * 2_000_000, []),
    ...                        limit=1_000_000, reason="larger than the producer's message.max.bytes",
    ...                        fields={"alert_id": "a1", "model": "m"})
    >>> import orjson; doc = orjson.loads(out.value)
    >>> doc["type"], doc["output"], doc["size"], doc["fields"]["alert_id"], out.key
    ('oversized_output', 'alert', 2000009, 'a1', b'm/v/f/psi')
    """
    key, value = record.key, record.value or b""
    size = record_size(key, record.value, record.headers)
    doc = {
        "type": OVERSIZED_OUTPUT,
        "output": what,
        "topic": _bounded_text(topic),
        "key": None if key is None else _bounded_text(key.decode("utf-8", "backslashreplace")),
        "key_bytes": None if key is None else len(key),
        "key_sha256": None if key is None else _digest(key),
        "size": size,
        "value_bytes": len(value),
        "sha256": _digest(value),
        "limit": limit,
        "reason": _bounded_text(reason),
        "fields": {_bounded_text(str(k), 64): _bounded(v) for k, v in list((fields or {}).items())[:24]},
    }
    headers = [("content-type", b"application/json"), ("driftline.oversized", b"true")]
    for name, data in record.headers or ():
        # driftline's own headers (reason, source, worker) say what it was; the record's own are dropped
        if str(name).startswith("driftline.") and data is not None:
            headers.append((str(name), data[:HEADER_BYTES]))
    return OutputRecord(_bounded_key(key), encode_json(doc), headers)
