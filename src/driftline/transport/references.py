"""Reference profiles in and out of Kafka, and from files.

Profiles live on a compacted topic (``driftline.references``) keyed by
``model/model_version``: the latest record per key is the profile in force, a
tombstone (null value) withdraws it.  Every worker reads the whole topic at
start, before its first batch, then follows it between batches, so a new
profile takes effect without a restart (hot reload).  A record that is not a
valid profile is reported and skipped; it never stops the worker.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from driftline.config import Settings
from driftline.contract.decode import _MAX_NAME as MAX_NAME
from driftline.contract.names import is_utf8, plain
from driftline.errors import ConfigError, DeliveryError, ProfileError
from driftline.reference.profile import ReferenceProfile
from driftline.transport import kafka

__all__ = ["ReferenceFeed", "ReferenceUpdate", "publish_profiles", "withdraw_profile", "load_profile_files",
           "profile_in_force", "MAX_PROFILE_BYTES"]

log = logging.getLogger("driftline.references")

MAX_PROFILE_BYTES = 16 * 1024 * 1024
#: How often a worker looks for a references topic that did not exist at start.
LOOK_AGAIN_SECONDS = 30.0


class ReferenceUpdate(NamedTuple):
    """One record of the references topic: a profile, a withdrawal (``profile`` None), or an ``error``."""

    key: str
    profile: ReferenceProfile | None
    error: str | None = None


def load_profile_files(paths: list[str]) -> list[ReferenceProfile]:
    """Read profile files, or raise :class:`ConfigError` naming the setting and the file."""
    profiles = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"invalid setting reference_files (env DRIFTLINE_REFERENCE_FILES, flag --reference-files): "
                              f"{name!r} does not exist")
        try:
            profiles.append(ReferenceProfile.from_bytes(path.read_bytes()))
        except ProfileError as exc:
            raise ConfigError(f"invalid setting reference_files: {name!r} is not a usable profile: {exc}") from None
    return profiles


def withdraw_profile(settings: Settings, model: str, model_version: str) -> None:
    """Write a tombstone for ``model/model_version``: workers go back to warm-up references."""
    _send(settings, [(f"{model}/{model_version}".encode(), None)])


def publish_profiles(settings: Settings, profiles: list[ReferenceProfile]) -> None:
    """Write profiles to the references topic (created compacted if missing)."""
    records = []
    for profile in profiles:
        data = profile.to_bytes()
        if len(data) > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile {profile.key} is {len(data):,} bytes, over the {MAX_PROFILE_BYTES:,}-byte limit")
        records.append((profile.key.encode(), data))
    _send(settings, records)


def _send(settings: Settings, records: list[tuple[bytes, bytes | None]]) -> None:
    admin = kafka.make_admin(settings)
    existing = kafka.check_broker(admin, settings)
    if settings.references_topic not in existing:
        kafka.create_topics(admin, [settings.references_topic],
                            {settings.references_topic: kafka.OUTPUT_TOPIC_CONFIGS["references"]},
                            1, settings.topic_replication_factor, settings.broker_timeout_seconds)
    producer = kafka.make_producer(settings, client_id="driftline-reference",
                                   extra={"message.max.bytes": MAX_PROFILE_BYTES, "compression.type": "zstd"})
    errors: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(f"{msg.key()!r}: {err.str()}")

    for key, value in records:
        producer.produce(settings.references_topic, key=key, value=value, on_delivery=delivered)
    remaining = producer.flush(max(30.0, settings.broker_timeout_seconds))
    if remaining or errors:
        raise DeliveryError(f"{remaining} record(s) undelivered to {settings.references_topic!r}: {errors[:3]}")


def profile_in_force(settings: Settings, model: str, model_version: str, *, timeout: float) -> tuple[ReferenceProfile | None, bool]:
    """The profile the workers use for ``model/model_version``, read from the references topic to its end.

    The last valid profile under the key, unless a later tombstone withdrew
    it (a rejected record leaves the one before in force, as in the workers).
    Returns it (or None) and whether the topic was read to its end within
    ``timeout``.
    """
    admin = kafka.make_admin(settings)
    topic = settings.references_topic
    if topic not in kafka.check_broker(admin, settings):
        return None, True
    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.references.read", client_id="driftline-reference")
    try:
        metadata = reader.list_topics(topic, timeout=settings.broker_timeout_seconds)
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.topics[topic].partitions)]
        records = kafka.ReadToEnd(reader, starts, timeout)
        wanted = f"{model}/{model_version}"
        profile: ReferenceProfile | None = None
        for msg in records:
            key = msg.key()
            if key is None or key.decode("utf-8", "replace") != wanted:
                continue
            update = _update(key, msg.value())
            if update.error is None:
                profile = update.profile
        return profile, not records.pending
    finally:
        reader.close()


def profiles_in_force(settings: Settings, *, timeout: float) -> tuple[dict[str, ReferenceProfile | None], bool]:
    """Every key of the references topic with its profile in force (None: withdrawn by a tombstone, or only
    rejected records), read to its end; and whether the end was reached within ``timeout``."""
    admin = kafka.make_admin(settings)
    topic = settings.references_topic
    if topic not in kafka.check_broker(admin, settings):
        return {}, True
    reader = kafka.make_reader(settings, group_id=f"{settings.group_id}.references.read", client_id="driftline-reference")
    try:
        metadata = reader.list_topics(topic, timeout=settings.broker_timeout_seconds)
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.topics[topic].partitions)]
        records = kafka.ReadToEnd(reader, starts, timeout)
        found: dict[str, ReferenceProfile | None] = {}
        for msg in records:
            key = msg.key()
            if key is None:
                continue
            name = key.decode("utf-8", "replace")
            update = _update(key, msg.value())
            if update.error is None:
                found[name] = update.profile
            else:
                found.setdefault(name, None)
        return found, not records.pending
    finally:
        reader.close()


class ReferenceFeed:
    """Follows the references topic from its beginning (no consumer group, nothing committed)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Consumer = kafka.make_reader(settings, group_id=f"{settings.group_id}.references.{uuid.uuid4().hex[:8]}",
                                                     client_id="driftline-references", follow=True)
        self._assigned = False
        self._next_look = 0.0
        #: keys of the profiles in force: at most max_models, like the models they are for
        self._keys: set[str] = set()

    def _admit(self, updates: list[ReferenceUpdate]) -> list[ReferenceUpdate]:
        """Profiles beyond ``max_models`` distinct keys are rejected (a flood of keys cannot grow memory
        or the ``driftline_reference_info`` series without bound); a withdrawal frees its place."""
        out = []
        cap = self.settings.max_models
        for update in updates:
            if update.error is None and update.profile is None:
                self._keys.discard(update.key)
            elif update.profile is not None:
                if update.key not in self._keys and len(self._keys) >= cap:
                    update = ReferenceUpdate(update.key, None, f"more than max_models ({cap}) reference profiles: "
                                                               "not applied (withdraw one, or raise max_models)")
                else:
                    self._keys.add(update.key)
            out.append(update)
        return out

    def start(self, existing_topics: set[str]) -> list[ReferenceUpdate]:
        """Assign every partition of the topic from the beginning and read what is there."""
        topic = self.settings.references_topic
        if topic not in existing_topics:
            log.info("no references topic yet; models use warm-up references until it appears",
                     extra={"ctx": {"topic": topic}})
            self._next_look = time.monotonic() + LOOK_AGAIN_SECONDS
            return []
        # Read until every partition reported its end once (or the broker timeout passes).
        records = kafka.ReadToEnd(self._consumer, self._starts(), self.settings.broker_timeout_seconds,
                                  on_error=lambda err: log.warning("references consumer error",
                                                                   extra={"ctx": {"error": err.str()}}))
        updates = self._admit([_update(msg.key(), msg.value()) for msg in records])
        if records.pending:
            log.warning("references topic not read to its end at start-up; the rest applies as it arrives",
                        extra={"ctx": {"partitions": sorted(records.pending)}})
        return updates

    def _starts(self) -> list[TopicPartition]:
        """Every partition of the topic from its beginning (the feed follows them from then on)."""
        topic = self.settings.references_topic
        metadata = self._consumer.list_topics(topic, timeout=self.settings.broker_timeout_seconds)
        self._assigned = True
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.topics[topic].partitions)]

    def poll(self) -> list[ReferenceUpdate]:
        """New records since the last call (does not wait)."""
        if not self._assigned:
            if time.monotonic() < self._next_look:
                return []
            # The topic did not exist at start: look for it now and then.
            self._next_look = time.monotonic() + LOOK_AGAIN_SECONDS
            try:
                metadata = self._consumer.list_topics(self.settings.references_topic, timeout=1.0)
                topic = metadata.topics.get(self.settings.references_topic)
                if topic is None or topic.error is not None or not topic.partitions:
                    return []
            except KafkaException:
                return []
            self._consumer.assign(self._starts())
            log.info("references topic appeared; following it", extra={"ctx": {"topic": self.settings.references_topic}})
        updates = []
        for msg in self._consumer.consume(100, 0):
            err = msg.error()
            if err is None:
                updates.append(_update(msg.key(), msg.value()))
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("references consumer error", extra={"ctx": {"error": err.str()}})
        return self._admit(updates)

    def close(self) -> None:
        self._consumer.close()


def _update(key: bytes | None, value: bytes | None) -> ReferenceUpdate:
    name = key.decode("utf-8", "replace") if key is not None else ""
    shown = plain(name, 200)
    if value is None:
        return ReferenceUpdate(name, None)
    try:
        profile = ReferenceProfile.from_bytes(value)
    except ProfileError as exc:  # a rejected record is only logged: under its bounded key
        return ReferenceUpdate(shown, None, str(exc)[:1000])
    except Exception as exc:  # noqa: BLE001 - a record of the topic never stops the worker
        return ReferenceUpdate(shown, None, f"not a usable reference profile ({type(exc).__name__})")
    for what, text in (("model", profile.model), ("model_version", profile.model_version)):
        if not text or len(text) > MAX_NAME or not is_utf8(text):
            return ReferenceUpdate(shown, None, f"the profile's {what} must be a string of 1 to {MAX_NAME} characters "
                                                "of valid UTF-8, as in inference records")
    if name != profile.key:
        return ReferenceUpdate(shown, None, f"record key {shown!r} does not match the profile's model/version "
                                            f"{plain(profile.key, 200)!r}")
    return ReferenceUpdate(name, profile)
