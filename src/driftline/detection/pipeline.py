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
from operator import itemgetter, sub
from typing import Callable, Iterable, Sequence

import numpy as np

from driftline import collector
from driftline.contract.decode import DecodeError, decode_batch, flatten_prediction
from driftline.contract.event import MAX_EVENT_MS, InferenceEvent, SourceRecord, build
from driftline.contract.label import LabelEvent, decode_label
from driftline.detection.alerts import AlertBook
from driftline.detection.findings import Finding, Kind, Severity, Source, WindowSpan
from driftline.detection.keys import incident_key
from driftline.detection.monitor import Check, EventBlock, ModelMonitor, process_blocks
from driftline.detection.outcomes import OutcomeMonitor, OutcomeOutput, OutcomeSettings
from driftline.detection.settings import MonitorSettings
from driftline.reference.profile import ReferenceProfile
from driftline.state.checkpoint import PartitionState

__all__ = ["Pipeline", "PipelineSettings", "BatchResult", "DeadLetter"]

OVERFLOW_MODEL = "model"
OVERFLOW_FEATURE = "feature"
#: the ``feature`` of findings about a record's event time (``source`` ``record``)
TIMESTAMP = "timestamp"


def _ms(clock: float | None) -> int | None:
    return None if clock is None else int(clock)


