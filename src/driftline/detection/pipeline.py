"""Source records in, alerts / window summaries / dead letters out.

The pipeline is the whole detection core behind one call, with no I/O: the
Kafka worker hands it each consumed batch and publishes what comes back; a file
replay can do the same.  It decodes records, routes events to the monitor of
their (topic, partition, model, model_version), applies the caps that bound
memory and metric cardinality, and runs the alert lifecycle.  Reference
profiles are handed to it with :meth:`Pipeline.set_reference` (at start and
whenever a new one arrives): monitors of that model version switch to it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from driftline.contract.decode import DecodeError, decode_event
from driftline.contract.label import LabelEvent, decode_label
from driftline.contract.event import SourceRecord, build
from driftline.detection.alerts import AlertBook
from driftline.detection.monitor import LocatedEvent, ModelMonitor
from driftline.detection.outcomes import LabelOutcome, OutcomeMonitor, OutcomeOutput, OutcomeSettings
from driftline.detection.settings import MonitorSettings
from driftline.reference.profile import ReferenceProfile
from driftline.state.checkpoint import PartitionState

__all__ = ["Pipeline", "PipelineSettings", "BatchResult", "DeadLetter"]

OVERFLOW_MODEL = "model"
OVERFLOW_FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    monitor: MonitorSettings
    max_models: int = 100
    max_record_bytes: int = 1_000_000
    cooldown_seconds: float = 300.0
    resolve_after_seconds: float = 600.0
    #: labels, performance, output rules, champion / challenger (None: off)
    outcomes: OutcomeSettings | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str
    detail: str


@dataclass(slots=True)
class BatchResult:
    alerts: list[dict[str, object]] = field(default_factory=list)
    summaries: list[dict[str, object]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: (model, topic) -> events decoded
    events: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (model, feature, check) -> data-quality findings
    quality: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: what -> events or features dropped by a cap
    overflow: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: (topic, partition) -> newest event time (ms) in the batch
    event_time_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    suppressed_findings: int = 0
    #: (model, outcome) -> labels (and unlabeled inferences) by outcome
    labels: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (model, rule) -> output-rule violations
    violations: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


class Pipeline:
    """The detection core of one worker."""

    def __init__(self, settings: PipelineSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.monitors: dict[tuple[str, int, str, str], ModelMonitor] = {}
        self.alerts = AlertBook(cooldown_seconds=settings.cooldown_seconds,
                                resolve_after_seconds=settings.resolve_after_seconds)
        self._models: set[tuple[str, str]] = set()
        self._watermark_ms: float | None = None
        #: (model, model_version) -> the profile its monitors compare with
        self.references: dict[tuple[str, str], ReferenceProfile] = {}
        #: (partition, model) -> labels and outputs of that model on that partition
        self.outcomes: dict[tuple[int, str], OutcomeMonitor] = {}

    def set_reference(self, profile: ReferenceProfile) -> bool:
        """Use ``profile`` for its model version from the next record on; False if it is already in use."""
        key = (profile.model, profile.model_version)
        current = self.references.get(key)
        if current is not None and current.id == profile.id:
            return False
        self.references[key] = profile
        for (_, _, model, version), monitor in self.monitors.items():
            if (model, version) == key:
                monitor.use_reference(profile)
        return True

    def remove_reference(self, model: str, model_version: str) -> bool:
        """Go back to warm-up references for a model version; False if it had no profile."""
        if self.references.pop((model, model_version), None) is None:
            return False
        for (_, _, m, v), monitor in self.monitors.items():
            if (m, v) == (model, model_version):
                monitor.use_reference(None)
        return True

    @property
    def model_count(self) -> int:
        return len(self._models)

    @property
    def feature_count(self) -> int:
        return sum(len(m.features) for m in self.monitors.values())

    def process(self, records: Sequence[SourceRecord]) -> BatchResult:
        result = BatchResult()
        max_bytes = self.settings.max_record_bytes
        # Decode, keeping per-(partition, model) order.
        routed: dict[tuple[str, int, str, str], list[LocatedEvent]] = {}
        newest: dict[tuple[str, int], int] = result.event_time_ms
        last_key = None
        bucket: list[LocatedEvent] = []
        dead = result.dead_letters
        outcome_settings = self.settings.outcomes
        labels_topic = outcome_settings.labels_topic if outcome_settings is not None else None
        # what the outcome monitors see, in batch order: (record, label or event)
        outcome_items: list[tuple[SourceRecord, object]] = []
        for rec in records:
            topic, partition, offset, ts, _, value, _ = rec
            if topic == labels_topic:
                label = decode_label(value, max_bytes=max_bytes, record_timestamp_ms=ts)
                if type(label) is DecodeError:
                    dead.append(DeadLetter(rec, label.reason, label.detail))
                else:
                    outcome_items.append((rec, label))
                continue
            decoded = decode_event(value, max_bytes=max_bytes, record_timestamp_ms=ts)
            if type(decoded) is DecodeError:
                dead.append(DeadLetter(rec, decoded.reason, decoded.detail))
                continue
            key = (topic, partition, decoded[0], decoded[1])
            if key != last_key:
                bucket = routed.get(key)  # type: ignore[assignment]
                if bucket is None:
                    bucket = routed[key] = []
                last_key = key
            bucket.append(build(LocatedEvent, (offset, decoded)))
            if outcome_settings is not None and decoded[5]:
                outcome_items.append((rec, decoded))
            event_ms = decoded[3]
            if event_ms is not None and event_ms > newest.get((topic, partition), -1):
                newest[(topic, partition)] = event_ms

        for key, events in routed.items():
            topic, _, model, version = key
            monitor = self._monitor(key)
            if monitor is None:
                result.overflow[OVERFLOW_MODEL] += len(events)
                continue
            result.events[(model, topic)] += len(events)
            out = monitor.process(events)
            result.summaries.extend(out.summaries)
            if out.overflow_features:
                result.overflow[OVERFLOW_FEATURE] += out.overflow_features
            for (feature, check), n in out.quality_counts.items():
                result.quality[(model, feature, check)] += n
            self._alert(out.findings, result)

        if outcome_items:
            self._outcomes(outcome_items, result)

        for t in result.event_time_ms.values():
            self._advance(t)
        if self._watermark_ms is not None:
            result.alerts.extend(self.alerts.tick(self._watermark_ms))
        return result

    def _outcomes(self, items: list[tuple[SourceRecord, object]], result: BatchResult) -> None:
        """Labels and inferences (in batch order) through the outcome monitor of their (partition, model)."""
        out = OutcomeOutput()
        for rec, item in items:
            is_label = type(item) is LabelEvent
            model = item[0]  # type: ignore[index]
            key = (rec.partition, model)
            monitor = self.outcomes.get(key)
            if monitor is None:
                known = {m for m, _ in self._models}
                if model not in known and len(known) >= self.settings.max_models:
                    if is_label:  # a label of a model this worker cannot monitor
                        out.labels[(model, LabelOutcome.UNMATCHED)] = out.labels.get((model, LabelOutcome.UNMATCHED), 0) + 1
                    continue
                assert self.settings.outcomes is not None
                monitor = self.outcomes[key] = OutcomeMonitor(topic=rec.topic, partition=rec.partition, model=model,
                                                              settings=self.settings.outcomes)
            if is_label:
                monitor.label(item, rec.offset, rec.topic, out)  # type: ignore[arg-type]
            else:
                _, version, event_id, time_ms, _, outputs = item  # type: ignore[misc]
                monitor.inference(version, event_id, time_ms, outputs, rec.offset, rec.topic, out)
            # after every record, so windows and expiry never depend on how the stream was batched
            monitor.close(out)
        for key, n in out.labels.items():
            result.labels[key] += n
        for key, n in out.violations.items():
            result.violations[key] += n
        result.summaries.extend(out.summaries)
        self._alert(out.findings, result)

    def _alert(self, findings: list, result: BatchResult) -> None:
        """Findings through the alert lifecycle, in event time."""
        for finding in findings:
            now = finding.event_time_ms if finding.event_time_ms is not None else self._clock() * 1000.0
            self._advance(now)
            caused = self.alerts.observe(finding, now)
            if not caused or caused[-1]["status"] != "firing":
                result.suppressed_findings += 1
            result.alerts.extend(caused)

    def _advance(self, now_ms: float) -> None:
        if self._watermark_ms is None or now_ms > self._watermark_ms:
            self._watermark_ms = now_ms

    def _monitor(self, key: tuple[str, int, str, str]) -> ModelMonitor | None:
        monitor = self.monitors.get(key)
        if monitor is not None:
            return monitor
        topic, partition, model, version = key
        if (model, version) not in self._models:
            if len(self._models) >= self.settings.max_models:
                return None
            self._models.add((model, version))
        monitor = ModelMonitor(topic=topic, partition=partition, model=model, model_version=version,
                               settings=self.settings.monitor, reference=self.references.get((model, version)))
        self.monitors[key] = monitor
        return monitor

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the state of partitions this worker no longer owns (monitors, outcomes, their alert keys)."""
        gone = set(partitions)
        for key in [k for k in self.monitors if (k[0], k[1]) in gone]:
            del self.monitors[key]
        for key in [k for k, m in self.outcomes.items() if (self._outcome_home(m), k[0]) in gone]:
            del self.outcomes[key]
        self.alerts.forget(gone)
        self._models = {(k[2], k[3]) for k in self.monitors}

    # ------------------------------------------------------------ checkpoints
    def _outcome_home(self, monitor: OutcomeMonitor) -> str:
        """The topic whose partition's checkpoint carries an outcome monitor: the labels topic when
        labels are on (its partition is joined with the same-numbered input partition), else the
        input topic the monitor reads."""
        outcomes = self.settings.outcomes
        return outcomes.labels_topic if outcomes is not None and outcomes.labels_topic else monitor.topic

    def snapshot(self, topic: str, partition: int, offset: int, *, now_ms: int = 0) -> PartitionState:
        """The state of ``(topic, partition)`` covering every record before ``offset``.

        The objects are shared, not copied: encode the snapshot before processing more records.
        """
        return PartitionState(
            topic=topic, partition=partition, offset=offset,
            monitors=[m for (t, p, _, _), m in self.monitors.items() if (t, p) == (topic, partition)],
            outcomes=[m for (p, _), m in self.outcomes.items() if p == partition and self._outcome_home(m) == topic],
            alerts=self.alerts.export(topic, partition),
            watermark_ms=self._watermark_ms,
            written_at_ms=now_ms,
        )

    def restore(self, state: PartitionState) -> None:
        """Take over the state of a partition from its checkpoint (replacing what is held for it)."""
        self.drop_partitions([(state.topic, state.partition)])
        for monitor in state.monitors:
            monitor.reattach(self.settings.monitor, self.references.get((monitor.model, monitor.model_version)))
            self.monitors[(monitor.topic, monitor.partition, monitor.model, monitor.model_version)] = monitor
            self._models.add((monitor.model, monitor.model_version))
        if self.settings.outcomes is not None:
            for outcome in state.outcomes:
                outcome.reattach(self.settings.outcomes)
                self.outcomes[(outcome.partition, outcome.model)] = outcome
        self.alerts.merge(state.alerts)
        if state.watermark_ms is not None:
            self._advance(state.watermark_ms)
