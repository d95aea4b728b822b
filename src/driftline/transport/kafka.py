"""The Kafka boundary: client construction, topic creation, error translation.

Nothing outside :mod:`driftline.transport` imports confluent-kafka; its
exceptions are turned into :mod:`driftline.errors` here.
"""

from __future__ import annotations

import logging
import operator
import re
import time
from typing import Any, Callable, Iterable, Iterator

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.config import Settings, setting_ways
from driftline.config_errors import kafka_property_ways
from driftline.errors import BrokerUnreachableError, ConfigError, KafkaFailure
from driftline.redact import REDACTED, bounded, escape, is_secret_property, scrub

__all__ = ["make_admin", "make_consumer", "make_producer", "make_reader", "ReadToEnd", "json_objects", "record_headers", "partition_counts", "check_labels_topic", "check_broker", "ensure_topics", "OUTPUT_TOPIC_CONFIGS"]

log = logging.getLogger("driftline.kafka")

#: Configs of the topics driftline writes.  Alerts and summaries are events
#: (delete policy, a week); dead letters are kept longer so they can be replayed.
OUTPUT_TOPIC_CONFIGS = {
    "alerts": {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
    "metrics": {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
    "deadletter": {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)},
    # Latest profile per model/model_version, kept forever; profiles of
    # models with hundreds of features exceed Kafka's 1 MB default.
    "references": {"cleanup.policy": "compact", "max.message.bytes": str(16 * 1024 * 1024)},
    # Latest checkpoint chunk per key (group/topic/partition#chunk), kept forever.
    "state": {"cleanup.policy": "compact", "max.message.bytes": str(16 * 1024 * 1024)},
}


#: librdkafka properties driftline fills from one of its settings.
PROPERTY_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers", "group.id": "group_id", "auto.offset.reset": "auto_offset_reset",
    "session.timeout.ms": "session_timeout_ms", "heartbeat.interval.ms": "heartbeat_interval_ms",
    "transactional.id": "transactional_id", "transaction.timeout.ms": "transaction_timeout_ms",
    "sasl.password": "sasl_password", "ssl.key.password": "ssl_key_password",
}

# librdkafka names properties as 'property "x"', 'property: "x"' or `x` (values it quotes as 'value "..."')
_QUOTED_PROPERTY = re.compile(r'(?:[Pp]roperty:?\s*"([a-z][a-z0-9._-]*)")|`([a-z][a-z0-9._-]*)`')


def _blame(prop: str, conf: dict[str, object], settings: Settings | None, sources: dict[str, str]) -> str:
    """Which setting produced ``prop`` of a client configuration, where its value came from, how to set it."""
    name = escape(bounded(prop, 80))
    if prop in sources:
        return f"{name} comes from {sources[prop]}"
    if settings is not None and prop in settings.kafka and str(conf.get(prop)) == settings.kafka[prop]:
        return f"{name} from {settings.origin('kafka', prop)}; set it with {kafka_property_ways(prop)}"
    setting = PROPERTY_SETTINGS.get(prop)
    if setting is not None:
        origin = settings.origin(setting) if settings is not None else "default"
        return f"{name} comes from the setting {setting} ({origin}; set it with {setting_ways(setting)})"
    if prop in conf:
        return f"{name} is set by driftline (override it with {kafka_property_ways(prop)})"
    return f"{name}: not given (set it with {kafka_property_ways(prop)})"


