"""The Kafka worker: a thin loop between topics and the detection pipeline.

Per batch: consume → :meth:`Pipeline.process` → produce alerts, window
summaries and dead letters (and, when due, state checkpoints) → commit the
batch's offsets.

* ``exactly_once`` (default): all of it is one Kafka transaction, offsets
  included (``send_offsets_to_transaction``).  A failed transaction is
  aborted and the worker rewinds its partitions to their last checkpoint.
* ``at_least_once``: outputs are flushed, then offsets committed; a crash in
  between means the batch is read again, and the repeated alerts carry the
  same deterministic ``alert_id``.

State follows the partition: every ``checkpoint_interval_records`` /
``checkpoint_interval_seconds``, on revoke and on shutdown the state of each
assigned partition is written to the compacted state topic with the offset
it covers.  A worker that is assigned a partition restores its checkpoint,
seeks to the covered offset and re-reads up to the committed offset with its
outputs muted (they were published before), so nothing is skipped and
nothing is counted twice.  SIGTERM and SIGINT stop the loop between batches.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from operator import itemgetter
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from driftline.config import Settings
from driftline.contract.event import SourceRecord, build
from driftline.detection.pipeline import BatchResult, Pipeline, PipelineSettings
from driftline.detection.published import DEADLETTER_HEADERS, alert_record, dead_letter_record, summary_record
from driftline.detection.outcomes import ModelRules, OutcomeSettings
from driftline.detection.settings import STATISTICAL_CHECKS, MonitorSettings
from driftline.errors import ConfigError, DeliveryError, KafkaFailure
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.server import MetricsServer
from driftline.transport import kafka
from driftline.transport.alert_feed import WORKER_HEADER, AlertFeed
from driftline.transport.checkpoints import CheckpointStore, Restored
from driftline.transport.references import ReferenceFeed, ReferenceUpdate, load_profile_files

__all__ = ["Worker", "pipeline_settings", "DEADLETTER_HEADERS"]

log = logging.getLogger("driftline.worker")

_JSON = [("content-type", b"application/json")]

#: Retries of a transaction call that failed with a retriable error (a broker outage): 10 × up to 30 s.
TRANSACTION_RETRIES = 10
#: A transaction call still blocked this long after its own timeout has hung in the client.
STALL_GRACE_SECONDS = 60.0
#: Exit code of ``driftline run`` after a hung Kafka call (EX_SOFTWARE).
EXIT_STALLED = 70


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
        max_event_time_skew_seconds=settings.max_event_time_skew_seconds,
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
        self._peers: AlertFeed | None = None
        self.worker_id = settings.worker_transactional_id()
        self._alert_headers = _JSON + [(WORKER_HEADER, self.worker_id.encode())]
        self.on_alert = on_alert
        self._stop = threading.Event()
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
        #: records below these offsets were published by a previous owner: re-read with outputs muted
        self._mute: dict[tuple[str, int], int] = {}
        #: revoked partitions whose state is kept in case they come straight back (position at revoke)
        self._held: dict[tuple[str, int], int] = {}
        self._records_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        #: the blocking transaction call under way: (name, started, timeout)
        self._blocked: tuple[str | None, float, float] = (None, 0.0, 0.0)

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

    def run(self, *, install_signal_handlers: bool = True, exit_on_stall: bool = False) -> None:
        """Consume until :meth:`stop`.  ``exit_on_stall`` ends the process (exit code
        ``EXIT_STALLED``) when a Kafka call hangs past its timeout (see :meth:`stalled`),
        for process supervisors without a liveness probe; ``driftline run`` sets it."""
        s = self.settings
        if exit_on_stall:
            threading.Thread(target=self._exit_when_stalled, name="driftline-stall-watch", daemon=True).start()
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

            if s.state_topic:
                self._checkpoints = CheckpointStore(s, self._state_topic(admin, existing))
            self._peers = AlertFeed(s, self.worker_id)
            stack.callback(self._peers.close)
            producer = self._make_producer()
            stack.callback(lambda: self._producer.flush(10.0))  # the producer may be replaced (see _abort)
            consumer = kafka.make_consumer(s)
            stack.callback(self._close_consumer, consumer)
            self._producer, self._consumer = producer, consumer

            if s.metrics_port:
                server = stack.enter_context(MetricsServer(self.metrics.registry, s.metrics_host, s.metrics_port,
                                                           self.ready, alive=self.alive))
                self.metrics_port = server.port
            if install_signal_handlers and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous = signal.signal(sig, self.stop)
                    stack.callback(signal.signal, sig, previous)

            topics = s.input_topics + ([s.labels_topic] if s.labels_topic else [])
            consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info("worker started", extra={"ctx": {"group": s.group_id, "topics": ",".join(topics),
                                                       "bootstrap": s.bootstrap_servers, "metrics_port": self.metrics_port}})
            self.started.set()
            while not self._stop.is_set():
                self.poll_once()
            log.info("worker stopping")
            self._checkpoint(sorted(self._assigned), "shutdown")

    def _exit_when_stalled(self) -> None:
        while not self._stop.wait(5.0):
            reason = self.stalled()
            if reason is not None:
                log.critical(reason)
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os._exit(EXIT_STALLED)

    def _close_consumer(self, consumer) -> None:
        consumer.close()
        self.metrics.assigned_partitions.set(0)

    def _make_producer(self):
        s = self.settings
        if not self._exactly_once:
            return kafka.make_producer(s)
        tid = s.worker_transactional_id()
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
        started = time.perf_counter()
        starts = self._restore(tps)
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
        log.info("partitions assigned", extra={"ctx": {"partitions": _names(partitions),
                                                        "restore_seconds": round(time.perf_counter() - started, 3)}})

    def _on_revoke(self, consumer, partitions: list[TopicPartition]) -> None:
        # Offsets are committed after every batch; the state is checkpointed here so the next owner continues it.
        gone = [(p.topic, p.partition) for p in partitions]
        self._checkpoint(gone, "revoke")
        self._held.update({tp: self._positions[tp] for tp in gone if tp in self._positions})
        self._release(gone)
        log.info("partitions revoked", extra={"ctx": {"partitions": _names(partitions)}})

    def _on_lost(self, consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: write nothing, keep nothing.
        gone = [(p.topic, p.partition) for p in partitions]
        self.pipeline.drop_partitions(gone)
        self._release(gone)
        log.warning("partitions lost", extra={"ctx": {"partitions": _names(partitions)}})

    def _release(self, gone: list[tuple[str, int]]) -> None:
        for tp in gone:
            self._assigned.discard(tp)
            self._positions.pop(tp, None)
            self._mute.pop(tp, None)
            for gauge in (self.metrics.consumer_lag, self.metrics.event_time_lag):
                try:
                    gauge.remove(tp[0], str(tp[1]))
                except KeyError:
                    pass
        self.metrics.assigned_partitions.set(len(self._assigned))

    # ------------------------------------------------------------ state
    def _restore(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Take over the state of partitions; the offset to start each at (absent: the group's committed one)."""
        committed: dict[tuple[str, int], int] = {}
        for tp in self._consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=self.settings.broker_timeout_seconds):
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
        if not to_read:
            return starts
        found = self._checkpoints.read(to_read, committed, exactly_once=self._exactly_once) if self._checkpoints else {}
        for tp in to_read:
            restored = found.get(tp)
            if restored is not None and restored.state is not None:
                try:
                    self.pipeline.restore(restored.state)
                except Exception as exc:  # noqa: BLE001 - a well-formed but forged state may not fit: start clean
                    self.pipeline.drop_partitions([tp])
                    why = f"cannot take the state over: {type(exc).__name__}: {str(exc)[:200]}"
                    restored = Restored(None, "rejected", why, restored.checkpoint_bytes)
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
        if s.checkpoint_interval_records and self._records_since_checkpoint >= s.checkpoint_interval_records:
            return True
        return bool(s.checkpoint_interval_seconds) and time.monotonic() - self._last_checkpoint >= s.checkpoint_interval_seconds

    def _write_checkpoints(self, tps, trigger: str) -> list[tuple[str, int]]:
        """Produce the checkpoints of partitions whose position moved since their last one."""
        assert self._checkpoints is not None
        written = []
        now_ms = int(time.time() * 1000)
        for tp in tps:
            position = self._positions.get(tp)
            if position is None or self._checkpointed.get(tp) == position:
                continue
            size = self._checkpoints.write(self._producer, self.pipeline.snapshot(tp[0], tp[1], position, now_ms=now_ms),
                                           self._delivered)
            self.metrics.checkpoints.labels(trigger).inc()
            self.metrics.checkpoint_bytes.observe(size)
            written.append(tp)
        return written

    def _checkpoint(self, tps: list[tuple[str, int]], trigger: str) -> None:
        """Checkpoint (and commit the offsets of) partitions outside a batch: on revoke and at shutdown."""
        if self._checkpoints is None or not tps:
            return
        try:
            if self._exactly_once:
                self._producer.begin_transaction()
                written = self._write_checkpoints(tps, trigger)
                self._commit_transaction({tp: self._positions[tp] for tp in written})
            else:
                written = self._write_checkpoints(tps, trigger)
                self._flush()
        except (KafkaException, DeliveryError) as exc:
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
        if self._peers is not None:
            for firing in self._peers.poll():
                self.pipeline.alerts.note_remote(firing.key, firing.event_time_ms)
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
            if self._due():
                self._checkpoint(sorted(self._assigned), "interval")
                self._reset_interval()
            return None
        started = time.perf_counter()
        muted = [r for r in records if r.offset < self._mute.get((r.topic, r.partition), -1)] if self._mute else []
        if muted:
            # Re-read after a restore: rebuild the state, publish nothing (the previous owner did).
            self.pipeline.process(muted)
            self.metrics.replayed_records.inc(len(muted))
            records = [r for r in records if r.offset >= self._mute.get((r.topic, r.partition), -1)]
            for tp in [tp for tp, end in self._mute.items() if positions.get(tp, -1) + 1 >= end]:
                del self._mute[tp]
        result = self.pipeline.process(records) if records else BatchResult()
        for tp, offset in positions.items():
            self._positions[tp] = offset + 1
        self._records_since_checkpoint += len(records) + len(muted)
        offsets = {tp: offset + 1 for tp, offset in positions.items()}
        due = self._due()
        if self._exactly_once:
            try:
                self._producer.begin_transaction()
                self._publish(result)
                written = self._write_checkpoints(sorted(self._assigned), "interval") if due else []
                self._commit_transaction(offsets)
            except (KafkaException, DeliveryError) as exc:
                self._abort()
                self._rewind(exc)
                return None
        else:
            self._publish(result)
            written = self._write_checkpoints(sorted(self._assigned), "interval") if due else []
            self._flush()
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        for tp in written:
            self._checkpointed[tp] = self._positions[tp]
        if due:
            self._reset_interval()
        elapsed = time.perf_counter() - started
        self._observe(result, records, positions, elapsed)
        return result

    def _transaction_call(self, name: str, call: Callable[[float], object], *, retries: int = TRANSACTION_RETRIES) -> None:
        """Run a blocking transaction call, again while it fails with a retriable error (librdkafka allows
        that); while it runs, :meth:`stalled` can tell whether it outlived its timeout."""
        timeout = max(30.0, self.settings.broker_timeout_seconds)
        for attempt in range(retries):
            self._blocked = (name, time.monotonic(), timeout)
            try:
                call(timeout)
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not (isinstance(err, KafkaError) and err.retriable()) or attempt == retries - 1:
                    raise
                log.warning("Kafka transaction call failed; retrying",
                            extra={"ctx": {"call": name, "error": err.str(), "attempt": attempt + 1}})
            finally:
                self._blocked = (None, 0.0, 0.0)

    def stalled(self) -> str | None:
        """Why the worker is stuck (a Kafka call blocked well past its timeout), or ``None``."""
        call, since, timeout = self._blocked
        return stall_reason(call, since, timeout, time.monotonic())

    def alive(self) -> tuple[bool, str]:
        reason = self.stalled()
        return (False, reason) if reason else (True, "ok")

    def _reset_interval(self) -> None:
        self._records_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

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
            self._transaction_call("abort_transaction", lambda t: self._producer.abort_transaction(t), retries=1)
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

    def _rewind(self, exc: Exception) -> None:
        """After an aborted transaction: back to the last checkpoint of every assigned partition."""
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(err, KafkaError) and err.fatal():
            raise KafkaFailure(f"fatal Kafka transaction error (another worker with transactional id "
                               f"{self.settings.worker_transactional_id()!r}?): {err.str()}")
        log.warning("transaction aborted; rewinding to the last checkpoint", extra={"ctx": {"error": str(exc)}})
        tps = sorted(self._assigned)
        self._held.clear()
        self._mute.clear()  # _restore sets it again from the committed offsets
        starts = self._restore(tps)
        for (topic, partition) in tps:
            start = starts.get((topic, partition))
            if start is not None:
                self._consumer.seek(TopicPartition(topic, partition, start))

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
            key, value = alert_record(alert)
            self._produce(s.alerts_topic, key, value, self._alert_headers)
            log.info(str(alert["summary"]), extra={"ctx": {"alert_status": alert["status"], "model": alert["model"],
                                                            "feature": alert["feature"], "detector": alert["detector"],
                                                            "partition": alert["window"]["partition"]}})  # type: ignore[index]
            if self.on_alert is not None:
                self.on_alert(alert)
        for summary in result.summaries:
            key, value = summary_record(summary)
            self._produce(s.metrics_topic, key, value, _JSON)
        for dl in result.dead_letters:
            rec = dl.record
            out = dead_letter_record(rec, dl.reason, dl.detail)
            self._produce(s.deadletter_topic, out.key, out.value, out.headers)
            log.debug("dead letter", extra={"ctx": {"reason": dl.reason, "topic": rec.topic,
                                                     "partition": rec.partition, "offset": rec.offset}})

    def _flush(self) -> None:
        """at_least_once: wait until Kafka has every output, or raise (offsets stay uncommitted)."""
        remaining = self._producer.flush(max(30.0, self.settings.broker_timeout_seconds))
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

