"""The prediction logger: one non-blocking call per prediction, Kafka delivery in the background.

How a record travels, and where it can be lost (each loss is counted):

    log() ── encode (orjson) ──► invalid   the record breaks the input contract
      │
      └─ Producer.produce() ───► dropped   the local buffer is full (drop-newest), or the logger is closed
           │  (librdkafka's bounded queue: batching, compression, retries)
           └─ background poll thread serves delivery reports
                 ├─► delivered
                 └─► failed    Kafka did not acknowledge the record within delivery_timeout_seconds

``log()`` only encodes the record and appends it to librdkafka's in-memory
queue: it never waits for the network, never raises, and costs a few
microseconds whether the broker is up or not.  The queue is the bounded local
buffer (``max_buffered_records`` records, ``max_buffered_bytes`` bytes); when it
is full the *newest* record is dropped, because the records already queued are
batched in event-time order and are the ones about to be delivered once the
broker answers again.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Mapping, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

from driftline.client.records import DEFAULT_MAX_RECORD_BYTES, Timestamp, encode_inference, encode_label
from driftline.errors import ConfigError, RecordError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["PredictionLogger", "ClientStats", "DEFAULT_BOOTSTRAP_SERVERS", "DEFAULT_TOPIC", "DEFAULT_LABELS_TOPIC"]

log = logging.getLogger("driftline.client")
_urandom = os.urandom

DEFAULT_BOOTSTRAP_SERVERS = "localhost:9092"
DEFAULT_TOPIC = "ml.inferences"
DEFAULT_LABELS_TOPIC = "ml.labels"


class ClientStats(NamedTuple):
    """A snapshot of a logger's counters (records of both topics).

    ``sent`` records were queued for Kafka; each ends up ``delivered`` or
    ``failed`` (``buffered`` are still on their way).  ``dropped`` and
    ``invalid`` records were never queued.
    """

    sent: int
    delivered: int
    failed: int
    dropped: int
    invalid: int
    buffered: int


class PredictionLogger:
    """Send one input-contract record per prediction to Kafka, without ever blocking or raising.

    >>> with PredictionLogger("kafka:9092", model="fraud", model_version="v3") as logger:  # doctest: +SKIP
    ...     event_id = logger.log({"amount": 129.5, "country": "de"}, {"score": 0.91})
    ...     logger.log_label(event_id, 1)                       # later, when the truth is known

    ``model`` / ``model_version`` set once here are the defaults of every
    ``log()``.  Configuration errors (a bad Kafka property, a registry that
    already has these metrics) raise :class:`~driftline.errors.ConfigError`
    here, at start-up; after that nothing the logger does raises.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap servers; default ``$DRIFTLINE_BOOTSTRAP_SERVERS`` or ``localhost:9092``.
    topic, labels_topic
        Where inference records and labels go (``ml.inferences``, ``ml.labels``).
    max_buffered_records, max_buffered_bytes
        Bounds of the local buffer (librdkafka's queue); beyond them new records are dropped.
    delivery_timeout_seconds
        How long a record may wait for the broker (retries included) before it counts as failed.
    linger_ms
        How long librdkafka waits to fill a batch.
    kafka
        Further librdkafka properties (security, ``partitioner``, ...); they override the defaults.
    registry
        A ``prometheus_client.CollectorRegistry`` to export the counters in (``driftline_client_*``).
    """

    def __init__(self, bootstrap_servers: str | None = None, *, model: str | None = None,
                 model_version: str | None = None, topic: str = DEFAULT_TOPIC,
                 labels_topic: str = DEFAULT_LABELS_TOPIC, max_buffered_records: int = 100_000,
                 max_buffered_bytes: int = 64 * 1024 * 1024, delivery_timeout_seconds: float = 300.0,
                 linger_ms: int = 20, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 kafka: Mapping[str, object] | None = None, registry: CollectorRegistry | None = None,
                 report_interval_seconds: float = 30.0) -> None:
        servers = bootstrap_servers or os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP_SERVERS
        _check(isinstance(topic, str) and bool(topic), "topic", topic, "a topic name")
        _check(isinstance(labels_topic, str) and bool(labels_topic), "labels_topic", labels_topic, "a topic name")
        _check(type(max_buffered_records) is int and 1 <= max_buffered_records <= 2_147_483_647,
               "max_buffered_records", max_buffered_records, "an int from 1 to 2^31-1")
        _check(type(max_buffered_bytes) is int and 1024 <= max_buffered_bytes <= 2_147_483_647 * 1024,
               "max_buffered_bytes", max_buffered_bytes, "an int of at least 1024")
        _check(isinstance(delivery_timeout_seconds, (int, float)) and 0 < delivery_timeout_seconds <= 2_147_483,
               "delivery_timeout_seconds", delivery_timeout_seconds, "a positive number of seconds")
        _check(type(linger_ms) is int and 0 <= linger_ms <= 900_000, "linger_ms", linger_ms, "an int from 0 to 900000")
        _check(type(max_record_bytes) is int and max_record_bytes > 0, "max_record_bytes", max_record_bytes, "a positive int")
        _check(isinstance(report_interval_seconds, (int, float)) and report_interval_seconds > 0,
               "report_interval_seconds", report_interval_seconds, "a positive number of seconds")
        try:
            if model is not None:
                encode_inference(model=model, features={}, model_version=model_version)
            elif model_version is not None:
                encode_inference(model="m", features={}, model_version=model_version)
        except RecordError as exc:
            raise ConfigError(f"invalid setting model / model_version: {exc}") from None

        self.topic = topic
        self.labels_topic = labels_topic
        self.model = model
        self.model_version = model_version
        self.max_record_bytes = max_record_bytes
        self.last_error: str | None = None  #: the latest reason a record was invalid, dropped or failed
        self._lock = threading.Lock()
        self._sent = self._delivered = self._failed = self._dropped = self._invalid = 0
        self._closed = False
        self._unusable: str | None = None  # why records are dropped instead of queued: closed, or forked

        conf: dict[str, object] = {
            "bootstrap.servers": servers,
            "client.id": "driftline-client",
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "queue.buffering.max.messages": max_buffered_records,
            "queue.buffering.max.kbytes": max(1, max_buffered_bytes // 1024),
            "message.timeout.ms": int(delivery_timeout_seconds * 1000),
            **dict(kafka or {}),
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        try:
            self._producer = Producer(conf, logger=logging.getLogger("driftline.client.kafka"))
        except (KafkaException, TypeError, ValueError) as exc:
            detail = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
            raise ConfigError(f"invalid Kafka property for the prediction logger (argument 'kafka' or the "
                              f"bootstrap servers {servers!r}): {detail}") from None
        if registry is not None:
            from driftline.client.metrics import register_collector

            register_collector(registry, self)
        self._report_interval = report_interval_seconds
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="driftline-client-poll", daemon=True)
        self._poller.start()
        atexit.register(self._close_at_exit)
        _LOGGERS.add(self)

    # -- the serving path ---------------------------------------------------------------------------

    def log(self, features: Mapping[str, object] | None = None, prediction: object = None, *,
            model: str | None = None, model_version: str | None = None, event_id: str | None = None,
            timestamp: Timestamp | None = None) -> str | None:
        """Queue one prediction record; return its ``event_id``, or None if the record was not queued.

        Never blocks on Kafka and never raises.  ``event_id`` is a new UUID
        (32 random hex digits) when not given: keep it to send the label later.  ``timestamp``
        defaults to now (epoch milliseconds), taken here rather than when the
        record reaches Kafka.
        """
        try:
            model = model if model is not None else self.model
            if model_version is None:
                model_version = self.model_version
            if event_id is None:
                event_id = _urandom(16).hex()
            value = encode_inference(model=model, features=features, prediction=prediction,  # type: ignore[arg-type]
                                     model_version=model_version, event_id=event_id,
                                     timestamp=timestamp if timestamp is not None else int(time.time() * 1000),
                                     max_bytes=self.max_record_bytes)
        except RecordError as exc:
            self._count_invalid(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - the serving path must never see an exception
            self._count_invalid(f"cannot encode the record: {exc!r}")
            return None
        return event_id if self._produce(self.topic, model, value) else None

    def log_label(self, event_id: str, label: object, *, model: str | None = None,
                  model_version: str | None = None, timestamp: Timestamp | None = None) -> bool:
        """Queue a ground-truth label for the prediction ``event_id``; True if it was queued.

        ``timestamp`` (when the outcome became known) defaults to now.  Keyed
        by model like the inference records, so it reaches the partition number
        of its prediction (``docs/labels.md``).  Never blocks, never raises.
        """
        try:
            model = model if model is not None else self.model
            value = encode_label(model=model, event_id=event_id, label=label, model_version=model_version,  # type: ignore[arg-type]
                                 timestamp=timestamp if timestamp is not None else int(time.time() * 1000),
                                 max_bytes=self.max_record_bytes)
        except RecordError as exc:
            self._count_invalid(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001
            self._count_invalid(f"cannot encode the label: {exc!r}")
            return False
        return self._produce(self.labels_topic, model, value)

    def _produce(self, topic: str, model: str, value: bytes) -> bool:
        if self._unusable is not None:
            self._count_dropped(self._unusable)
            return False
        with self._lock:
            self._sent += 1  # before produce(): its delivery report may be served before produce() returns here
        try:
            self._producer.produce(topic, value=value, key=model.encode())
        except BufferError:
            with self._lock:
                self._sent -= 1
                self._dropped += 1
            self.last_error = "local buffer full (max_buffered_records / max_buffered_bytes): newest record dropped"
            return False
        except Exception as exc:  # noqa: BLE001 - KafkaException (e.g. a fatal producer error) and anything else
            with self._lock:
                self._sent -= 1
                self._failed += 1
            self.last_error = f"produce failed: {exc}"
            return False
        return True

    def _count_invalid(self, why: str) -> None:
        with self._lock:
            self._invalid += 1
        self.last_error = why

    def _count_dropped(self, why: str) -> None:
        with self._lock:
            self._dropped += 1
        self.last_error = why

    # -- the background thread ----------------------------------------------------------------------

    def _on_delivery(self, err: KafkaError | None, msg: object) -> None:
        if err is None:
            with self._lock:
                self._delivered += 1
        else:
            with self._lock:
                self._failed += 1
            self.last_error = f"delivery failed: {err.str()}"

    def _on_error(self, err: KafkaError) -> None:
        # Broker down, authentication, ...: librdkafka keeps retrying; records fail by their timeout.
        self.last_error = f"kafka: {err.str()}"
        if err.fatal():
            log.error("prediction logger: fatal Kafka error, records will not be delivered: %s", err.str())

    def _poll_loop(self) -> None:
        """Serve delivery reports; report losses to the log at most every ``report_interval_seconds``."""
        reported = (0, 0, 0)
        next_report = time.monotonic() + self._report_interval
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
            except Exception:  # noqa: BLE001 - a raising callback must not stop delivery reports
                log.exception("prediction logger: error while serving delivery reports")
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + self._report_interval
                reported = self._report(reported)
        self._report(reported)

    def _report(self, reported: tuple[int, int, int]) -> tuple[int, int, int]:
        s = self.stats()
        now = (s.failed, s.dropped, s.invalid)
        if now != reported:
            log.warning("prediction logger: %d failed, %d dropped, %d invalid record(s) since the last report "
                        "(totals %d / %d / %d; %d buffered); last: %s",
                        now[0] - reported[0], now[1] - reported[1], now[2] - reported[2],
                        *now, s.buffered, self.last_error)
        return now

    # -- counters -----------------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        """All counters at one instant."""
        with self._lock:
            counts = (self._sent, self._delivered, self._failed, self._dropped, self._invalid)
        return ClientStats(*counts, buffered=self.buffered)

    @property
    def sent(self) -> int:
        """Records queued for Kafka."""
        return self._sent

    @property
    def delivered(self) -> int:
        """Records Kafka acknowledged."""
        return self._delivered

    @property
    def failed(self) -> int:
        """Records Kafka did not acknowledge within the delivery timeout (or refused)."""
        return self._failed

    @property
    def dropped(self) -> int:
        """Records not queued because the buffer was full or the logger closed."""
        return self._dropped

    @property
    def invalid(self) -> int:
        """Records not queued because they break the input contract."""
        return self._invalid

    @property
    def buffered(self) -> int:
        """Records queued or in flight, waiting for their delivery report."""
        try:
            return len(self._producer)
        except Exception:  # noqa: BLE001
            return 0

    # -- shutdown -----------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` seconds for buffered records to be delivered; return how many remain.

        Blocks: call it at shutdown or between batches, not per prediction
        (in async code, ``await aflush()``).
        """
        try:
            return int(self._producer.flush(timeout))
        except Exception as exc:  # noqa: BLE001
            self.last_error = f"flush failed: {exc}"
            return self.buffered

    def close(self, timeout: float = 10.0) -> int:
        """Flush, then stop the background thread; later ``log()`` calls count as dropped.

        Returns the number of records still undelivered (they are lost).
        Safe to call twice.
        """
        if self._closed:
            return self.buffered
        self._closed = True
        self._unusable = "the logger is closed"
        remaining = self.flush(timeout)
        self._stop.set()
        if self._poller is not threading.current_thread():
            self._poller.join(5)
        atexit.unregister(self._close_at_exit)
        if remaining:
            log.warning("prediction logger closed with %d undelivered record(s); last error: %s",
                        remaining, self.last_error)
        return remaining

    def _close_at_exit(self) -> None:
        self.close(timeout=5.0)

    async def aflush(self, timeout: float = 10.0) -> int:
        """:meth:`flush` without blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> int:
        """:meth:`close` without blocking the event loop."""
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> "PredictionLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "PredictionLogger":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        s = self.stats()
        return (f"PredictionLogger(topic={self.topic!r}, model={self.model!r}, sent={s.sent}, delivered={s.delivered}, "
                f"failed={s.failed}, dropped={s.dropped}, invalid={s.invalid}, buffered={s.buffered})")


#: Every logger of this process, so that a fork() marks them unusable in the child.
_LOGGERS: "weakref.WeakSet[PredictionLogger]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child has the producer's memory but none of librdkafka's threads: records would queue forever.
    for logger in list(_LOGGERS):
        logger._lock = threading.Lock()  # it may have been held by another thread of the parent
        logger._unusable = ("the logger was created in another process (before a fork): create one in each "
                            "process, e.g. after gunicorn forks its workers")
        logger._closed = True
        log.warning("prediction logger inherited through fork() will drop every record; create it in the child process")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check(ok: bool, name: str, value: object, what: str) -> None:
    if not ok:
        raise ConfigError(f"invalid setting {name}: {value!r} (expected {what})")
