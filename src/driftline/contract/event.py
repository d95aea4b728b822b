"""What a model server sends: one inference event per Kafka record."""

from __future__ import annotations

from typing import NamedTuple, Union

__all__ = ["FeatureValue", "InferenceEvent", "SourceRecord", "DEFAULT_MODEL_VERSION", "PREDICTION", "MAX_EVENT_MS", "build"]

FeatureValue = Union[float, int, str, bool, None]
DEFAULT_MODEL_VERSION = "unversioned"
#: The last event time (ms) accepted: 9999-12-31T23:59:59.999Z, the last moment RFC 3339 can write.
MAX_EVENT_MS = 253_402_300_799_999
PREDICTION = "prediction"


class SourceRecord(NamedTuple):
    """A record as read from Kafka (or a file row), before decoding."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


class InferenceEvent(NamedTuple):
    """A decoded inference event.

    ``features`` and ``outputs`` map names to raw JSON scalars; the prediction
    is flattened to ``prediction`` (a single output) or ``prediction.<name>``
    (named outputs), so it is monitored exactly like a feature.
    ``timestamp_ms`` is the event time: the record's ``timestamp`` field when
    present, else the Kafka record timestamp.
    """

    model: str
    model_version: str
    event_id: str | None
    timestamp_ms: int | None
    features: dict[str, object] | None
    outputs: dict[str, object] | None


#: ``build(SourceRecord, (topic, ...))`` makes one of these tuples without the
#: Python-level ``__new__`` NamedTuple generates: used on per-record hot paths.
build = tuple.__new__
