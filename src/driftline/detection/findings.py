"""What the monitors find, before the alert lifecycle decides what to publish."""

from __future__ import annotations

from dataclasses import dataclass, field

from driftline.detection.keys import incident_key

__all__ = ["Finding", "WindowSpan", "Kind", "Severity", "Source"]


class Kind:
    """Alert kinds (the ``kind`` field of an alert)."""

    DATA_DRIFT = "data_drift"
    PREDICTION_DRIFT = "prediction_drift"
    DATA_QUALITY = "data_quality"
    CONCEPT_DRIFT = "concept_drift"
    OUTPUT_QUALITY = "output_quality"
    VERSION_DIVERGENCE = "version_divergence"


class Source:
    """Where the ``feature`` of a finding lives (the ``source`` field of alerts and summaries)."""

    FEATURES = "features"
    OUTPUTS = "prediction"
    RECORD = "record"


class Severity:
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """The records behind a finding: where to look in Kafka to trace it."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    first_event_time_ms: int | None
    last_event_time_ms: int | None

    def to_dict(self) -> dict[str, object]:
        from driftline.detection.timefmt import rfc3339

        return {
            "topic": self.topic,
            "partition": self.partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "first_event_time": rfc3339(self.first_event_time_ms),
            "last_event_time": rfc3339(self.last_event_time_ms),
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector (or data-quality check) firing on one feature."""

    model: str
    model_version: str
    feature: str
    kind: str
    detector: str
    severity: str
    statistic: float
    threshold: float
    summary: str
    window: WindowSpan
    event_time_ms: int | None
    reference: str = "warmup"
    details: dict[str, object] = field(default_factory=dict)
    #: where ``feature`` lives: ``features`` (an input), ``prediction`` (a model output) or
    #: ``record`` (the record as a whole, e.g. its ``timestamp``)
    source: str = "features"

    @property
    def key(self) -> str:
        """The incident key: ``model/model_version/feature/kind`` (plus ``/check`` for data and output
        quality), components encoded so keys never collide (:func:`driftline.detection.keys.incident_key`)."""
        return incident_key(self.model, self.model_version, self.source, self.feature, self.kind, self.detector)
