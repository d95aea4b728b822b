"""The Kafka worker: a thin loop between topics and the detection pipeline.

Per batch: consume → :meth:`Pipeline.process` → produce alerts, window
summaries and dead letters (and, when due, state checkpoints) → commit the
batch's offsets.

* ``exactly_once`` (default): all of it is one Kafka transaction, offsets
  included (``send_offsets_to_transaction``).  A failed transaction is
  aborted and the worker rewinds its partitions to their last checkpoint.
* ``at_least_once``: outputs are flushed, then offsets committed; a crash in
  between means the batch is read again, and the repeated alerts carry the
  same deterministic ``alert_id``.  A failed flush rewinds too.

State follows the partition: every ``checkpoint_interval_records`` /
``checkpoint_interval_seconds``, on revoke and on shutdown the state of each
assigned partition is written to the compacted state topic with the offset
it covers.  A worker that is assigned a partition restores its checkpoint,
seeks to the covered offset and re-reads up to the committed offset with its
outputs muted (they were published before), so nothing is skipped and
nothing is counted twice.

Nothing a record holds stops the loop (docs/operations.md):

* a batch whose processing raises is rewound and its records tried one at a
  time; the record that raises alone is dead-lettered with reason
  ``processing_error`` (:mod:`driftline.transport.isolation`);
* an output larger than Kafka takes is replaced by a small
  ``oversized_output`` record (:mod:`driftline.transport.delivery`), and an
  input whose transaction Kafka keeps refusing is isolated the same way.

SIGTERM and SIGINT stop the loop between batches; retry loops give up at the
signal, and the shutdown takes at most ``SHUTDOWN_GRACE_SECONDS``.  The
metrics port is bound before anything touches Kafka; the default
transactional id follows from it (:mod:`driftline.transport.identity`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from operator import itemgetter
from typing import Any, Callable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import ConfigResource

from driftline import collector
from driftline.config import Settings
from driftline.config_errors import setting_ways
from driftline.contract.event import SourceRecord, build
from driftline.detection.pipeline import BatchResult, DeadLetter, Pipeline, PipelineSettings
from driftline.detection.keys import key_part
from driftline.detection.published import (DEADLETTER_HEADERS, PROCESSING_ERROR, OutputRecord, alert_record,
                                           dead_letter_record, summary_record)
from driftline.detection.outcomes import ModelRules, OutcomeSettings
from driftline.detection.settings import STATISTICAL_CHECKS, MonitorSettings
from driftline.errors import ConfigError, DeliveryError, KafkaFailure, ProducerFencedError
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.progress import Progress, Wait
from driftline.observability.server import MetricsServer
from driftline.redact import bounded
from driftline.transport import kafka
from driftline.transport.alert_feed import WORKER_HEADER, AlertFeed
from driftline.transport.checkpoints import CHUNK_BYTES, CheckpointStore, Restored, checkpoint_spacing
from driftline.transport.delivery import (RECORD_MARGIN, OutputLimits, is_fenced, is_record_error, is_size_error,
                                          output_fields, oversized_output, producer_limit, record_size)
from driftline.transport.identity import SlotLock, default_transactional_id
from driftline.transport.isolation import ABORT_LIMIT, Isolation, Unit
from driftline.transport.references import ReferenceFeed, ReferenceUpdate, load_profile_files

__all__ = ["Worker", "pipeline_settings", "DEADLETTER_HEADERS", "EXIT_STALLED", "EXIT_FENCED",
           "SHUTDOWN_GRACE_SECONDS", "listen_error"]

log = logging.getLogger("driftline.worker")

_JSON = [("content-type", b"application/json")]

#: Retries of a transaction call that failed with a retriable error (a broker outage): about 10 × 30 s in all.
TRANSACTION_RETRIES = 10
#: Shortest timeout of one transaction call (and budget of an abort), whatever broker_timeout_seconds says.
MIN_TRANSACTION_CALL_SECONDS = 30.0
#: A transaction call still blocked this long after its own timeout has hung in the client.
STALL_GRACE_SECONDS = 60.0
#: Exit code of ``driftline run`` after a hung Kafka call, or a shutdown that outlived its grace (EX_SOFTWARE).
EXIT_STALLED = 70
#: Exit code of ``driftline run`` when another worker took over its transactional id (fenced).
EXIT_FENCED = 4
#: After SIGTERM / SIGINT: no failed Kafka call is tried again, and the shutdown (checkpoint, flush) gets
#: what is left of this many seconds; ``driftline run`` exits (code 70) if the worker is still not done
#: ``WATCHDOG_MARGIN_SECONDS`` later.  Below Kubernetes' default terminationGracePeriodSeconds (30).
SHUTDOWN_GRACE_SECONDS = 20.0
WATCHDOG_MARGIN_SECONDS = 5.0
#: After a stop request, a Kafka call still running this long past its own timeout is abandoned (hung).
HUNG_CALL_SECONDS = 1.0
#: Smallest checkpoint chunk, however little the state topic takes.
MIN_CHUNK_BYTES = 16 * 1024
#: Longest text of a log field taken from a record (names, alert summaries, errors).
LOG_CHARS = 300


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
        max_name_chars=settings.max_name_chars,
        max_category_chars=settings.max_category_chars,
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
            max_text_chars=settings.max_category_chars,
        )
    return PipelineSettings(
        outcomes=outcomes,
        monitor=monitor,
        max_models=settings.max_models,
        max_record_bytes=settings.max_record_bytes,
        cooldown_seconds=settings.cooldown_seconds,
        resolve_after_seconds=settings.resolve_after_seconds,
        incident_group_seconds=settings.incident_group_seconds,
        reminder_seconds=settings.reminder_seconds,
        max_event_time_skew_seconds=settings.max_event_time_skew_seconds,
    )



class _RecordFailed(Exception):
    """Processing one record on its own raised ``exc``."""

    def __init__(self, record: SourceRecord, exc: BaseException) -> None:
        super().__init__(record, exc)
        self.record, self.exc = record, exc


class _Stopping(BaseException):
    """A retry loop gave up because the worker was asked to stop (not an ``Exception``: no handler of
    record or Kafka failures may take it for one)."""


class Worker:
    """One member of the driftline consumer group."""

    def __init__(self, settings: Settings, *, metrics: WorkerMetrics | None = None,
                 on_alert: Callable[[dict[str, object]], None] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else WorkerMetrics(series=settings.metrics_series)
        self.pipeline = Pipeline(pipeline_settings(settings))
        for profile in load_profile_files(settings.reference_files):
            self.pipeline.set_reference(profile)
            self.metrics.reference_in_use(profile.model, profile.model_version, profile.name)
        self._references: ReferenceFeed | None = None
        self._peers: AlertFeed | None = None
        #: provisional; :meth:`run` sets it once the metrics port (or a slot) is held
        self.worker_id = settings.transactional_id or default_transactional_id(
            settings.group_id, port=settings.metrics_port, host=settings.metrics_host)
        self._alert_headers = _JSON + [(WORKER_HEADER, self.worker_id.encode("utf-8", "backslashreplace"))]
        self.on_alert = on_alert
        self._stop = threading.Event()
        self._stop_at = 0.0
        #: set when :meth:`run` has returned (or raised)
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: Any = None
        self._consumer: Any = None
        self._assigned: set[tuple[str, int]] = set()
        self._last_broker_ok = 0.0
        self._delivery_errors: list[str] = []
        self.metrics_port: int | None = None
        self.started = threading.Event()
        self._exactly_once = settings.processing_guarantee == "exactly_once"
        self._checkpoints: CheckpointStore | None = None
        #: next offset to read of each assigned partition (what a checkpoint now would cover)
        self._positions: dict[tuple[str, int], int] = {}
        #: offset each partition was last checkpointed at
        self._checkpointed: dict[tuple[str, int], int] = {}
        #: offset committed last by this worker, per partition
        self._committed: dict[tuple[str, int], int] = {}
        #: first offset read of each partition since its assignment (where a rewind without checkpoint
        #: or committed offset goes back to)
        self._origin: dict[tuple[str, int], int] = {}
        #: records below these offsets were published by a previous owner: re-read with outputs muted
        self._mute: dict[tuple[str, int], int] = {}
        #: revoked partitions whose state is kept in case they come straight back (position at revoke)
        self._held: dict[tuple[str, int], int] = {}
        self._records_since_checkpoint = 0
        #: how long the last checkpoint took to write, and whether a checkpoint due by records is being held back
        self._checkpoint_seconds = 0.0
        self._deferring = self._spacing_logged = False
        self._last_checkpoint = time.monotonic()
        #: the blocking transaction call under way: (name, started, timeout)
        self._blocked: tuple[str | None, float, float] = (None, 0.0, 0.0)
        #: culprits and suspects of failed batches (see transport/isolation.py)
        self._isolation = Isolation(ABORT_LIMIT)
        #: the largest output record each topic takes (see transport/delivery.py)
        self._limits = OutputLimits(producer_limit(settings.kafka))
        #: partitions of the alerts topic: a model version's alert records all go to one (None: by key)
        self._alert_partitions: int | None = None
        #: what a delivery report of the current transaction blamed on a record (it is replaced on the retry)
        self._record_fault: str | None = None
        #: a delivery report said this producer was fenced
        self._fenced_seen: str | None = None
        #: a rewind that could not be done yet (Kafka did not answer): why; nothing is processed until it is
        self._rewind_pending: str | None = None
        #: the worker must write nothing more (fenced, or a stop cut a Kafka call short)
        self._abandon = False
        #: last time input offsets were committed (or there was nothing to do), and the lag then
        self._progress_at = time.monotonic()
        self._lag_at_progress = 0
        self._next_lag_check = 0.0
        #: partitions a rebalance moved during _consume's second call (None: outside it)
        self._moved: set[tuple[str, int]] | None = None
        #: the progress line and the dead-letter limit (observability/progress.py)
        self._progress = Progress(settings.progress_interval_seconds, now=time.monotonic(), say=_say)
        #: the start-up wait under way: the group join, then the partition assignment
        self._wait: Wait | None = None

    # ------------------------------------------------------------ lifecycle
    def stop(self, *_: object) -> None:
        """Ask the loop to stop after the current batch (signal-safe); starts the shutdown grace period."""
        if not self._stop.is_set():
            self._stop_at = time.monotonic()
        self._stop.set()

    def _remaining(self, want: float) -> float:
        """``want`` seconds, or less once a stop was asked for: what is left of the shutdown grace."""
        if not self._stop.is_set():
            return want
        return max(0.0, min(want, self._stop_at + SHUTDOWN_GRACE_SECONDS - time.monotonic()))

    def ready(self) -> tuple[bool, str]:
        if not self._assigned:
            return False, "no partitions assigned yet"
        quiet = time.monotonic() - self._last_broker_ok
        window = self._broker_window()
        if quiet > window:
            return False, (f"no answer from Kafka for {quiet:.0f} s (allowed: {window:g} s, half of "
                           "session_timeout_ms): the broker is unreachable")
        return True, f"ready: {len(self._assigned)} partition(s)"

    def _broker_window(self) -> float:
        return self.settings.session_timeout_ms / 2000.0

    def run(self, *, install_signal_handlers: bool = True, exit_on_stall: bool = False) -> None:
        """Consume until :meth:`stop`.  ``exit_on_stall`` ends the process (exit code
        ``EXIT_STALLED``) when a Kafka call hangs past its timeout (see :meth:`stalled`) or the
        shutdown outlives its grace, for process supervisors without a liveness probe; ``driftline run`` sets it."""
        self._finished.clear()
        try:
            with ExitStack() as stack:
                # the loop decodes every record: the collector tuned for it (as `driftline run` has it), restored after
                stack.enter_context(collector.tuned())
                try:
                    self._run(stack, install_signal_handlers, exit_on_stall)
                except _Stopping as exc:
                    self._abandon = True
                    log.warning("stopping without a shutdown checkpoint: a Kafka call was still failing at the "
                                "stop signal (the partitions' last checkpoints stay in use)",
                                extra={"ctx": {"call": str(exc)}})
        finally:
            self._finished.set()
            for thread in self._threads:  # they end at once now (and must not outlive the worker's objects)
                thread.join(1.0)
            self._threads = []

    def _thread(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, stack: ExitStack, install_signal_handlers: bool, exit_on_stall: bool) -> None:
        s = self.settings
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous = signal.signal(sig, self.stop)
                stack.callback(signal.signal, sig, previous)
        # Before anything touches Kafka: the port (a taken one is a configuration error, and no topic
        # has been created), then the identity that follows from it.
        self._serve(stack)
        self._claim_identity(stack)
        if exit_on_stall:
            self._thread(self._exit_when_stalled, "driftline-stall-watch")
        # librdkafka checks the consumer's properties here, before it contacts the broker
        self._consumer = kafka.make_consumer(s)
        stack.callback(self._close_consumer)

        admin = kafka.make_admin(s)
        broker = Wait("the broker", "broker answered", now=time.monotonic(), say=_say,
                      detail=f"{s.bootstrap_servers}, up to {s.broker_timeout_seconds:g} s (broker_timeout_seconds)")
        existing = kafka.check_broker(admin, s, waiting=lambda _: broker.remind(now=time.monotonic()))
        broker.done(now=time.monotonic(), result=f"{len(existing)} topic(s)")
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

        if s.state_topic:
            self._checkpoints = CheckpointStore(s, self._state_topic(admin, existing))
        self._peers = AlertFeed(s, self.worker_id)
        stack.callback(self._peers.close)
        self._producer = self._make_producer()
        stack.callback(self._close_producer)  # the producer may be replaced (see _abort)
        self._learn_limits(admin)
        self._thread(self._watch_broker, "driftline-broker-watch", admin)

        topics = s.input_topics + ([s.labels_topic] if s.labels_topic else [])
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("worker started", extra={"ctx": {"group": s.group_id, "topics": ",".join(topics),
                                                   "bootstrap": s.bootstrap_servers, "metrics_port": self.metrics_port,
                                                   "worker_id": self.worker_id}})
        self._wait = Wait("the group join", "joined the group", now=time.monotonic(), say=_say,
                          detail=f"group {s.group_id}: the coordinator answers within about the session timeout, "
                                 f"{s.session_timeout_ms / 1000:g} s")
        self.started.set()
        while not self._stop.is_set():
            self.poll_once()
            self._tell_progress()
        log.info("worker stopping")
        self._checkpoint(sorted(self._assigned), "shutdown")

    def _serve(self, stack: ExitStack) -> None:
        """Bind the metrics endpoint, or raise :class:`ConfigError` naming the setting to change."""
        s = self.settings
        if not s.metrics_port:
            return
        try:
            server = MetricsServer(self.metrics.exposition_parts, s.metrics_host, s.metrics_port, self.ready, alive=self.alive)
        except (OSError, UnicodeError, ValueError) as exc:
            raise ConfigError(listen_error(s.metrics_host, s.metrics_port, exc)) from None
        stack.enter_context(server)
        self.metrics_port = server.port

    def _claim_identity(self, stack: ExitStack) -> None:
        s = self.settings
        if s.transactional_id:
            self.worker_id = s.transactional_id
        elif self.metrics_port:
            self.worker_id = default_transactional_id(s.group_id, port=self.metrics_port, host=s.metrics_host)
        else:
            try:
                slot = stack.enter_context(SlotLock(s.group_id))
            except OSError as exc:
                raise KafkaFailure(f"cannot pick a transactional id: {exc}; set transactional_id "
                                   "(--transactional-id / DRIFTLINE_TRANSACTIONAL_ID) or a metrics_port") from None
            self.worker_id = default_transactional_id(s.group_id, slot=slot.slot)
        self._alert_headers = _JSON + [(WORKER_HEADER, self.worker_id.encode("utf-8", "backslashreplace"))]

    def _exit_when_stalled(self) -> None:
        while not self._stop.wait(5.0):
            if self._finished.is_set():
                return
            reason = self.stalled()
            if reason is not None:
                self._exit_now(reason)
        if self._finished.is_set():
            return
        # asked to stop: the worker has its grace, and a little more, to finish
        left = self._stop_at + SHUTDOWN_GRACE_SECONDS + WATCHDOG_MARGIN_SECONDS - time.monotonic()
        if not self._finished.wait(max(0.0, left)):
            self._exit_now(f"the worker did not stop within {SHUTDOWN_GRACE_SECONDS + WATCHDOG_MARGIN_SECONDS:g} s "
                           "of the stop signal; exiting (its partitions restart from their last checkpoints)")

    @staticmethod
    def _exit_now(reason: str) -> None:
        log.critical(reason)
        for handler in logging.getLogger().handlers + logging.getLogger("driftline").handlers:
            handler.flush()
        os._exit(EXIT_STALLED)

    def _watch_broker(self, admin) -> None:
        """Readiness from a real round trip: a cheap cluster query every few seconds, idle or not."""
        interval = max(0.2, min(5.0, self.settings.session_timeout_ms / 6000.0))
        fallback = False
        while not self._finished.wait(interval):
            try:
                if fallback:
                    admin.list_topics(timeout=interval)
                else:
                    answer = admin.describe_cluster(request_timeout=interval)
                    deadline = time.monotonic() + interval + 1.0
                    while not answer.done() and time.monotonic() < deadline:
                        if self._finished.wait(0.05):
                            return  # the worker is done: do not hold it (or the client) any longer
                    answer.result(0)
                self._last_broker_ok = time.monotonic()
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() in (KafkaError._UNSUPPORTED_FEATURE,
                                                                  KafkaError.UNSUPPORTED_VERSION):
                    fallback = True  # a broker before DescribeCluster (Kafka 2.8): metadata instead
            except Exception:  # noqa: BLE001 - a timeout of the future, a closed client at exit
                pass

    def _close_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self.metrics.assigned_partitions.set(0)

    def _close_producer(self) -> None:
        # abandoned (fenced, or a call cut short): what is queued belongs to a transaction Kafka aborts
        if self._producer is not None and not self._abandon:
            self._producer.flush(self._remaining(10.0))

    def _make_producer(self):
        s = self.settings
        if not self._exactly_once:
            return kafka.make_producer(s)
        tid = self.worker_id
        extra: dict[str, object] = {"transactional.id": tid, "transaction.timeout.ms": s.transaction_timeout_ms}
        # librdkafka 2.16 re-bootstraps when every broker was down (a one-broker
        # restart) and decommissions the known brokers; a group coordinator
        # cached on a decommissioned broker leaves send_offsets_to_transaction
        # blocked past its timeout (librdkafka issues #5511 and #5456; measured
        # here: 6 hangs in 6 broker restarts, none in about 20 without re-bootstrap).
        # Without re-bootstrap the producer reconnects to the same addresses.
        if "metadata.recovery.strategy" not in s.kafka:
            extra["metadata.recovery.strategy"] = "none"
        producer = kafka.make_producer(s, extra=extra)
        try:
            self._transaction_call("init_transactions", lambda t: producer.init_transactions(t))
        except KafkaException as exc:
            raise KafkaFailure(f"cannot start Kafka transactions with transactional id {tid!r}: {_kafka_text(exc)}; "
                               "the broker must support transactions (Kafka 2.5+), or set processing_guarantee "
                               "(env DRIFTLINE_PROCESSING_GUARANTEE) to at_least_once") from None
        log.info("exactly-once processing", extra={"ctx": {"transactional_id": tid}})
        return producer

    def _learn_limits(self, admin) -> None:
        """The output topics' ``max.message.bytes`` (when the broker tells), and the checkpoint chunk that fits."""
        s = self.settings
        topics = [s.alerts_topic, s.metrics_topic, s.deadletter_topic] + ([s.state_topic] if s.state_topic else [])
        timeout = min(10.0, s.broker_timeout_seconds)
        try:
            futures = admin.describe_configs([ConfigResource("topic", t) for t in topics], request_timeout=timeout)
            for resource, future in futures.items():
                entry = future.result(timeout + 1.0).get("max.message.bytes")
                if entry is not None and entry.value and str(entry.value).isdigit():
                    self._limits.set_topic(resource.name, int(entry.value))
        except Exception as exc:  # noqa: BLE001 - best effort: a refused record teaches the limit too
            log.debug("cannot read the output topics' max.message.bytes", extra={"ctx": {"error": str(exc)}})
        try:
            count = kafka.partition_counts(admin, s).get(s.alerts_topic)
            self._alert_partitions = count if count and count > 0 else None
        except Exception as exc:  # noqa: BLE001 - without it, alert records are partitioned by their key
            log.debug("cannot read the alerts topic's partition count", extra={"ctx": {"error": str(exc)}})
        self._fit_chunks()

    def _fit_chunks(self) -> None:
        if self._checkpoints is not None:
            room = self._limits.limit(self._checkpoints.topic) - RECORD_MARGIN - 1024  # key and headers
            self._checkpoints.chunk_bytes = max(MIN_CHUNK_BYTES, min(self._checkpoints.chunk_bytes, CHUNK_BYTES, room))

    def _state_topic(self, admin, existing: set[str]) -> int:
        """Partitions of the state topic (created by ``ensure_topics`` when ``create_topics`` is on,
        perhaps by another worker starting at the same time)."""
        s = self.settings
        counts = kafka.partition_counts(admin, s)
        if s.state_topic not in counts:
            raise ConfigError(f"invalid setting state_topic (env DRIFTLINE_STATE_TOPIC): topic {s.state_topic!r} does "
                              f"not exist{'' if s.create_topics else ' and create_topics is off'}; create it compacted "
                              "(driftline topics create) or set state_topic to '' to run without checkpoints")
        return counts[s.state_topic]

    # ------------------------------------------------------------ rebalance
    def _on_assign(self, consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        if self._moved is not None:
            self._moved.update(tps)
        started = time.perf_counter()
        try:
            starts = self._restore(tps)
        except KafkaException as exc:
            # Kafka did not answer: take the partitions, restore them before anything is processed
            starts = {}
            self._rewind_pending = f"restore on assignment failed: {_kafka_text(exc)}"
            log.warning("cannot restore the assigned partitions yet; trying again before processing",
                        extra={"ctx": {"error": _kafka_text(exc)}})
        for p in partitions:
            start = starts.get((p.topic, p.partition))
            if start is not None:
                p.offset = start
        if "cooperative" in self.settings.kafka.get("partition.assignment.strategy", ""):
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        assigned = set(tps)
        self.pipeline.drop_partitions([tp for tp in self._held if tp not in assigned])  # held, not given back
        self._held.clear()
        self.metrics.restore_seconds.observe(time.perf_counter() - started)
        self._assigned |= assigned
        self.metrics.assigned_partitions.set(len(self._assigned))
        self._progress_at = time.monotonic()
        log.info("partitions assigned", extra={"ctx": {"partitions": _names(partitions),
                                                        "restore_seconds": round(time.perf_counter() - started, 3)}})
        if self._wait is not None:  # the start-up wait ends (a group join that went unnoticed ends with it)
            self._wait.done(now=time.monotonic(), result=f"{len(self._assigned)} partition(s)")
            self._wait = None

    def _on_revoke(self, consumer, partitions: list[TopicPartition]) -> None:
        # Offsets are committed after every batch; the state is checkpointed here so the next owner continues it.
        gone = [(p.topic, p.partition) for p in partitions]
        if self._moved is not None:
            self._moved.update(gone)
        self._checkpoint(gone, "revoke")
        if self._rewind_pending is None and not self._abandon:
            self._held.update({tp: self._positions[tp] for tp in gone if tp in self._positions})
        else:
            self.pipeline.drop_partitions(gone)  # its state is not to be trusted: a new owner restores it
        self._release(gone)
        log.info("partitions revoked", extra={"ctx": {"partitions": _names(partitions)}})

    def _on_lost(self, consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: write nothing, keep nothing.
        gone = [(p.topic, p.partition) for p in partitions]
        if self._moved is not None:
            self._moved.update(gone)
        self.pipeline.drop_partitions(gone)
        self._release(gone)
        log.warning("partitions lost", extra={"ctx": {"partitions": _names(partitions)}})

    def _release(self, gone: list[tuple[str, int]]) -> None:
        for tp in gone:
            self._assigned.discard(tp)
            self._positions.pop(tp, None)
            self._mute.pop(tp, None)
            self._origin.pop(tp, None)
            self._committed.pop(tp, None)
            for gauge in (self.metrics.consumer_lag, self.metrics.event_time_lag):
                try:
                    gauge.remove(tp[0], str(tp[1]))
                except KeyError:
                    pass
        self._isolation.forget(gone)
        self.metrics.assigned_partitions.set(len(self._assigned))

    # ------------------------------------------------------------ state
    def _restore(self, tps: list[tuple[str, int]], *, rewind: bool = False) -> dict[tuple[str, int], int]:
        """Take over the state of partitions; the offset to start each at (absent: the group's committed one).

        ``rewind``: going back after a failed batch; under ``at_least_once`` too, only a checkpoint at
        or below the committed offset is used (one written with the failed batch may cover records
        whose outputs were never delivered)."""
        committed: dict[tuple[str, int], int] = {}
        timeout = max(0.1, self._remaining(self.settings.broker_timeout_seconds))
        for tp in self._consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=timeout):
            if tp.error is None and tp.offset >= 0:
                committed[(tp.topic, tp.partition)] = tp.offset
        starts: dict[tuple[str, int], int] = {}
        to_read = []
        for tp in tps:
            held = self._held.get(tp)
            if held is not None and committed.get(tp) == held:
                self.metrics.restores.labels("kept").inc()  # it came straight back: the state in memory is current
                starts[tp] = self._positions[tp] = held
                self._checkpointed.setdefault(tp, held)
            else:
                to_read.append(tp)
                self.pipeline.drop_partitions([tp])
                self._positions.pop(tp, None)  # no state, no position: nothing to checkpoint until restored
        if not to_read:
            return starts
        found = (self._checkpoints.read(to_read, committed, exactly_once=self._exactly_once or rewind,
                                        cancelled=self._stop.is_set) if self._checkpoints else {})
        if self._stop.is_set():
            return starts  # stopping: the partitions stay unrestored, and are not checkpointed
        for tp in to_read:
            restored = found.get(tp)
            if restored is not None and restored.state is not None:
                try:
                    self.pipeline.restore(restored.state)
                except Exception as exc:  # noqa: BLE001 - a checkpoint must never stop a worker
                    self.pipeline.drop_partitions([tp])
                    restored = Restored(None, "rejected", f"cannot restore it: {_short(_describe(exc))}",
                                        restored.checkpoint_bytes)
            outcome = restored.outcome if restored is not None else "none"
            self.metrics.restores.labels(outcome).inc()
            if restored is not None and restored.state is not None:
                state = restored.state
                starts[tp] = self._positions[tp] = self._checkpointed[tp] = state.offset
                if committed.get(tp, -1) > state.offset:
                    self._mute[tp] = committed[tp]
                log.info("partition state restored", extra={"ctx": {
                    "partition": f"{tp[0]}[{tp[1]}]", "offset": state.offset, "bytes": restored.checkpoint_bytes,
                    "monitors": len(state.monitors), "replay_to": committed.get(tp)}})
                continue
            if restored is not None and restored.outcome == "rejected":
                log.warning("checkpoint rejected (it may be forged or corrupt); the partition starts clean",
                            extra={"ctx": {"partition": f"{tp[0]}[{tp[1]}]", "error": restored.error}})
            if tp in committed:
                starts[tp] = self._positions[tp] = committed[tp]
        return starts

    def _due(self) -> bool:
        s = self.settings
        if self._checkpoints is None or self._records_since_checkpoint == 0:
            return False
        since = time.monotonic() - self._last_checkpoint
        if s.checkpoint_interval_records and self._records_since_checkpoint >= s.checkpoint_interval_records:
            wait = checkpoint_spacing(self._checkpoint_seconds, s.checkpoint_max_share)
            if since >= wait:
                self._deferring = False
                return True
            if not self._deferring:
                self._deferring = True
                say = log.debug if self._spacing_logged else log.info  # at INFO once; then at DEBUG
                say("checkpoints spaced out: one takes longer than checkpoint_max_share of the time allows at "
                    "checkpoint_interval_records", extra={"ctx": {
                        "checkpoint_seconds": round(self._checkpoint_seconds, 3),
                        "next_in_seconds": round(wait - since, 3), "checkpoint_max_share": s.checkpoint_max_share}})
                self._spacing_logged = True
        return bool(s.checkpoint_interval_seconds) and since >= s.checkpoint_interval_seconds

    def _write_checkpoints(self, tps, trigger: str) -> list[tuple[str, int]]:
        """Produce the checkpoints of partitions whose position moved since their last one (and note how long
        that took, for :func:`checkpoint_spacing`)."""
        assert self._checkpoints is not None
        written = []
        now_ms = int(time.time() * 1000)
        started = time.perf_counter()
        try:
            for tp in tps:
                position = self._positions.get(tp)
                if position is None or self._checkpointed.get(tp) == position:
                    continue
                size = self._checkpoints.write(self._producer, self.pipeline.snapshot(tp[0], tp[1], position,
                                                                                      now_ms=now_ms), self._delivered)
                self.metrics.checkpoints.labels(trigger).inc()
                self.metrics.checkpoint_bytes.observe(size)
                written.append(tp)
        finally:
            self._checkpoint_seconds = time.perf_counter() - started
        return written

    def _checkpoint(self, tps: list[tuple[str, int]], trigger: str) -> None:
        """Checkpoint partitions outside a batch: on revoke, at shutdown, on an idle interval."""
        if self._checkpoints is None or not tps or self._abandon or self._rewind_pending is not None:
            return
        moved = [tp for tp in tps if self._positions.get(tp) is not None and self._checkpointed.get(tp) != self._positions[tp]]
        if not moved:
            return
        try:
            if self._exactly_once:
                self._begin()
                written = self._write_checkpoints(moved, trigger)
                # offsets already committed, again with the checkpoint (never a muted position below them)
                self._commit_transaction({tp: self._positions[tp] for tp in written
                                          if self._committed.get(tp) == self._positions[tp]})
            else:
                written = self._write_checkpoints(moved, trigger)
                self._flush()
        except (KafkaException, DeliveryError, BufferError) as exc:
            # The next owner restores the previous checkpoint and re-reads from there: nothing is lost.
            log.warning("checkpoint not written", extra={"ctx": {"trigger": trigger, "error": str(exc)}})
            if self._exactly_once:
                self._abort()
            return
        for tp in written:
            self._checkpointed[tp] = self._positions[tp]

    # ------------------------------------------------------------ the loop
    def _apply_references(self, updates: list[ReferenceUpdate]) -> None:
        for update in updates:
            try:
                self._apply_reference(update)
            except Exception as exc:  # noqa: BLE001 - a profile must not stop the loop either
                self.metrics.reference_updates.labels("rejected").inc()
                log.warning("reference profile rejected", extra={"ctx": {"key": _short(update.key),
                                                                         "error": _short(_describe(exc))}})

    def _apply_reference(self, update: ReferenceUpdate) -> None:
        if update.error is not None:
            self.metrics.reference_updates.labels("rejected").inc()
            log.warning("reference profile rejected", extra={"ctx": {"key": update.key, "error": update.error}})
            return
        if update.profile is None:
            # the profile in force under this key (not the key split at its first '/': names may hold one)
            for model, version in [mv for mv, p in self.pipeline.references.items() if p.key == update.key]:
                if self.pipeline.remove_reference(model, version):
                    self.metrics.reference_updates.labels("withdrawn").inc()
                    self.metrics.reference_in_use(model, version, None)
                    log.info("reference profile withdrawn; back to warm-up", extra={"ctx": {"key": update.key}})
            return
        p = update.profile
        if self.pipeline.set_reference(p):
            self.metrics.reference_updates.labels("applied").inc()
            self.metrics.reference_in_use(p.model, p.model_version, p.name)
            log.info("reference profile in use", extra={"ctx": {"key": p.key, "reference": p.name,
                                                                 "features": len(p.features)}})

    def _consume(self) -> list[Message]:
        """One batch: up to ``batch_size`` records.  It waits up to ``poll_timeout_seconds`` (at most 1 s at
        a time, so a stop request is seen) for a first record, then up to ``batch_wait_seconds`` more for
        the rest: a backlog gives full batches at once, a slow stream gets its records processed (and its
        alerts published) within about ``batch_wait_seconds`` instead of waiting for a batch to fill."""
        s = self.settings
        consume = self._consumer.consume
        deadline = time.monotonic() + s.poll_timeout_seconds
        while True:
            left = deadline - time.monotonic()
            first = consume(1, max(0.0, min(left, 1.0)))
            if first or left <= 1.0 or self._stop.is_set():
                break
        if not first or s.batch_size == 1:
            return first
        self._moved = set()
        rest = consume(s.batch_size - 1, s.batch_wait_seconds)
        moved, self._moved = self._moved, None
        if moved:
            # a rebalance ran inside that call: the first record's partition may have been revoked (or revoked and
            # given back, restored to its checkpoint): its next owner, or this worker again, reads it from there
            first = [m for m in first if (m.topic(), m.partition()) not in moved]
        return first + rest

    def poll_once(self) -> BatchResult | None:
        """Consume a batch and see it through: process, publish, commit (in units, while isolating)."""
        if self._rewind_pending is not None and not self._rewind(self._rewind_pending):
            return None
        if self._references is not None:
            try:
                updates = self._references.poll()
            except KafkaException as exc:
                log.warning("references topic not read", extra={"ctx": {"error": _kafka_text(exc)}})
                updates = []
            self._apply_references(updates)
        if self._peers is not None:
            for firing in self._peers.poll():
                try:
                    self.pipeline.alerts.note_remote(firing.key, firing.event_time_ms)
                except Exception as exc:  # noqa: BLE001 - another worker's record must not stop this one
                    log.debug("peer alert ignored", extra={"ctx": {"error": _short(_describe(exc))}})
        messages = self._consume()
        records: list[SourceRecord] = []
        positions: dict[tuple[str, int], int] = {}
        append = records.append
        run_topic, run_partition, offset = None, -1, -1
        for msg in messages:
            if msg.error() is not None:
                self._consumer_error(msg.error(), msg)
                continue
            ts_type, ts = msg.timestamp()
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if partition != run_partition or topic != run_topic:
                if run_topic is not None:
                    positions[(run_topic, run_partition)] = records[-1][2]
                run_topic, run_partition = topic, partition
                if (topic, partition) not in positions:
                    self._origin.setdefault((topic, partition), offset)
            # headers are read only if the record becomes a dead letter (kafka.RecordHeaders)
            append(build(SourceRecord, (topic, partition, offset, ts if ts_type and ts >= 0 else None,
                                        msg.key(), msg.value(), kafka.RecordHeaders(msg))))
        if run_topic is not None:
            positions[(run_topic, run_partition)] = records[-1][2]
        self._note_lag()
        if not records:
            if self._due():
                self._checkpoint(sorted(self._assigned), "interval")
                self._reset_interval()
            return None
        mute = self._mute
        muted = [r for r in records if r.offset < mute.get((r.topic, r.partition), -1)] if mute else []
        if muted:
            # Re-read after a restore: rebuild the state, publish nothing (the previous owner did).
            for unit in self._isolation.units(muted):
                try:
                    self._process(unit)
                except Exception as exc:  # noqa: BLE001 - a record must never stop the loop
                    self._isolate(unit, exc)
                    return None
                self._isolation.cleared(unit)
            for r in muted:
                self._positions[(r.topic, r.partition)] = r.offset + 1
            self.metrics.replayed_records.inc(len(muted))
            self._records_since_checkpoint += len(muted)
            records = [r for r in records if r.offset >= mute.get((r.topic, r.partition), -1)]
            for tp in [tp for tp, end in mute.items() if positions.get(tp, -1) + 1 >= end]:
                del mute[tp]
        units = self._isolation.units(records)
        if not units and self._due():
            units = [Unit(())]  # only muted records: a transaction for the checkpoints due
        total: BatchResult | None = None
        for unit in units:
            started = time.perf_counter()
            try:
                result = self._process(unit)
            except Exception as exc:  # noqa: BLE001 - a record must never stop the loop
                self._isolate(unit, exc)
                return total
            last = _last_offsets(unit.records)
            for tp, offset in last.items():
                self._positions[tp] = offset + 1
            self._records_since_checkpoint += len(unit.records)
            offsets = {tp: offset + 1 for tp, offset in last.items()}
            if not self._deliver(unit, result, offsets):
                return total
            self._after_commit(unit, offsets)
            try:
                self._observe(result, list(unit.records), last, time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - metrics are best effort: never a reason to stop
                log.warning("metrics of a batch not recorded", extra={"ctx": {"error": _short(_describe(exc))}})
            total = result if total is None else _merge(total, result)
        return total

    def _process(self, unit: Unit) -> BatchResult:
        """The pipeline's result for ``unit``; its known culprits become dead letters instead.  A unit of
        suspects is processed one record at a time: one that raises raises :class:`_RecordFailed`."""
        if not unit.records:
            return BatchResult()
        iso = self._isolation
        if not iso:
            return self.pipeline.process(unit.records)
        if not unit.alone:
            todo: list[SourceRecord] = []
            culprits: list[DeadLetter] = []
            for r in unit.records:
                detail = iso.poison(r)
                if detail is None:
                    todo.append(r)
                else:
                    culprits.append(DeadLetter(r, PROCESSING_ERROR, detail))
            result = self.pipeline.process(todo) if todo else BatchResult()
            result.dead_letters.extend(culprits)
            return result
        result = BatchResult()
        for r in unit.records:
            detail = iso.poison(r)
            if detail is not None:
                result.dead_letters.append(DeadLetter(r, PROCESSING_ERROR, detail))
                continue
            try:
                _merge(result, self.pipeline.process((r,)))
            except Exception as exc:  # noqa: BLE001
                raise _RecordFailed(r, exc) from exc
        return result

    def _isolate(self, unit: Unit, exc: BaseException) -> None:
        """Processing ``unit`` raised: its state changes cannot be trusted; isolate and rewind."""
        culprit = exc.record if isinstance(exc, _RecordFailed) else None
        cause = exc.exc if isinstance(exc, _RecordFailed) else exc
        detail = _describe(cause)
        self._isolation.failed(unit, detail, culprit=culprit)
        if culprit is None and len(unit.records) == 1:
            culprit = unit.records[0]
        if culprit is not None:
            log.warning("processing a record raised; it becomes a dead letter (processing_error)",
                        extra={"ctx": {"topic": culprit.topic, "partition": culprit.partition,
                                       "offset": culprit.offset, "error": _short(detail)}})
        else:
            log.warning("processing a batch raised; rewinding to process its records one at a time",
                        extra={"ctx": {"records": len(unit.records), "error": _short(detail)}})
        log.debug("processing error", exc_info=cause)
        self._rewind(f"processing raised: {_short(detail)}")

    def _deliver(self, unit: Unit, result: BatchResult, offsets: dict[tuple[str, int], int]) -> bool:
        """Publish ``result`` and commit ``offsets`` (with the checkpoints due); False after a failure (rewound)."""
        due = self._due()
        checkpoint = sorted(self._assigned) if due else []
        if not due and self._checkpoints is not None and self._isolation:
            # a culprit goes out: checkpoint its partition, so the next rewind need not go back as far
            checkpoint = sorted({(r.topic, r.partition) for r in unit.records if self._isolation.poison(r)})
        trigger = "interval" if due else "isolation"
        self._record_fault = None
        written: list[tuple[str, int]] = []
        try:
            if self._exactly_once:
                self._begin()
                self._publish(result)
                if checkpoint:
                    written = self._write_checkpoints(checkpoint, trigger)
                self._commit_transaction(offsets)
            else:
                self._publish(result)
                if checkpoint:
                    written = self._write_checkpoints(checkpoint, trigger)
                self._flush()
                if offsets:
                    self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                          asynchronous=False)
        except DeliveryError as exc:  # at_least_once: the flush did not deliver everything
            self._delivery_failed(unit, exc)
            return False
        except KafkaFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - KafkaException, or a bug while publishing
            self._delivery_failed(unit, exc)
            return False
        for tp in written:
            self._checkpointed[tp] = self._positions[tp]
        if due:
            self._reset_interval()
        return True

    def _delivery_failed(self, unit: Unit, exc: Exception) -> None:
        """The outputs of ``unit`` did not go through: abort, decide whether a record is to blame, rewind."""
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if self._fenced_seen is not None:
            raise self._fenced_error(self._fenced_seen)
        if isinstance(err, KafkaError) and err.fatal():
            raise KafkaFailure(f"fatal Kafka transaction error: {err.str()}")
        from_kafka = isinstance(exc, (KafkaException, KafkaFailure, BufferError))
        record_caused = (self._record_fault is not None or not from_kafka
                         or (isinstance(err, KafkaError) and is_record_error(err.code())))
        detail = self._record_fault or _describe(exc)
        if self._exactly_once:
            self._abort()
        if from_kafka:
            isolated = self._isolation.aborted(unit, detail, record_caused=record_caused)
        else:
            self._isolation.escalate(unit, detail)  # a bug while publishing: isolate at once, as for processing
            isolated = True
        log.warning("transaction aborted; rewinding to the last checkpoint" if self._exactly_once else
                    "outputs not delivered; rewinding to the last checkpoint",
                    extra={"ctx": {"error": _short(detail), "record_caused": record_caused, "isolating": isolated}})
        if not record_caused:
            self._back_off()
        self._rewind(_short(detail))

    def _after_commit(self, unit: Unit, offsets: dict[tuple[str, int], int]) -> None:
        now = time.monotonic()
        self._last_broker_ok = now
        iso = self._isolation
        iso.committed(unit)
        self._limits.forget_refused()
        for tp, offset in offsets.items():
            self._committed[tp] = offset
            if iso:
                iso.prune(tp, self._checkpointed.get(tp, offset) if self._checkpoints is not None else offset)
        if offsets:
            self._progress_at = now
            lag = self._current_lag()
            self._lag_at_progress = lag if lag is not None else 0

    def _back_off(self) -> None:
        """Wait before the next attempt after an abort that no record caused (0.5 s doubling to 30 s)."""
        count = self._isolation.abort_count()
        self._stop.wait(min(30.0, 0.5 * 2 ** max(0, count - 1)))

    def _transaction_call(self, name: str, call: Callable[[float], object], *, budget: float | None = None) -> None:
        """Run a blocking transaction call, again while it fails with a retriable error (librdkafka allows
        that) for up to ``budget`` seconds (default: 10 × the call timeout).  After a stop request a failed
        attempt is not repeated, and one that cannot finish is abandoned (see :meth:`_attempt`).  While it
        runs, :meth:`stalled` can tell whether an attempt outlived its timeout."""
        timeout = max(MIN_TRANSACTION_CALL_SECONDS, self.settings.broker_timeout_seconds)
        deadline = time.monotonic() + (timeout * TRANSACTION_RETRIES if budget is None else budget)
        attempt = 0
        while True:
            attempt += 1
            left = self._remaining(deadline - time.monotonic())
            if left <= 0 and self._stop.is_set():
                raise _Stopping(name)
            # the whole timeout per attempt: a commit_transaction cut into 5 s attempts (its flush timed
            # out) let its records time out after a 3 s broker outage instead of riding through it
            step = max(0.1, min(timeout, left))
            self._blocked = (name, time.monotonic(), step)
            try:
                self._attempt(name, call, step)
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if is_fenced(err):
                    raise self._fenced_error(err.str()) from None  # type: ignore[union-attr]
                if not (isinstance(err, KafkaError) and err.retriable()):
                    raise
                if self._stop.is_set():
                    raise _Stopping(name) from None
                if time.monotonic() >= deadline:
                    raise
                if attempt == 1 or attempt % 6 == 0:
                    log.warning("Kafka transaction call failed; retrying",
                                extra={"ctx": {"call": name, "error": err.str(), "attempt": attempt}})
            finally:
                self._blocked = (None, 0.0, 0.0)

    def _attempt(self, name: str, call: Callable[[float], object], timeout: float) -> None:
        """One attempt of a blocking Kafka call.  It runs in a helper thread, so that after a stop request
        a call that hangs past its timeout (librdkafka issues #5511, #5456: ``send_offsets_to_transaction``
        with the coordinator gone), or waits for a broker that has not answered for half the session
        timeout, is abandoned instead of holding the worker."""
        outcome: list[BaseException | None] = []
        done = threading.Event()

        def target() -> None:
            try:
                call(timeout)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=target, name=f"driftline-{name}", daemon=True).start()
        started = time.monotonic()
        while not done.wait(0.05):
            now = time.monotonic()
            if self._stop.is_set() and (now - started > timeout + HUNG_CALL_SECONDS or self._remaining(1.0) <= 0
                                        or now - self._last_broker_ok > self._broker_window()):
                raise _Stopping(f"{name} (blocked for {time.monotonic() - started:.0f} s, abandoned)")
        if outcome[0] is not None:
            raise outcome[0]

    def _fenced_error(self, detail: str) -> ProducerFencedError:
        self._abandon = True  # write nothing more: the other worker owns the id now
        return ProducerFencedError(
            f"fenced: another worker started with transactional id {self.worker_id!r} and took over its "
            f"transactions ({' '.join(str(detail).split())}); this worker stops. Give each live worker its own "
            "transactional_id (--transactional-id / DRIFTLINE_TRANSACTIONAL_ID), or leave it '' for the "
            "per-process default")

    def stalled(self) -> str | None:
        """Why the worker is stuck (a Kafka call blocked well past its timeout), or ``None``."""
        call, since, timeout = self._blocked
        return stall_reason(call, since, timeout, time.monotonic())

    def alive(self) -> tuple[bool, str]:
        """``/healthz``: not alive when a Kafka call hangs, one input is aborted again and again, or no
        offset is committed for ``progress_timeout_seconds`` while the lag does not shrink."""
        reason = self.stalled() or self._isolation.stuck() or self._no_progress()
        return (False, reason) if reason else (True, "ok")

    def _no_progress(self) -> str | None:
        span = self.settings.progress_timeout_seconds
        if not span or not self._assigned:
            return None
        idle = time.monotonic() - self._progress_at
        if idle <= span:
            return None
        lag = self._current_lag()
        if lag is None or lag <= 0 or lag < self._lag_at_progress:
            return None
        return (f"no input offset committed for {idle:.0f} s (progress_timeout_seconds {span:g}) while the consumer "
                f"lag did not shrink ({self._lag_at_progress} -> {lag} records): the worker is stuck")

    def _current_lag(self) -> int | None:
        """Records behind the high watermarks of the fetched partitions (None if the consumer cannot tell)."""
        consumer = self._consumer
        if consumer is None:
            return None
        total = 0
        for tp in list(self._assigned):
            position = self._positions.get(tp, self._origin.get(tp))
            if position is None:
                continue  # nothing read yet
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(tp[0], tp[1]), cached=True)
            except Exception:  # noqa: BLE001 - closed, or no fetch yet
                return None
            if high is not None and high >= 0:
                total += max(0, high - position)
        return total

    def _note_lag(self) -> None:
        """Once a second: a worker with nothing to catch up on is making progress."""
        now = time.monotonic()
        if now < self._next_lag_check:
            return
        self._next_lag_check = now + 1.0
        if self._current_lag() == 0:
            self._progress_at, self._lag_at_progress = now, 0

    def _reset_interval(self) -> None:
        self._records_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    def _begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if is_fenced(err):
                raise self._fenced_error(err.str()) from None  # type: ignore[union-attr]
            raise

    def _commit_transaction(self, offsets: dict[tuple[str, int], int]) -> None:
        if offsets:
            tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            group = self._consumer.consumer_group_metadata()
            self._transaction_call("send_offsets_to_transaction",
                                   lambda t: self._producer.send_offsets_to_transaction(tps, group, t))
        self._transaction_call("commit_transaction", lambda t: self._producer.commit_transaction(t))
        self.metrics.transactions.labels("committed").inc()
        self._delivery_errors = []  # a failed delivery fails the commit: none can be left here

    def _abort(self) -> None:
        self._delivery_errors = []  # they belong to the aborted transaction
        try:
            self._transaction_call("abort_transaction", lambda t: self._producer.abort_transaction(t),
                                   budget=max(MIN_TRANSACTION_CALL_SECONDS, self.settings.broker_timeout_seconds))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not isinstance(err, KafkaError) or err.fatal():
                raise KafkaFailure(f"cannot abort the Kafka transaction: {_kafka_text(exc)}") from None
            # The abort itself did not go through (after timed-out records it needs an epoch bump,
            # which a broker may refuse or a long outage may delay). A new producer with the same
            # transactional id fences this one, and the coordinator aborts its open transaction.
            log.warning("cannot abort the Kafka transaction; replacing the transactional producer",
                        extra={"ctx": {"error": err.str()}})
            self._producer.purge(in_queue=True, in_flight=True)
            self._producer = self._make_producer()
        self.metrics.transactions.labels("aborted").inc()

    def _rewind(self, reason: str) -> bool:
        """Back to the last checkpoint of every assigned partition (after a failed batch); False if Kafka did
        not answer (tried again before the next batch; nothing is processed or checkpointed until then)."""
        log.info("rewinding to the last checkpoint", extra={"ctx": {"reason": reason}})
        tps = sorted(self._assigned)
        self._held.clear()
        self._mute.clear()  # _restore sets it again from the committed offsets
        self._rewind_pending = reason
        try:
            starts = self._restore(tps, rewind=True)
            if self._stop.is_set():
                return False  # stopping: the partitions stay unrestored (and are not checkpointed)
            for tp in tps:
                start = starts.get(tp, self._origin.get(tp))
                if start is not None:
                    self._consumer.seek(TopicPartition(tp[0], tp[1], start))
                    self._positions[tp] = start
        except KafkaException as exc:
            log.warning("cannot rewind yet; trying again before the next batch",
                        extra={"ctx": {"error": _kafka_text(exc)}})
            self._stop.wait(1.0)
            return False
        self._rewind_pending = None
        return True

    def _consumer_error(self, err: KafkaError, msg: Message) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise KafkaFailure(f"fatal consumer error: {err.str()}")
        log.warning("consumer error", extra={"ctx": {"error": err.str(), "topic": msg.topic(), "partition": msg.partition()}})

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        topic = msg.topic() or ""
        self._delivery_errors.append(f"{topic}: {err.str()}")
        self.metrics.delivery_failures.labels(topic).inc()
        if is_fenced(err):
            self._fenced_seen = err.str()
            return
        if not is_record_error(err.code()):
            return
        value = msg.value()
        if self._checkpoints is not None and topic == self._checkpoints.topic:
            # a checkpoint chunk too large for the state topic: smaller chunks from the next one on
            self._checkpoints.chunk_bytes = max(MIN_CHUNK_BYTES, min(self._checkpoints.chunk_bytes, len(value or b"") // 2))
            return
        # an output Kafka refused: the retry replaces it (and, if that does not help, isolates its input)
        self._limits.refused(topic, msg.key(), value, msg.headers(), too_large=is_size_error(err.code()))
        self._record_fault = f"{topic}: {err.str()}"

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: list,
                 partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered)
                else:
                    self._producer.produce(topic, value=value, key=key, headers=headers, partition=partition,
                                           on_delivery=self._delivered)
                return
            except BufferError:
                if self._stop.is_set() and (self._remaining(1.0) <= 0 or
                                            time.monotonic() - self._last_broker_ok > self._broker_window()):
                    raise _Stopping("produce (local queue full)") from None
                self._producer.poll(0.1)  # local queue full: let deliveries drain

    def _emit(self, what: str, topic: str, out: OutputRecord, fields: Callable[[], Mapping[str, Any]],
              partition: int | None = None) -> None:
        """Produce ``out``, or the ``oversized_output`` record that stands for it when Kafka would refuse it."""
        size = record_size(*out)
        if not self._limits.fits(topic, out, size):
            out = self._replace(what, topic, out, fields, f"{size} bytes, above what topic {topic} takes "
                                                          f"({self._limits.limit(topic)} bytes less {RECORD_MARGIN})")
        try:
            self._produce(topic, out.key, out.value, out.headers, partition)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if is_fenced(err):
                raise self._fenced_error(err.str()) from None  # type: ignore[union-attr]
            if not (isinstance(err, KafkaError) and is_record_error(err.code())):
                raise
            self._limits.refused(topic, out.key, out.value, out.headers, too_large=is_size_error(err.code()))
            out = self._replace(what, topic, out, fields, f"refused by the producer: {err.str()}")
            self._produce(topic, out.key, out.value, out.headers, partition)

    def _replace(self, what: str, topic: str, out: OutputRecord, fields: Callable[[], Mapping[str, Any]],
                 reason: str) -> OutputRecord:
        self.metrics.oversized_outputs.labels(topic).inc()
        log.warning("output record too large for Kafka; an oversized_output record takes its place",
                    extra={"ctx": {"topic": topic, "output": what, "bytes": record_size(*out),
                                   "limit": self._limits.limit(topic)}})
        return oversized_output(what, topic, out, limit=self._limits.limit(topic), reason=reason, fields=fields())

    def _alert_partition(self, alert: Mapping[str, Any]) -> int | None:
        """The alerts partition of a model version (all its records on one, so one notify instance sees
        a whole model incident): a stable hash of ``model/model_version``."""
        n = self._alert_partitions
        if not n:
            return None
        key = f"{key_part(str(alert.get('model', '')))}/{key_part(str(alert.get('model_version', '')))}"
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % n

    def _publish(self, result: BatchResult) -> None:
        s = self.settings
        for alert in result.alerts:
            key, value = alert_record(alert)
            self._emit("alert", s.alerts_topic, OutputRecord(key, value, self._alert_headers),
                       lambda a=alert: output_fields(a), self._alert_partition(alert))
            log.info(_short(alert["summary"]), extra={"ctx": {
                "alert_status": alert["status"], "model": _short(alert["model"]), "feature": _short(alert["feature"]),
                "detector": alert["detector"], "partition": alert["window"]["partition"]}})  # type: ignore[index]
            if self.on_alert is not None:
                self.on_alert(alert)
        for summary in result.summaries:
            key, value = summary_record(summary)
            self._emit(str(summary.get("type") or "window_summary"), s.metrics_topic, OutputRecord(key, value, _JSON),
                       lambda d=summary: output_fields(d))
        for dl in result.dead_letters:
            rec = dl.record
            self._emit("dead_letter", s.deadletter_topic, dead_letter_record(rec, dl.reason, dl.detail),
                       lambda d=dl: {"reason": d.reason, "error": d.detail, "source_topic": d.record.topic,
                                     "source_partition": d.record.partition, "source_offset": d.record.offset,
                                     "source_value_bytes": len(d.record.value or b"")})
            log.debug("dead letter", extra={"ctx": {"reason": dl.reason, "topic": rec.topic,
                                                     "partition": rec.partition, "offset": rec.offset}})

    def _tell_progress(self) -> None:
        """Between batches: the start-up wait still under way, and the progress line when it is due."""
        now = time.monotonic()
        wait = self._wait
        if wait is not None:
            member = None
            try:
                member = self._consumer.memberid()
            except Exception:  # noqa: BLE001 - a client without it: the assignment ends the wait
                pass
            if member and wait.what == "the group join":
                wait.done(now=now, result=f"member {member}")
                self._wait = Wait("the partition assignment", "start-up done: partitions assigned", now=now, say=_say,
                                  detail=f"group {self.settings.group_id}; a member gets none while the group has more "
                                         "members than the input topics have partitions")
            else:
                wait.remind(now=now)
        if self._assigned:
            self._progress.tick(now=now, lag=self._current_lag, incidents=lambda: len(self.pipeline.alerts.incidents()))

    def _flush(self) -> None:
        """at_least_once: wait until Kafka has every output, or raise (offsets stay uncommitted)."""
        remaining = self._producer.flush(self._remaining(max(30.0, self.settings.broker_timeout_seconds)))
        if remaining or self._delivery_errors:
            errors = self._delivery_errors[:5]
            self._delivery_errors = []
            raise DeliveryError(f"{remaining} output record(s) undelivered, errors: {errors}; "
                                f"offsets not committed, the batch will be re-read")

    def _observe(self, result: BatchResult, records: list[SourceRecord], positions: dict[tuple[str, int], int], elapsed: float) -> None:
        m = self.metrics
        progress = self._progress
        progress.records(len(records))
        if result.dead_letters:
            now = time.monotonic()
            for dl in result.dead_letters:
                progress.dead_letter(dl.reason, _short(dl.detail), dl.record.topic, dl.record.partition,
                                     dl.record.offset, now=now)
        m.batch_latency.observe(elapsed)
        m.batch_size.observe(len(records))
        for rec_topic, count in Counter(map(itemgetter(0), records)).items():
            m.records.labels(rec_topic).inc(count)
        m.record_batch(result, models=self.pipeline.model_count, features=self.pipeline.feature_count,
                       incidents=self.pipeline.alerts.incidents() if result.alerts else None)
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


def listen_error(host: str, port: int, exc: BaseException) -> str:
    """One line naming the setting that made binding the metrics endpoint fail, and how to set it."""
    import errno
    import socket

    reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    host_setting = f"metrics_host ({setting_ways('metrics_host')})"
    port_setting = f"metrics_port ({setting_ways('metrics_port')})"
    if isinstance(exc, (socket.gaierror, UnicodeError, ValueError)) or getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:
        return (f"invalid setting {host_setting}: cannot listen on {host!r} ({reason}); set an address of this "
                "host, or 0.0.0.0 for all of them")
    if getattr(exc, "errno", None) == errno.EADDRINUSE:
        return (f"invalid setting {port_setting}: port {port} on {host!r} is taken by another process; set a free "
                "port (each worker on a host needs its own), or 0 to turn the endpoint off")
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
        return (f"invalid setting {port_setting}: no permission to listen on port {port} ({reason}); ports below "
                "1024 need privileges, set one above")
    return f"invalid setting {port_setting}: cannot listen on {host!r} port {port} ({reason})"


def _last_offsets(records: Sequence[SourceRecord]) -> dict[tuple[str, int], int]:
    """The last offset of each (topic, partition) in ``records`` (a partition's records are in offset order)."""
    if records and len(set(map(itemgetter(1), records))) == 1 and len(set(map(itemgetter(0), records))) == 1:
        return {(records[-1][0], records[-1][1]): records[-1][2]}  # one partition: its last record
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r[0], r[1])] = r[2]
    return last


