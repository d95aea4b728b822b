"""Firings of the other workers, read from the alerts topic.

A *hot* model's traffic is spread over several partitions, which may belong
to different workers; each would fire its own alert for the same drift.  Every
worker therefore follows the alerts topic (no consumer group, nothing
committed) and hands the firings of the others to its alert book, which
holds the key in cooldown as if it had fired itself.  Two workers that find
the same drift before either sees the other's alert still both publish; their
alerts then share the ``alert_id`` (same key and cooldown span) and a consumer
drops the second.  Own alerts are recognised by the ``driftline.worker``
header.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import NamedTuple

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from driftline.config import Settings
from driftline.contract.event import MAX_EVENT_MS
from driftline.detection.published import alert_key
from driftline.transport import kafka

__all__ = ["AlertFeed", "RemoteFiring", "WORKER_HEADER"]

log = logging.getLogger("driftline.alert_feed")

WORKER_HEADER = "driftline.worker"
#: How often a worker looks for an alerts topic that did not exist at start.
LOOK_AGAIN_SECONDS = 30.0


class RemoteFiring(NamedTuple):
    key: str
    event_time_ms: float


class AlertFeed:
    """Follows the alerts topic from ``cooldown_seconds`` ago (wall clock) on."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id.encode()
        self._consumer = kafka.make_reader(settings, group_id=f"{settings.group_id}.alerts.{uuid.uuid4().hex[:8]}",
                                           client_id="driftline-alert-feed", follow=True)
        self._assigned = False
        self._next_look = 0.0

    def _assign(self) -> bool:
        topic = self.settings.alerts_topic
        try:
            metadata = self._consumer.list_topics(topic, timeout=2.0).topics.get(topic)
        except KafkaException:
            return False
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return False
        since = int((time.time() - self.settings.cooldown_seconds) * 1000)
        wanted = [TopicPartition(topic, p, since) for p in sorted(metadata.partitions)]
        try:
            found = self._consumer.offsets_for_times(wanted, timeout=self.settings.broker_timeout_seconds)
        except KafkaException:
            found = [TopicPartition(topic, p.partition, OFFSET_BEGINNING) for p in wanted]
        # no record after that time: start at the end (-1 from offsets_for_times means "latest")
        self._consumer.assign(found)
        self._assigned = True
        return True

    def poll(self) -> list[RemoteFiring]:
        """Firings of other workers since the last call (does not wait)."""
        if not self._assigned:
            if time.monotonic() < self._next_look:
                return []
            self._next_look = time.monotonic() + LOOK_AGAIN_SECONDS
            if not self._assign():
                return []
        out = []
        for msg in self._consumer.consume(500, 0):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.debug("alert feed error", extra={"ctx": {"error": err.str()}})
                continue
            headers = kafka.record_headers(msg)
            if headers is None or dict(headers).get(WORKER_HEADER) == self.worker_id:
                continue  # (headers a worker cannot have written: not an alert of a worker)
            firing = _firing(msg.value())
            if firing is not None:
                out.append(firing)
        return out

    def close(self) -> None:
        self._consumer.close()


_NAMES = ("model", "model_version", "feature", "kind", "detector")


def _firing(value: bytes | None) -> RemoteFiring | None:
    """The key and event time of a firing alert record; None for anything else.

    Anyone who can write the alerts topic can put anything there: a record is
    only taken as a firing when it has the shape a worker writes (names as
    strings, an RFC 3339 ``event_time`` with offset, from 1970 to 9999).
    """
    try:
        alert = orjson.loads(value or b"")
        if type(alert) is not dict or alert.get("status") != "firing":
            return None
        event_time = alert.get("event_time")
        if type(event_time) is not str or len(event_time) > 64 or not all(type(alert.get(f)) is str for f in _NAMES):
            return None
        moment = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            return None
        when = moment.timestamp() * 1000.0
        if not 0 <= when <= MAX_EVENT_MS:
            return None
        key = alert_key(alert)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, OverflowError):
        return None
    return RemoteFiring(key, when)