def _skew(skewed: dict, key: object, rec: SourceRecord, sent_ms: int, used_ms: int) -> None:
    entry = skewed.get(key)
    if entry is None:
        skewed[key] = [1, rec, sent_ms, used_ms]
    else:
        entry[0] += 1


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    monitor: MonitorSettings
    max_models: int = 100
    max_record_bytes: int = 1_000_000
    cooldown_seconds: float = 300.0
    resolve_after_seconds: float = 600.0
    #: feature incidents of one model version opening within this span of each other share an incident_id
    incident_group_seconds: float = 300.0
    #: an open incident is re-announced (a firing record with reminder: true) every this span; 0 = never
    reminder_seconds: float = 0.0
    #: an event time further ahead of the record's Kafka timestamp is replaced by it (a finding); 0 = off
    max_event_time_skew_seconds: float = 3600.0
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
                                resolve_after_seconds=settings.resolve_after_seconds,
                                group_seconds=settings.incident_group_seconds,
                                reminder_seconds=settings.reminder_seconds)
        #: alerts caused between batches (a new reference closing incidents), published with the next batch
        self._pending: list[dict[str, object]] = []
        #: model versions with monitors, and their model names; models that only have outcome monitors
        #: (labels of a model without inference records here); together they count under max_models
        self._models: set[tuple[str, str]] = set()
        self._model_names: set[str] = set()
        self._label_models: set[str] = set()
        #: model -> newest event time of its records and findings: the clock its alert keys resolve by
        self._clocks: dict[str, float] = {}
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
        self._switched(key, profile)
        return True

    def _switched(self, key: tuple[str, str], profile: ReferenceProfile | None) -> None:
        """Monitors of a model version compare with ``profile`` from now on; its open drift incidents close."""
        monitors = [m for (_, _, model, version), m in self.monitors.items() if (model, version) == key]
        for monitor in monitors:
            monitor.use_reference(profile)
        if monitors:
            self._pending.extend(self.alerts.close_model(key[0], key[1], self._clocks.get(key[0])))

    def remove_reference(self, model: str, model_version: str) -> bool:
        """Go back to warm-up references for a model version; False if it had no profile."""
        if self.references.pop((model, model_version), None) is None:
            return False
        self._switched((model, model_version), None)
        return True

    @property
    def model_count(self) -> int:
        return len(self._models)

    @property
    def feature_count(self) -> int:
        return sum(len(m.features) for m in self.monitors.values())

    def process(self, records: Sequence[SourceRecord]) -> BatchResult:
        """Decode and monitor a batch of records; return everything it caused.

        Never raises on what a record carries: whatever breaks the contract is a
        dead letter, whatever breaks a value a data-quality finding.  (Values
        near a double's limits can overflow statistics to inf / NaN: numpy's
        warnings about it are silenced, the summaries show such statistics as
        null.)
        """
        with np.errstate(all="ignore"), collector.paused():
            return self._process(records)

    def _process(self, records: Sequence[SourceRecord]) -> BatchResult:
        result = BatchResult()
        max_bytes = self.settings.max_record_bytes
        max_text = self.settings.monitor.max_category_chars
        skew_ms = self.settings.max_event_time_skew_seconds * 1000.0
        outcome_settings = self.settings.outcomes
        labels_topic = outcome_settings.labels_topic if outcome_settings is not None else None
        #: (position in the batch, dead letter): they go out in batch order
        dead: list[tuple[int, DeadLetter]] = []
        # what the outcome monitors see, in batch order: (position, record, label or event)
        outcome_items: list[tuple[int, SourceRecord, object]] = []
        #: route (or label model) -> [records whose event time was too far ahead, the first of them, its event time]
        skewed: dict[object, list] = {}
        # Nothing real happens further ahead of this worker's clock than the skew: an event time (or a
        # Kafka timestamp, which producers set too) beyond it would move the model's clock for good.
        now_ms = int(self._clock() * 1000.0)
        future_ms = now_ms + skew_ms if skew_ms else MAX_EVENT_MS
        latest_ok = min(MAX_EVENT_MS, future_ms)
        stamps = [r[3] for r in records]
        if stamps and (None in stamps or min(stamps) < 0 or max(stamps) > latest_ok):  # type: ignore[type-var]
            # a Kafka timestamp no event time can have: as if it had none
            stamps = [ts if ts is not None and 0 <= ts <= latest_ok else None for ts in stamps]

        positions: list[int] | None = None  # of the inference records (None: all of them)
        if labels_topic is not None and any(r[0] == labels_topic for r in records):
            positions = []
            for at, rec in enumerate(records):
                if rec[0] != labels_topic:
                    positions.append(at)
                    continue
                ts = stamps[at]
                label = decode_label(rec[5], max_bytes=max_bytes, record_timestamp_ms=ts, max_text_chars=max_text)
                if type(label) is DecodeError:
                    dead.append((at, DeadLetter(rec, label.reason, label.detail)))
                    continue
                if skew_ms and label[4] is not None and (label[4] > future_ms or ts is not None and label[4] - ts > skew_ms):
                    used = ts if ts is not None else _ms(self._clocks.get(label[0]))  # the model's clock, not moved
                    _skew(skewed, label[0], rec, label[4], used)
                    label = label._replace(timestamp_ms=used)
                outcome_items.append((at, rec, label))
        events = records if positions is None else [records[at] for at in positions]
        ev_stamps = stamps if positions is None else [stamps[at] for at in positions]
        decoded, failed = decode_batch([r[5] for r in events], ev_stamps, max_bytes=max_bytes, max_text_chars=max_text)
        for i, error in failed:
            dead.append((i if positions is None else positions[i], DeadLetter(events[i], error.reason, error.detail)))
        index, models, versions, times = decoded.index, decoded.models, decoded.versions, decoded.times
        if failed:
            events = [events[i] for i in index]
            ev_stamps = [ev_stamps[i] for i in index]
        topics = [r[0] for r in events]
        partitions = [r[1] for r in events]
        # Keep per-(partition, model) order.
        if len(set(models)) == 1 and len(set(versions)) == 1 and len(set(partitions)) == 1 and len(set(topics)) == 1:
            routes: dict[tuple[str, int, str, str], list[int] | None] = {(topics[0], partitions[0], models[0], versions[0]): None}
        else:
            routes = {}
            for k, key in enumerate(zip(topics, partitions, models, versions)):
                rows = routes.get(key)
                if rows is None:
                    routes[key] = [k]
                else:
                    rows.append(k)
        if skew_ms and times and (None in times or None in ev_stamps or max(times) > future_ms  # type: ignore[type-var]
                                  or max(map(sub, times, ev_stamps)) > skew_ms):  # type: ignore[arg-type]
            single = next(iter(routes)) if len(routes) == 1 else None
            for k, (t, ts) in enumerate(zip(times, ev_stamps)):
                if t is not None and (t > future_ms or ts is not None and t - ts > skew_ms):
                    # too far ahead of the record's own timestamp (or of this worker's clock): that is its event time instead
                    used = ts if ts is not None else _ms(self._clocks.get(models[k]))  # the model's clock, not moved
                    key = single or (topics[k], partitions[k], models[k], versions[k])
                    _skew(skewed, key, events[k], t, used)
                    times[k] = used
        if outcome_settings is not None:
            predictions = decoded.predictions
            for k, p in enumerate(predictions):
                if p is not None:
                    outcome_items.append((index[k] if positions is None else positions[index[k]], events[k], build(
                        InferenceEvent, (models[k], versions[k], decoded.event_ids[k], times[k], decoded.features[k],
                                         flatten_prediction(p)))))
        if dead:
            dead.sort(key=itemgetter(0))
            result.dead_letters.extend(d for _, d in dead)

        offsets = [r[2] for r in events]
        newest = result.event_time_ms
        work: list[tuple[ModelMonitor, EventBlock]] = []
        admitted: list[tuple[tuple[str, int, str, str], ModelMonitor, int, int | None]] = []
        for key, rows in routes.items():
            topic, partition, model, version = key
            if rows is None:
                block = EventBlock(offsets, times, decoded.features, decoded.predictions)
            else:
                pick = itemgetter(*rows)
                block = (EventBlock([offsets[rows[0]]], [times[rows[0]]], [decoded.features[rows[0]]],
                                    [decoded.predictions[rows[0]]]) if len(rows) == 1 else
                         EventBlock(list(pick(offsets)), list(pick(times)), list(pick(decoded.features)),
                                    list(pick(decoded.predictions))))
            stamped = block.times
            latest = (max(stamped) if None not in stamped else
                      max((t for t in stamped if t is not None), default=None))  # type: ignore[type-var]
            if latest is not None and latest > newest.get((topic, partition), -1):
                newest[(topic, partition)] = latest
            monitor = self._monitor(key)
            if monitor is None:
                result.overflow[OVERFLOW_MODEL] += len(block)
                continue
            work.append((monitor, block))
            admitted.append((key, monitor, len(block), latest))

        outputs = process_blocks(work)
        for (key, monitor, count, latest), out in zip(admitted, outputs):
            topic, partition, model, version = key
            if latest is not None:
                if monitor.newest_ms is None or latest > monitor.newest_ms:
                    monitor.newest_ms = latest
                self._advance(model, latest)
            result.events[(model, topic)] += count
            if key in skewed:
                result.quality[(model, TIMESTAMP, Check.EVENT_TIME_SKEW)] += skewed[key][0]
                self._alert([self._skew_finding(model, version, *skewed[key])], result)
            if out.overflow_features:
                result.overflow[OVERFLOW_FEATURE] += out.overflow_features
            for (feature, check), n in out.quality_counts.items():
                result.quality[(model, feature, check)] += n
            self._monitored(model, version, out, result)

        if outcome_items:
            if positions is not None:  # labels and inferences: back in batch order
                outcome_items.sort(key=itemgetter(0))
            self._outcomes([(rec, item) for _, rec, item in outcome_items], result, skewed)

        if self._clocks:
            result.alerts.extend(self.alerts.tick(self._clocks))
        if self._pending:  # taken only by a batch that went through (a failed one is processed again)
            result.alerts[:0] = self._pending
            self._pending = []
        return result

    def _skew_finding(self, model: str, version: str, count: int, rec: SourceRecord, sent_ms: int, ts: int | None) -> Finding:
        """The data-quality finding of records whose event time was too far ahead of their Kafka timestamp
        (or of this worker's clock); ``ts`` is the event time they were given instead."""
        skew_s = self.settings.max_event_time_skew_seconds
        ahead = (sent_ms - (ts if ts is not None else self._clock() * 1000.0)) / 1000.0
        return Finding(
            model=model, model_version=version, feature=TIMESTAMP, source=Source.RECORD, kind=Kind.DATA_QUALITY,
            detector=Check.EVENT_TIME_SKEW, severity=Severity.WARNING, statistic=ahead, threshold=skew_s,
            summary=(f"[{model} {version}] {count} record(s) had a timestamp more than {skew_s:g} s ahead of their "
                     f"Kafka timestamp or of the worker's clock (the first, at offset {rec.offset}, by {ahead:.0f} s); "
                     f"their Kafka timestamp (or the model's latest event time) is used instead. Check the producer's clock and time unit."),
            window=WindowSpan(rec.topic, rec.partition, rec.offset, rec.offset, ts, ts), event_time_ms=ts,
            details={"records": count},
        )

    def _outcomes(self, items: list[tuple[SourceRecord, object]], result: BatchResult, skewed: dict) -> None:
        """Labels and inferences (in batch order) through the outcome monitor of their (partition, model)."""
        out = OutcomeOutput()
        for rec, item in items:
            is_label = type(item) is LabelEvent
            model = item[0]  # type: ignore[index]
            if not is_label and (model, item[1]) not in self._models:  # type: ignore[index]
                continue  # a model version beyond max_models (counted as overflow with its events)
            key = (rec.partition, model)
            monitor = self.outcomes.get(key)
            if monitor is None:
                if not self._admit_outcome(model):  # only labels get here: a model beyond max_models
                    result.overflow[OVERFLOW_MODEL] += 1
                    continue
                assert self.settings.outcomes is not None
                monitor = self.outcomes[key] = OutcomeMonitor(topic=rec.topic, partition=rec.partition, model=model,
                                                              settings=self.settings.outcomes)
            if is_label:
                monitor.label(item, rec.offset, rec.topic, out)  # type: ignore[arg-type]
                if model in skewed:  # labels too far ahead: counted (a label has no model version to alert on)
                    result.quality[(model, TIMESTAMP, Check.EVENT_TIME_SKEW)] += skewed.pop(model)[0]
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

    def _monitored(self, model: str, version: str, out, result: BatchResult) -> None:
        """A monitor's findings and health reports through the incidents, in order; then its summaries
        show the incidents open on their features."""
        done = 0
        for before, source, feature, kind, matches, time_ms, span in out.health:
            if before > done:
                self._alert(out.findings[done:before], result)
                done = before
            caused = self.alerts.health(incident_key(model, version, source, feature, kind, kind), matches, time_ms, span)
            result.alerts.extend(caused)
        self._alert(out.findings[done:], result)
        book = self.alerts
        if len(book):
            for summary in out.summaries:
                source = str(summary.get("source"))
                kind = Kind.PREDICTION_DRIFT if source == Source.OUTPUTS else Kind.DATA_DRIFT
                incident = book.open_incident(incident_key(model, version, source, str(summary["feature"]), kind, kind))
                if incident is not None:
                    summary["incident"] = incident
        result.summaries.extend(out.summaries)

    def _alert(self, findings: list, result: BatchResult) -> None:
        """Findings through the alert lifecycle, in event time."""
        for finding in findings:
            now = finding.event_time_ms if finding.event_time_ms is not None else self._clock() * 1000.0
            self._advance(finding.model, now)
            caused = self.alerts.observe(finding, now)
            if not caused or caused[-1]["status"] != "firing":
                result.suppressed_findings += 1
            result.alerts.extend(caused)

    def _advance(self, model: str, now_ms: float) -> None:
        """Move ``model``'s event-time clock (the one its alert keys resolve by) forward to ``now_ms``."""
        current = self._clocks.get(model)
        if current is None or now_ms > current:
            self._clocks[model] = now_ms

    def _used_slots(self, model: str) -> int:
        """Models counted under ``max_models`` besides ``model``'s label-only slot."""
        return len(self._models) + len(self._label_models) - (model in self._label_models)

    def _monitor(self, key: tuple[str, int, str, str]) -> ModelMonitor | None:
        monitor = self.monitors.get(key)
        if monitor is not None:
            return monitor
        topic, partition, model, version = key
        if (model, version) not in self._models:
            if self._used_slots(model) >= self.settings.max_models:
                return None
            self._models.add((model, version))
            self._model_names.add(model)
            self._label_models.discard(model)
        monitor = ModelMonitor(topic=topic, partition=partition, model=model, model_version=version,
                               settings=self.settings.monitor, reference=self.references.get((model, version)))
        self.monitors[key] = monitor
        return monitor

    def _admit_outcome(self, model: str) -> bool:
        """Whether labels of ``model`` get an outcome monitor: models without inference records here
        count under ``max_models`` too (one each), so label records cannot grow state without bound."""
        if model in self._model_names or model in self._label_models:
            return True
        if self._used_slots(model) >= self.settings.max_models:
            return False
        self._label_models.add(model)
        return True

    def drop_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget the state of partitions this worker no longer owns (monitors, outcomes, their alert keys)."""
        gone = set(partitions)
        for key in [k for k in self.monitors if (k[0], k[1]) in gone]:
            del self.monitors[key]
        for key in [k for k, m in self.outcomes.items() if (self._outcome_home(m), k[0]) in gone]:
            del self.outcomes[key]
        self.alerts.forget(gone)
        self._recount()

    def _recount(self) -> None:
        self._models = {(k[2], k[3]) for k in self.monitors}
        self._model_names = {m for m, _ in self._models}
        self._label_models = {m for _, m in self.outcomes} - self._model_names
        self._clocks = {m: t for m, t in self._clocks.items() if m in self._model_names or m in self._label_models}

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
        ``watermark_ms`` is the newest clock of the partition's models (for information: after a
        restore, each model's clock comes from its monitors).
        """
        monitors = [m for (t, p, _, _), m in self.monitors.items() if (t, p) == (topic, partition)]
        return PartitionState(
            topic=topic, partition=partition, offset=offset,
            monitors=monitors,
            outcomes=[m for (p, _), m in self.outcomes.items() if p == partition and self._outcome_home(m) == topic],
            alerts=self.alerts.export(topic, partition),
            watermark_ms=max((t for m, t in self._clocks.items()
                              if any(x.model == m for x in monitors)), default=None),
            written_at_ms=now_ms,
        )

    def restore(self, state: PartitionState) -> None:
        """Take over the state of a partition from its checkpoint (replacing what is held for it)."""
        self.drop_partitions([(state.topic, state.partition)])
        switched = set()
        for monitor in state.monitors:
            profile = self.references.get((monitor.model, monitor.model_version))
            if monitor.profile != (profile.id if profile is not None else None):  # the id the checkpoint names
                switched.add((monitor.model, monitor.model_version))
            monitor.reattach(self.settings.monitor, profile)
            self.monitors[(monitor.topic, monitor.partition, monitor.model, monitor.model_version)] = monitor
            newest = getattr(monitor, "newest_ms", None)
            if newest is not None:
                self._advance(monitor.model, newest)
        if self.settings.outcomes is not None:
            for outcome in state.outcomes:
                outcome.reattach(self.settings.outcomes)
                self.outcomes[(outcome.partition, outcome.model)] = outcome
        self.alerts.merge(state.alerts)
        for model, version in sorted(switched):  # the reference changed while the state was in a checkpoint
            self._pending.extend(self.alerts.close_model(model, version, self._clocks.get(model)))
        self._recount()
