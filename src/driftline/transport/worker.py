"""The Kafka worker: a thin loop between topics and the detection pipeline.

Per batch: consume → :meth:`Pipeline.process` → produce alerts, window
summaries and dead letters → wait until Kafka has them all → commit the
batch's offsets.  A crash anywhere before the commit means the batch is read
again (at-least-once); deterministic ``alert_id`` values make the repeated
alerts recognisable.  SIGTERM and SIGINT stop the loop between batches.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from operator import itemgetter
from typing import Callable

import orjson
from confluent_kafka import KafkaError, Message, TopicPartition

from driftline.config import Settings
from driftline.contract.event import SourceRecord, build
from driftline.detection.pipeline import BatchResult, Pipeline, PipelineSettings
from driftline.detection.outcomes import ModelRules, OutcomeSettings
from driftline.detection.settings import STATISTICAL_CHECKS, MonitorSettings
from driftline.errors import DeliveryError, KafkaFailure
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.server import MetricsServer
from driftline.transport import kafka
from driftline.transport.references import ReferenceFeed, ReferenceUpdate, load_profile_files

__all__ = ["Worker", "pipeline_settings", "DEADLETTER_HEADERS"]

log = logging.getLogger("driftline.worker")

#: Headers added to every dead letter (beside the record's own headers).
DEADLETTER_HEADERS = (
    "driftline.reason", "driftline.error", "driftline.source.topic",
    "driftline.source.partition", "driftline.source.offset", "driftline.source.timestamp",
)
_JSON = [("content-type", b"application/json")]

def pipeline_settings(settings: Settings) -> PipelineSettings:
    monitor = MonitorSettings.calibrated(
        false_alarm_rate=settings.false_alarm_rate,
        design_shift=settings.design_shift,
        block=settings.detector_block,
        warmup=settings.warmup,
        window_events=settings.window_events,
        window_seconds=settings.window_seconds or None,
        max_features=settings.max_features_per_model,
        max_categories=settings.max_categories,
        numeric_test=settings.numeric_window_test,
        categorical_test=settings.categorical_window_test,
        thresholds={"psi": settings.psi_threshold, "ks": settings.ks_threshold,
                    "wasserstein_sd": settings.wasserstein_threshold,
                    "jensen_shannon": settings.jensen_shannon_threshold},
    )
    outcomes = None
    if settings.labels_topic or settings.models:
        outcomes = OutcomeSettings(
            labels_topic=settings.labels_topic,
            join_window_ms=settings.join_window_seconds * 1000.0,
            max_pending=settings.join_max_pending,
            false_alarm_rate=settings.false_alarm_rate / STATISTICAL_CHECKS,
            window_events=settings.window_events,
            window_seconds=settings.window_seconds or None,
            rules={name: ModelRules(**rules.model_dump()) for name, rules in settings.models.items()},
            label_warmup=settings.label_warmup,
            block=settings.detector_block,
            window_alpha=monitor.window_alpha(1, settings.window_events or 5000),
        )
    return PipelineSettings(
        outcomes=outcomes,
        monitor=monitor,
        max_models=settings.max_models,
        max_record_bytes=settings.max_record_bytes,
        cooldown_seconds=settings.cooldown_seconds,
        resolve_after_seconds=settings.resolve_after_seconds,
    )


class Worker:
    """One member of the driftline consumer group."""

    def __init__(self, settings: Settings, *, metrics: WorkerMetrics | None = None,
                 on_alert: Callable[[dict[str, object]], None] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.pipeline = Pipeline(pipeline_settings(settings))
        for profile in load_profile_files(settings.reference_files):
            self.pipeline.set_reference(profile)
            self.metrics.reference_in_use(profile.model, profile.model_version, profile.name)
        self._references: ReferenceFeed | None = None
        self.on_alert = on_alert
        self._stop = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self._last_broker_ok = 0.0
        self._delivery_errors: list[str] = []
        self.metrics_port: int | None = None
        self.started = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def stop(self, *_: object) -> None:
        """Ask the loop to stop after the current batch (signal-safe)."""
        self._stop.set()

    def ready(self) -> tuple[bool, str]:
        if not self._assigned:
            return False, "no partitions assigned yet"
        if time.monotonic() - self._last_broker_ok > max(30.0, 4 * self.settings.poll_timeout_seconds):
            return False, "no successful broker round trip in the last 30 s"
        return True, f"ready: {len(self._assigned)} partition(s)"

    def run(self, *, install_signal_handlers: bool = True) -> None:
        s = self.settings
        with ExitStack() as stack:
            admin = kafka.make_admin(s)
            existing = kafka.check_broker(admin, s)
            self._last_broker_ok = time.monotonic()
            if s.create_topics:
                created = kafka.ensure_topics(admin, s, existing)
                if created:
                    log.info("created output topics", extra={"ctx": {"topics": created}})
                existing |= set(created)
            existing |= set(kafka.check_labels_topic(admin, s, existing))
            for topic in s.input_topics:
                if topic not in existing:
                    log.warning("input topic does not exist yet; waiting for it", extra={"ctx": {"topic": topic}})

            self._references = ReferenceFeed(s)
            stack.callback(self._references.close)
            self._apply_references(self._references.start(existing))

            producer = kafka.make_producer(s)
            stack.callback(producer.flush, 10.0)
            consumer = kafka.make_consumer(s)
            stack.callback(self._close_consumer, consumer)
            self._producer, self._consumer = producer, consumer

            if s.metrics_port:
                server = stack.enter_context(MetricsServer(self.metrics.registry, s.metrics_host, s.metrics_port, self.ready))
                self.metrics_port = server.port
            if install_signal_handlers and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous = signal.signal(sig, self.stop)
                    stack.callback(signal.signal, sig, previous)

            topics = s.input_topics + ([s.labels_topic] if s.labels_topic else [])
            consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
            log.info("worker started", extra={"ctx": {"group": s.group_id, "topics": ",".join(topics),
                                                       "bootstrap": s.bootstrap_servers, "metrics_port": self.metrics_port}})
            self.started.set()
            while not self._stop.is_set():
                self.poll_once()
            log.info("worker stopping")

    def _close_consumer(self, consumer) -> None:
        consumer.close()
        self.metrics.assigned_partitions.set(0)

    # ------------------------------------------------------------ rebalance
    def _on_assign(self, consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions assigned", extra={"ctx": {"partitions": _names(partitions)}})

    def _on_revoke(self, consumer, partitions: list[TopicPartition]) -> None:
        # Offsets are committed after every batch, so nothing is pending here.
        gone = {(p.topic, p.partition) for p in partitions}
        self._assigned -= gone
        self.pipeline.drop_partitions(gone)
        for topic, partition in gone:
            for gauge in (self.metrics.consumer_lag, self.metrics.event_time_lag):
                try:
                    gauge.remove(topic, str(partition))
                except KeyError:
                    pass
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions revoked", extra={"ctx": {"partitions": _names(partitions)}})

    # ------------------------------------------------------------ the loop
    def _apply_references(self, updates: list[ReferenceUpdate]) -> None:
        for update in updates:
            if update.error is not None:
                self.metrics.reference_updates.labels("rejected").inc()
                log.warning("reference profile rejected", extra={"ctx": {"key": update.key, "error": update.error}})
                continue
            if update.profile is None:
                model, _, version = update.key.partition("/")
                if self.pipeline.remove_reference(model, version):
                    self.metrics.reference_updates.labels("withdrawn").inc()
                    self.metrics.reference_in_use(model, version, None)
                    log.info("reference profile withdrawn; back to warm-up", extra={"ctx": {"key": update.key}})
                continue
            p = update.profile
            if self.pipeline.set_reference(p):
                self.metrics.reference_updates.labels("applied").inc()
                self.metrics.reference_in_use(p.model, p.model_version, p.name)
                log.info("reference profile in use", extra={"ctx": {"key": p.key, "reference": p.name,
                                                                     "features": len(p.features)}})

    def poll_once(self) -> BatchResult | None:
        s = self.settings
        if self._references is not None:
            self._apply_references(self._references.poll())
        messages = self._consumer.consume(s.batch_size, s.poll_timeout_seconds)
        self._last_broker_ok = time.monotonic()
        records: list[SourceRecord] = []
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._consumer_error(err, msg)
                continue
            ts_type, ts = msg.timestamp()
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            records.append(build(SourceRecord, (topic, partition, offset, ts if ts_type != 0 and ts >= 0 else None,
                                                msg.key(), msg.value(), tuple(msg.headers() or ()))))
            positions[(topic, partition)] = offset
        if not records:
            return None
        started = time.perf_counter()
        result = self.pipeline.process(records)
        self._publish(result)
        self._consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in positions.items()], asynchronous=False)
        elapsed = time.perf_counter() - started
        self._observe(result, records, positions, elapsed)
        return result

    def _consumer_error(self, err: KafkaError, msg: Message) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise KafkaFailure(f"fatal consumer error: {err.str()}")
        log.warning("consumer error", extra={"ctx": {"error": err.str(), "topic": msg.topic(), "partition": msg.partition()}})

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")
            self.metrics.delivery_failures.labels(msg.topic() or "").inc()

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered)
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain

    def _publish(self, result: BatchResult) -> None:
        s = self.settings
        for alert in result.alerts:
            key = f"{alert['model']}/{alert['model_version']}/{alert['feature']}/{alert['detector']}".encode()
            self._produce(s.alerts_topic, key, orjson.dumps(alert), _JSON)
            log.info(str(alert["summary"]), extra={"ctx": {"alert_status": alert["status"], "model": alert["model"],
                                                            "feature": alert["feature"], "detector": alert["detector"],
                                                            "partition": alert["window"]["partition"]}})  # type: ignore[index]
            if self.on_alert is not None:
                self.on_alert(alert)
        for summary in result.summaries:
            key = _summary_key(summary)
            self._produce(s.metrics_topic, key, orjson.dumps(summary), _JSON)
        for dl in result.dead_letters:
            rec = dl.record
            headers = list(rec.headers) + [
                ("driftline.reason", dl.reason.encode()),
                ("driftline.error", dl.detail.encode()),
                ("driftline.source.topic", rec.topic.encode()),
                ("driftline.source.partition", str(rec.partition).encode()),
                ("driftline.source.offset", str(rec.offset).encode()),
                ("driftline.source.timestamp", str(rec.timestamp_ms if rec.timestamp_ms is not None else "").encode()),
            ]
            self._produce(s.deadletter_topic, rec.key, rec.value, headers)
            log.debug("dead letter", extra={"ctx": {"reason": dl.reason, "topic": rec.topic,
                                                     "partition": rec.partition, "offset": rec.offset}})
        remaining = self._producer.flush(max(30.0, s.broker_timeout_seconds))
        if remaining or self._delivery_errors:
            errors = self._delivery_errors[:5]
            self._delivery_errors = []
            raise DeliveryError(f"{remaining} output record(s) undelivered, errors: {errors}; "
                                f"offsets not committed, the batch will be re-read after restart")

    def _observe(self, result: BatchResult, records: list[SourceRecord], positions: dict[tuple[str, int], int], elapsed: float) -> None:
        m = self.metrics
        m.batch_latency.observe(elapsed)
        m.batch_size.observe(len(records))
        for rec_topic, count in Counter(map(itemgetter(0), records)).items():
            m.records.labels(rec_topic).inc(count)
        m.record_batch(result, models=self.pipeline.model_count, features=self.pipeline.feature_count)
        now_ms = time.time() * 1000.0
        for (topic, partition), t in result.event_time_ms.items():
            m.event_time_lag.labels(topic, str(partition)).set(max(0.0, (now_ms - t) / 1000.0))
        for (topic, partition), offset in positions.items():
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except Exception:  # noqa: BLE001 - lag is best effort
                continue
            if high is not None and high >= 0:
                m.consumer_lag.labels(topic, str(partition)).set(max(0, high - (offset + 1)))


def _summary_key(summary: dict[str, object]) -> bytes:
    """``model/model_version/feature`` for feature summaries, ``model/model_version/performance``
    and ``model/champion..challenger/comparison`` for the others."""
    kind = summary.get("type")
    if kind == "performance_summary":
        return f"{summary['model']}/{summary['model_version']}/performance".encode()
    if kind == "version_comparison":
        return f"{summary['model']}/{summary['champion']}..{summary['challenger']}/comparison".encode()
    return f"{summary['model']}/{summary['model_version']}/{summary['feature']}".encode()


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]" for p in partitions)