def config_problem(text: str, conf: dict[str, object], what: str, settings: Settings | None = None,
                   sources: dict[str, str] | None = None) -> str:
    """librdkafka's complaint about a client configuration as one line: the property, the setting
    that produced it and where that came from; secret values never appear."""
    secrets = [str(v) for k, v in conf.items() if is_secret_property(k)]
    if settings is not None:
        secrets += settings.secret_values()
    text = scrub(text.strip(), secrets)
    props = list(dict.fromkeys(a or b for a, b in _QUOTED_PROPERTY.findall(text)))
    if not props:  # "Unsupported partition.assignment.strategy: bogus": a property of the configuration, unquoted
        props = [k for k in sorted(conf, key=len, reverse=True) if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", text)]
        props += [k for k in conf if k == "sasl.jaas.config" and "JAAS" in text]
    if any(is_secret_property(p) for p in props):  # 'Invalid value "..." for configuration property "sasl.password"'
        text = re.sub(r'value\s+("[^"]*"|\S+)', f"value {REDACTED}", text)
    text = escape(bounded(text, 300))
    blamed = "; ".join(_blame(p, conf, settings, sources or {}) for p in props[:3])
    subject = f"kafka property {escape(bounded(props[0], 80))}" if props else "Kafka configuration"
    return f"invalid {subject} for the {what}: {text}" + (f" ({blamed})" if blamed else "")


def _client(factory, conf: dict[str, object], what: str, settings: Settings | None = None, *,
            sources: dict[str, str] | None = None) -> Any:
    """A librdkafka client; a configuration librdkafka refuses becomes a :class:`ConfigError` naming
    the property and the setting it came from (``sources``: properties set from elsewhere)."""
    try:
        return factory(conf, logger=log)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        text = err.str() if isinstance(err, KafkaError) else str(err)
        raise ConfigError(config_problem(text, conf, what, settings, sources)) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(config_problem(str(exc), conf, what, settings, sources)) from None


def make_admin(settings: Settings) -> AdminClient:
    return _client(AdminClient, dict(settings.kafka_properties()), "admin client", settings)


def make_consumer(settings: Settings) -> Consumer:
    conf: dict[str, object] = {
        **settings.kafka_properties(),
        "group.id": settings.group_id,
        "auto.offset.reset": settings.auto_offset_reset,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "enable.partition.eof": False,
    }
    conf.setdefault("client.id", "driftline-worker")
    if settings.labels_topic:
        # Range assignment gives one member the same partition number of every
        # topic: inferences and labels of a model (both keyed by model) meet.
        conf.setdefault("partition.assignment.strategy", "range")
    return _client(Consumer, conf, "consumer", settings)


def make_producer(settings: Settings, *, client_id: str = "driftline-worker",
                  extra: dict[str, object] | None = None) -> Producer:
    conf: dict[str, object] = {
        **settings.kafka_properties(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **(extra or {}),
    }
    conf.setdefault("client.id", client_id)
    return _client(Producer, conf, "producer", settings)


#: How long a broker may hold a fetch at the end of a partition for a one-shot reader (librdkafka's
#: default is 500 ms): the end is reported after that fetch, so reading a small topic to its end
#: took 0.50 s, and 0.05 s with this (tansu, measured).
READ_TO_END_FETCH_WAIT_MS = 10


def make_reader(settings: Settings, *, group_id: str, client_id: str, follow: bool = False) -> Consumer:
    """A consumer for ``assign()`` reads (no group membership, nothing committed).

    ``follow``: the reader keeps polling for new records after the end (librdkafka's
    fetch wait then); otherwise it is made to reach the end quickly."""
    conf: dict[str, object] = {
        **settings.kafka_properties(),
        "group.id": group_id,  # required by the client; never joined with assign()
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "client.id": client_id,
    }
    if not follow:
        conf.setdefault("fetch.wait.max.ms", READ_TO_END_FETCH_WAIT_MS)
    return _client(Consumer, conf, "reader", settings,
                   sources={"group.id": f"the setting group_id (a reader's group is {escape(bounded(group_id, 80))})"})


def record_headers(msg: Message) -> tuple[tuple[str, bytes | None], ...] | None:
    """The headers of a consumed record, or None when the client cannot read them.

    A header *name* that is not valid UTF-8 (any producer can write one: the
    protocol carries bytes) makes confluent-kafka's ``Message.headers()``
    return with a ``UnicodeDecodeError`` still set; the record itself is fine.
    Called as ``msg.headers()`` from a loop that CPython 3.11 has specialised,
    the call is not checked and the pending error surfaces as ``SystemError``
    at the next unrelated C call, outside any ``try`` around this one
    (measured: after ~300 records).  ``methodcaller`` goes through the checked
    call path, so the error is raised (and caught) here.
    """
    try:
        return tuple(_headers(msg) or ())
    except Exception:  # noqa: BLE001 - SystemError wrapping UnicodeDecodeError
        return None


_headers = operator.methodcaller("headers")


class RecordHeaders:
    """The headers of a consumed record, read from it when first iterated (:func:`record_headers`;
    nothing when the client cannot read them): most records are never asked for theirs."""

    __slots__ = ("_msg", "_items")

    def __init__(self, msg: Message) -> None:
        self._msg = msg
        self._items: tuple[tuple[str, bytes | None], ...] | None = None

    def _read(self) -> tuple[tuple[str, bytes | None], ...]:
        if self._items is None:
            self._items = record_headers(self._msg) or ()
            self._msg = None
        return self._items

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return repr(self._read())


def json_objects(messages: Iterable[Message]) -> Iterator[tuple[Message, dict]]:
    """The messages whose value is a JSON object, with it decoded; others (tombstones, not JSON) are skipped."""
    for msg in messages:
        value = msg.value()
        if value is None:
            continue
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            yield msg, doc


class ReadToEnd:
    """The records of one topic from ``starts`` until every partition has reported its end once.

    Iterate over it for the records (a reader from :func:`make_reader`, which
    turns on ``enable.partition.eof``); afterwards ``pending`` holds the
    partitions whose end was not reached within ``timeout``.  Errors other
    than end-of-partition go to ``on_error`` (default: ignored).  The read
    also ends, early, once ``cancelled()`` is true (a worker asked to stop).
    """

    def __init__(self, reader: Consumer, starts: list[TopicPartition], timeout: float, *, poll_seconds: float = 0.05,
                 on_error: Callable[[KafkaError], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.reader = reader
        self.starts = starts
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.on_error = on_error
        self.cancelled = cancelled
        self.pending = {tp.partition for tp in starts}

    def __iter__(self) -> Iterator[Message]:
        self.reader.assign(self.starts)
        deadline = time.monotonic() + self.timeout
        while self.pending and time.monotonic() < deadline and not (self.cancelled is not None and self.cancelled()):
            for msg in self.reader.consume(1000, self.poll_seconds):
                err = msg.error()
                if err is None:
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    self.pending.discard(msg.partition())
                elif self.on_error is not None:
                    self.on_error(err)


def check_broker(admin: AdminClient, settings: Settings, *, waiting: Callable[[float], None] | None = None) -> set[str]:
    """List topics, or raise :class:`BrokerUnreachableError` with what to check.

    With ``waiting``, the wait is cut into attempts of at most 5 s, and ``waiting(seconds so far)`` is
    called after each unanswered one (a worker says that it still waits)."""
    deadline = time.monotonic() + settings.broker_timeout_seconds
    try:
        while True:
            left = deadline - time.monotonic()
            step = left if waiting is None else max(0.1, min(5.0, left))
            tried = time.monotonic()
            try:
                metadata = admin.list_topics(timeout=step)
                break
            except KafkaException:
                # an answer other than a timeout (it came early) is final, as is the end of the wait
                if waiting is None or time.monotonic() + 0.05 >= deadline or time.monotonic() - tried < step - 0.5:
                    raise
                waiting(settings.broker_timeout_seconds - (deadline - time.monotonic()))
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        detail = err.str() if isinstance(err, KafkaError) else str(err)
        raise BrokerUnreachableError(
            f"cannot reach Kafka at {settings.bootstrap_servers!r} within {settings.broker_timeout_seconds:g} s "
            f"({detail}); check the setting bootstrap_servers (DRIFTLINE_BOOTSTRAP_SERVERS / --bootstrap-servers) "
            f"and the security properties"
        ) from None
    return {name for name, t in metadata.topics.items() if t.error is None}


def partition_counts(admin: AdminClient, settings: Settings) -> dict[str, int]:
    """Partitions of every topic the broker lists."""
    try:
        metadata = admin.list_topics(timeout=settings.broker_timeout_seconds)
    except KafkaException as exc:
        raise KafkaFailure(f"cannot read topic metadata: {exc}") from None
    return {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}


def check_labels_topic(admin: AdminClient, settings: Settings, existing: set[str]) -> list[str]:
    """Create the labels topic like the input topics, or check that it is partitioned like them."""
    if not settings.labels_topic:
        return []
    counts = partition_counts(admin, settings)
    inputs = {t: counts[t] for t in settings.input_topics if t in counts}
    if settings.labels_topic not in counts:
        if settings.create_topics and inputs:
            return create_topics(admin, [settings.labels_topic], {}, max(inputs.values()),
                                 settings.topic_replication_factor, settings.broker_timeout_seconds)
        return []
    labels = counts[settings.labels_topic]
    for topic, n in inputs.items():
        if n != labels:
            raise ConfigError(
                f"invalid setting labels_topic: {settings.labels_topic!r} has {labels} partition(s) but input topic "
                f"{topic!r} has {n}; inferences and labels of a model are both keyed by model and must land on the "
                f"same partition number, so give the topics the same partition count (or set labels_topic '' to "
                f"turn labels off)")
    return []


def ensure_topics(admin: AdminClient, settings: Settings, existing: set[str]) -> list[str]:
    """Create the missing output topics (and the references topic); return the names created."""
    wanted = {
        settings.alerts_topic: OUTPUT_TOPIC_CONFIGS["alerts"],
        settings.metrics_topic: OUTPUT_TOPIC_CONFIGS["metrics"],
        settings.deadletter_topic: OUTPUT_TOPIC_CONFIGS["deadletter"],
    }
    missing = [name for name in wanted if name not in existing]
    created = create_topics(admin, missing, wanted, settings.topic_partitions, settings.topic_replication_factor,
                            settings.broker_timeout_seconds)
    if settings.references_topic not in existing:
        # One partition: a handful of small, rarely written records, read whole by every worker.
        created += create_topics(admin, [settings.references_topic],
                                 {settings.references_topic: OUTPUT_TOPIC_CONFIGS["references"]},
                                 1, settings.topic_replication_factor, settings.broker_timeout_seconds)
    if settings.state_topic and settings.state_topic not in existing:
        created += create_topics(admin, [settings.state_topic], {settings.state_topic: OUTPUT_TOPIC_CONFIGS["state"]},
                                 settings.topic_partitions, settings.topic_replication_factor, settings.broker_timeout_seconds)
    return created


def create_topics(admin: AdminClient, names: Iterable[str], configs: dict[str, dict[str, str]],
                  partitions: int, replication_factor: int, timeout: float) -> list[str]:
    new = [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                    config=configs.get(name, {})) for name in names]
    if not new:
        return []
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaFailure(f"cannot create topic {name!r}: {err}") from None
    return created