def _merge(into: BatchResult, part: BatchResult) -> BatchResult:
    """``part`` added to ``into`` (lists extended, counts added, newest event times kept)."""
    for f in dataclasses.fields(into):
        mine, theirs = getattr(into, f.name), getattr(part, f.name)
        if isinstance(mine, list):
            mine.extend(theirs)
        elif f.name == "event_time_ms":
            for k, v in theirs.items():
                if v > mine.get(k, v - 1):
                    mine[k] = v
        elif isinstance(mine, dict):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v if isinstance(v, (int, float)) else v
        elif isinstance(mine, (int, float)) and not isinstance(mine, bool):
            setattr(into, f.name, mine + theirs)
    return into


def _describe(exc: BaseException) -> str:
    """``Class: message`` of an exception, whatever its ``__str__`` does."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = "<unprintable message>"
    return f"{type(exc).__name__}: {text}"


def _say(level: int, message: str, ctx: dict[str, object]) -> None:
    log.log(level, message, extra={"ctx": ctx})


def _short(value: object, chars: int = LOG_CHARS) -> str:
    return bounded(str(value), chars)


def stall_reason(call: str | None, since: float, timeout: float, now: float,
                 grace: float = STALL_GRACE_SECONDS) -> str | None:
    """Why the worker counts as stuck, or ``None``: a Kafka call blocked past ``timeout + grace``."""
    if call is None or now - since <= timeout + grace:
        return None
    return (f"Kafka call {call} has been blocked for {now - since:.0f} s, past its {timeout:.0f} s timeout: "
            "the client is stuck; restart the worker (its state is restored from the last checkpoint)")


def _kafka_text(exc: KafkaException) -> str:
    err = exc.args[0] if exc.args else exc
    return err.str() if isinstance(err, KafkaError) else str(err)


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]" for p in partitions)

