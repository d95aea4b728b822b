"""``driftline notify``'s loop: alerts topic → incidents (or gate) → webhooks → commit.

One record at a time, in partition order (so a key's firing is posted
before its resolution): decode, filter, then

* a record with an ``incident_id`` goes to the :class:`IncidentBook`, which
  holds an incident's opening (and its updates) for ``group_wait_seconds``
  of wall time so the features of one break are one message, and posts its
  resolution once all its features are back;
* a record without one (an older worker) is judged by the :class:`NotifyGate`
  (per-key cooldown) and posted as it is, one message per record;

each message goes to every endpoint (retried).  An offset is committed only
once every message covering the records before it has been posted (every
endpoint answered or was given up on): the consumer commits up to the
oldest record whose message is still waiting.  Delivery is therefore
**at-least-once**: a process stopped or killed before a message was posted
or committed posts it again after a restart, and receivers de-duplicate on
the message id (``alert_id`` for single records).  Records that are not
alerts are skipped, counted and committed, never raised.

Instances in one consumer group (``--group``) share the topic's partitions;
all records of an alert key are on one partition, so one instance sees a
key's whole history and its cooldown holds across the group.  When a
partition is assigned (a start, a restart, a rebalance), the records before
its committed offset from the last ``lookback_seconds`` (at least two
cooldowns) are re-read and judged without posting: open incidents, their
features, cooldowns and open keys hold across restarts too.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from driftline.config import Settings
from driftline.errors import ConfigError, KafkaFailure
from driftline.notify.gate import Decision, NotifyGate
from driftline.notify.incidents import IncidentBook, Message, incident_of
from driftline.notify.messages import (alert_key, decode_alert, detected_at_ms, incident_request_body,
                                       incident_request_headers, request_body, request_headers)
from driftline.notify.settings import NotifySettings
from driftline.observability.notify_metrics import NotifyMetrics
from driftline.observability.server import MetricsServer
from driftline.redact import bounded, escape
from driftline.transport import kafka
from driftline.transport.webhooks import Endpoint, Response, WebhookSender, endpoints_from

__all__ = ["Notifier", "consumer_config", "max_poll_interval_ms"]

log = logging.getLogger("driftline.notify")

#: Where a new group starts when ``auto_offset_reset`` is not given: new alerts only,
#: not a week of history.
DEFAULT_START = "latest"


def consumer_config(settings: Settings, notify: NotifySettings, *, max_poll_interval_ms: int) -> dict[str, object]:
    """librdkafka configuration of a group member on the alerts topic that commits by hand.

    A new group starts at the end of the topic unless ``auto_offset_reset`` was
    given explicitly (flag, environment or file): a first start posts new
    alerts, not the week of history the topic keeps.
    """
    start = settings.auto_offset_reset if "auto_offset_reset" in settings.model_fields_set else DEFAULT_START
    conf: dict[str, object] = {
        **settings.kafka_properties(),
        "group.id": notify.group,
        "auto.offset.reset": start,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        # librdkafka refuses a poll interval below the session timeout
        "max.poll.interval.ms": max(max_poll_interval_ms, settings.session_timeout_ms),
        "enable.partition.eof": False,
    }
    conf.setdefault("client.id", "driftline-notify")
    return conf


def max_poll_interval_ms(worst_case_seconds: float) -> int:
    """Room for the slowest record (every endpoint retried to the end) plus a minute; Kafka's 5 min at least.

    >>> max_poll_interval_ms(91.0), max_poll_interval_ms(2 * 91.0 + 500)
    (300000, 742000)
    """
    return int(min(86_400_000, max(300_000, 1000 * (worst_case_seconds + 60))))


#: Properties of notify's consumer that come from notify's own settings.
_NOTIFY_SOURCES = {
    "group.id": "the notify setting group (flag --group or env DRIFTLINE_NOTIFY_GROUP)",
    "max.poll.interval.ms": "driftline notify: the longest delivery (--http-timeout, --max-retries, --max-backoff) plus a minute",
}


class Notifier:
    """Posts the alerts topic's records to webhooks until :meth:`stop`."""

    def __init__(self, settings: Settings, notify: NotifySettings, *, metrics: NotifyMetrics | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.notify = notify
        self.metrics = metrics or NotifyMetrics()
        self.clock = clock
        self.monotonic = monotonic
        self.gate = NotifyGate(notify.cooldown_seconds)
        self.book = IncidentBook(notify.group_wait_seconds, notify.cooldown_seconds)
        self.endpoints: list[Endpoint] = endpoints_from(notify)
        self._stop = threading.Event()
        self.sender = WebhookSender(notify.retry_policy(), notify.timeout_seconds, stop=self._stop,
                                    on_retry=self._retrying)
        self._filters = {k: v for k, v in notify.filters().items() if v is not None}
        self._consumer: Consumer | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._keys_seen: dict[tuple[str, int], set[str]] = {}  # alert keys per partition, forgotten on revoke
        self._next: dict[tuple[str, int], int] = {}       # per partition: the offset after the last record handled
        self._committed: dict[tuple[str, int], int] = {}  # per partition: the last offset committed
        self._last_broker_ok = 0.0
        self.metrics_port: int | None = None
        self.started = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def stop(self, *_: object) -> None:
        """Stop after the current record; a wait between retries is cut short (signal-safe)."""
        self._stop.set()

    def ready(self) -> tuple[bool, str]:
        if not self._assigned:
            return False, "no partitions of the alerts topic assigned yet"
        if time.monotonic() - self._last_broker_ok > max(30.0, 4 * self.settings.poll_timeout_seconds) + self._worst_case():
            return False, "no successful broker round trip recently"
        return True, f"ready: {len(self._assigned)} partition(s)"

    def _worst_case(self) -> float:
        """Longest one record can take: every endpoint exhausts its retries."""
        return len(self.endpoints) * self.sender.policy.worst_case_seconds(self.sender.timeout)

    def run(self, *, install_signal_handlers: bool = True) -> None:
        s = self.settings
        with ExitStack() as stack:
            admin = kafka.make_admin(s)
            if s.alerts_topic not in kafka.check_broker(admin, s):
                log.warning("alerts topic does not exist yet; waiting for it", extra={"ctx": {"topic": s.alerts_topic}})
            self._last_broker_ok = time.monotonic()
            # librdkafka drops a member that does not poll for max.poll.interval.ms.
            conf = consumer_config(s, self.notify, max_poll_interval_ms=max_poll_interval_ms(self._worst_case()))
            consumer = kafka._client(Consumer, conf, "consumer", s, sources=_NOTIFY_SOURCES)
            stack.callback(self._close_consumer, consumer)
            self._consumer = consumer
            if s.metrics_port:
                try:
                    server = stack.enter_context(MetricsServer(self.metrics.registry, s.metrics_host, s.metrics_port, self.ready))
                except OSError as exc:
                    raise ConfigError(f"invalid setting metrics_port: cannot serve metrics on {escape(bounded(s.metrics_host, 100))}:"
                                      f"{s.metrics_port} ({escape(bounded(str(exc), 200))}); set another metrics_port "
                                      f"(flag --metrics-port, env DRIFTLINE_METRICS_PORT or TOML key metrics_port), "
                                      f"or 0 to turn it off") from None
                self.metrics_port = server.port
            if install_signal_handlers and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous = signal.signal(sig, self.stop)
                    stack.callback(signal.signal, sig, previous)
            consumer.subscribe([s.alerts_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_revoke)
            log.info("notify started", extra={"ctx": {"group": self.notify.group, "topic": s.alerts_topic,
                                                       "endpoints": ",".join(f"{e.name}={e.display}" for e in self.endpoints),
                                                       "cooldown_seconds": self.notify.cooldown_seconds,
                                                       "group_wait_seconds": self.notify.group_wait_seconds,
                                                       "metrics_port": self.metrics_port}})
            self.started.set()
            while not self._stop.is_set():
                self.poll_once()
            log.info("notify stopping")

    def _close_consumer(self, consumer: Consumer) -> None:
        consumer.close()
        self.metrics.assigned_partitions.set(0)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions assigned", extra={"ctx": {"partitions": ",".join(f"{p.topic}[{p.partition}]" for p in partitions)}})
        try:
            replayed = self._warm_gate(consumer, partitions)
        except KafkaException as exc:  # a cold gate posts a firing early, never loses one
            log.warning("could not re-read the alerts before the committed offsets; cooldowns start empty",
                        extra={"ctx": {"error": str(exc.args[0] if exc.args else exc)}})
            return
        if replayed:
            log.info("incidents and cooldowns rebuilt", extra={"ctx": {"records": replayed, "keys": len(self.gate),
                                                                        "incidents": len(self.book)}})

    def _warm_gate(self, consumer: Consumer, partitions: list[TopicPartition]) -> int:
        """Judge, without posting, the records of the lookback before each committed offset."""
        s = self.settings
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in consumer.committed(partitions, timeout=s.broker_timeout_seconds) if tp.offset > 0}
        if not committed:
            return 0
        lookback_ms = 1000.0 * max(self.notify.lookback_seconds, 2 * self.notify.cooldown_seconds, 2 * s.cooldown_seconds)
        reader = kafka.make_reader(s, group_id=f"{self.notify.group}.warm", client_id="driftline-notify-warm")
        try:
            since = int(self.clock() * 1000.0 - lookback_ms)
            found = reader.offsets_for_times([TopicPartition(t, p, since) for (t, p) in committed],
                                             timeout=s.broker_timeout_seconds)
            # no record since then (-1): nothing to judge; an error: from the beginning (more history, same rules)
            starts = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.error is None else OFFSET_BEGINNING)
                      for tp in found if tp.error is not None or 0 <= tp.offset < committed[(tp.topic, tp.partition)]]
            replayed = 0
            for msg in kafka.ReadToEnd(reader, starts, max(30.0, 3 * s.broker_timeout_seconds)):
                if msg.offset() < committed[(msg.topic(), msg.partition())]:
                    self._judge(msg.value(), (msg.topic(), msg.partition(), msg.offset()), warm=True)
                    replayed += 1
            self.metrics.replayed.inc(replayed)
            return replayed
        finally:
            reader.close()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every finished record is committed before the next consume; incident messages still waiting were
        # not, so the next owner reads their records again and posts them.  It decides for these keys and
        # incidents now: if they come back, start from "unknown".
        gone = {(p.topic, p.partition) for p in partitions}
        self._assigned -= gone
        for tp in gone:
            self.gate.forget(self._keys_seen.pop(tp, ()))
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
        self.book.forget(gone)
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("partitions revoked", extra={"ctx": {"partitions": ",".join(f"{t}[{p}]" for t, p in sorted(gone))}})

    # ------------------------------------------------------------ the loop
    def poll_once(self) -> int:
        """Consume and handle at most one record, post the incident messages that are due, commit;
        return how many records were handled."""
        assert self._consumer is not None
        timeout = self.settings.poll_timeout_seconds
        due = self.book.next_due()
        if due is not None:
            timeout = max(0.0, min(timeout, due - self.monotonic()))
        messages = self._consumer.consume(1, timeout)
        self._last_broker_ok = time.monotonic()
        done = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaFailure(f"fatal consumer error: {err.str()}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"ctx": {"error": err.str()}})
                continue
            if not self.handle(msg.value(), source=(msg.topic(), msg.partition(), msg.offset())):
                return done  # stopped mid-delivery: not committed, read again after a restart
            self._next[(msg.topic(), msg.partition())] = msg.offset() + 1
            done += 1
        if not self.flush():
            return done
        self._commit()
        return done

    def positions(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset that may be committed: after the last record handled, but not past
        a record whose incident message is still waiting."""
        waiting = self.book.waiting()
        return {tp: min(end, waiting.get(tp, end)) for tp, end in self._next.items()}

    def _commit(self) -> None:
        assert self._consumer is not None
        moved = [TopicPartition(t, p, offset) for (t, p), offset in self.positions().items()
                 if offset > self._committed.get((t, p), -1)]
        if not moved:
            return
        try:
            self._consumer.commit(offsets=moved, asynchronous=False)
            self._committed.update({(tp.topic, tp.partition): tp.offset for tp in moved})
        except KafkaException as exc:
            # The record was handled; an uncommitted offset only means it may be posted again.
            log.warning("offset commit failed; the record may be posted again after a restart",
                        extra={"ctx": {"error": str(exc.args[0] if exc.args else exc)}})

    def _judge(self, value: bytes | None, source: tuple[str, int, int] | None, *,
               warm: bool = False) -> tuple[dict[str, Any], str] | list[Message] | None:
        """Decode, filter and ask the incident book or the gate: the incident messages due at once (a
        list), or the alert and its key when the gate says send (a record without ``incident_id``).

        ``warm``: a record re-read on assignment, judged only to rebuild the book and the gate (not
        counted, not logged; the caller posts nothing)."""
        decoded = decode_alert(value)
        if decoded.alert is None:
            if not warm:
                self.metrics.alerts.labels("bad_record").inc()
                where = f"{source[0]}[{source[1]}]@{source[2]}" if source else "?"
                log.warning("skipped a record that is not an alert", extra={"ctx": {"record": where, "problem": decoded.problem}})
            return None
        alert = decoded.alert
        if any(alert.get(field) != want for field, want in self._filters.items()):
            if not warm:
                self.metrics.alerts.labels("filtered").inc()
            return None
        key = alert_key(alert)
        if source is not None:
            self._keys_seen.setdefault(source[:2], set()).add(key)
        at_ms = detected_at_ms(alert)
        if at_ms is None:
            at_ms = self.clock() * 1000.0
        if incident_of(alert) is not None:
            added = self.book.add(alert, key, now=self.monotonic(), at_ms=at_ms, source=source, warm=warm)
            if not warm:
                self.metrics.alerts.labels(added.outcome).inc()
                if added.outcome != "grouped":
                    log.info(f"alert not posted ({added.outcome})", extra={"ctx": {
                        "key": key, "status": alert["status"], "alert_id": alert["alert_id"],
                        "incident_id": bounded(str(alert.get("incident_id")), 100)}})
            return added.messages
        decision = self.gate.decide(key, alert["status"], alert["alert_id"], at_ms)
        if decision is not Decision.SEND:
            if not warm:
                self.metrics.alerts.labels(decision.value).inc()
                log.info(f"alert not posted ({decision.value})", extra={"ctx": {"key": key, "status": alert["status"],
                                                                                 "alert_id": alert["alert_id"]}})
            return None
        return alert, key

    def handle(self, value: bytes | None, *, source: tuple[str, int, int] | None = None) -> bool:
        """Judge and post one record (``source``: its topic, partition and offset).

        False only when stopped before every endpoint had an answer.
        """
        judged = self._judge(value, source)
        if judged is None:
            return True
        if isinstance(judged, list):
            return all(self._post(message) for message in judged)
        alert, key = judged
        if not self._deliver("alert", lambda kind: request_body(kind, alert), request_headers(alert),
                             {"key": key, "status": alert["status"], "alert_id": alert["alert_id"]}):
            return False
        self.metrics.alerts.labels("sent").inc()
        return True

    def flush(self) -> bool:
        """Post the incident messages whose grouping delay is over; False when stopped before one was
        posted (its records stay uncommitted)."""
        return all(self._post(message) for message in self.book.due(self.monotonic()))

    def _post(self, message: Message) -> bool:
        """Post one incident message to every endpoint; False only when stopped before each had an answer."""
        doc = message.document
        if not self._deliver("incident message", lambda kind: incident_request_body(kind, doc),
                             incident_request_headers(doc),
                             {"stage": message.stage, "incident_id": bounded(str(doc.get("incident_id")), 100),
                              "message_id": message.message_id, "features": len(doc.get("features") or ())}):
            return False
        self.metrics.messages.labels(message.stage).inc()
        return True

    def _deliver(self, what: str, body: Callable[[str], bytes], headers: dict[str, str],
                 context: dict[str, Any]) -> bool:
        """Post to every endpoint (``body`` of the endpoint's kind), logging each outcome with ``context``;
        False only when stopped before each had an answer."""
        for endpoint in self.endpoints:
            result = self.sender.deliver(endpoint, body(endpoint.kind), headers)
            if result.outcome == "stopped":
                return False
            self.metrics.deliveries.labels(endpoint.name, result.outcome).inc()
            ctx: dict[str, Any] = {"endpoint": endpoint.name, "url": endpoint.display, **context,
                                   "attempts": result.attempts}
            if result.outcome == "delivered":
                log.info(f"{what} posted", extra={"ctx": ctx})
            else:
                log.error(f"{what} not delivered ({result.outcome}), given up",
                          extra={"ctx": {**ctx, "http_status": result.status, "error": result.error}})
        return True

    def _retrying(self, endpoint: Endpoint, response: Response, wait: float) -> None:
        self.metrics.retries.labels(endpoint.name).inc()
        log.warning("webhook failed; retrying", extra={"ctx": {"endpoint": endpoint.name, "url": endpoint.display,
                                                                "http_status": response.status,
                                                                "error": response.error, "wait_seconds": round(wait, 3)}})
