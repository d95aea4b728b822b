"""Worker state checkpoints on the compacted ``driftline.state`` topic.

One checkpoint per input partition, keyed ``<group>/<topic>/<partition>``,
cut into chunks of at most :data:`CHUNK_BYTES` (Kafka's default 1 MB
message limit holds) with keys ``...#0``, ``...#1``, ...  All chunks of a
partition go to the same partition of the state topic, so they are read in
the order written; every chunk carries the checkpoint's id, chunk count and
covered offset in headers.  Compaction keeps the newest chunk per key, so
the topic holds one checkpoint per partition (plus history until the
cleaner runs).

Which checkpoint a new owner uses: the newest complete one, and under
``exactly_once`` the newest whose covered offset is at most the group's
committed offset.  On Kafka, ``read_committed`` never shows a checkpoint of
an aborted transaction; the offset rule keeps that true on brokers that do
show them (the tansu test broker), since an aborted checkpoint covers
offsets that were never committed.
"""

from __future__ import annotations

import logging
import math
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from driftline.config import Settings
from driftline.state.checkpoint import CheckpointError, PartitionState, decode_state, encode_state
from driftline.transport import kafka

__all__ = ["CheckpointStore", "Restored", "CHUNK_BYTES", "SPACED_FROM_SECONDS", "checkpoint_spacing"]

log = logging.getLogger("driftline.checkpoints")

#: Chunk size: below Kafka's default 1 MB record limit, whatever the topic's config.
CHUNK_BYTES = 900 * 1024
#: Most chunks of one checkpoint (3.6 GB; 10,000 features take 440)
MAX_CHUNKS = 4096

H_ID = "driftline.checkpoint.id"
H_CHUNKS = "driftline.checkpoint.chunks"
H_OFFSET = "driftline.checkpoint.offset"


#: checkpoints that take less than this to write are never spaced out (small states: by records exactly)
SPACED_FROM_SECONDS = 0.05


def checkpoint_spacing(last_seconds: float, max_share: float) -> float:
    """Seconds from one checkpoint to the next that ``checkpoint_interval_records`` may bring, after one that
    took ``last_seconds`` to write: checkpointing then takes at most ``max_share`` of the time (0: none).

    A checkpoint writes the whole state of every assigned partition, so its cost grows with the features a
    worker holds, not with the records between two of them: 2,200 features (100 models of 22) took 0.5 s,
    about 4 µs per record at the default 100,000 records.

    >>> checkpoint_spacing(0.5, 0.1), checkpoint_spacing(0.01, 0.1), checkpoint_spacing(0.5, 0.0)
    (4.5, 0.0, 0.0)
    """
    if max_share <= 0.0 or last_seconds < SPACED_FROM_SECONDS or not math.isfinite(last_seconds):
        return 0.0
    return last_seconds * (1.0 - max_share) / max_share


@dataclass(slots=True)
class Restored:
    """What was found for one partition: a state, or why not (``state`` None)."""

    state: PartitionState | None
    #: "restored", "none" (no checkpoint) or "rejected" (and why, in ``error``)
    outcome: str
    error: str | None = None
    checkpoint_bytes: int = 0


@dataclass(slots=True)
class _Candidate:
    offset: int
    chunks: int
    ident: bytes = b""
    parts: dict[int, bytes] = field(default_factory=dict)


class CheckpointStore:
    """Writes checkpoints through the worker's producer; reads them with a reader of its own."""

    def __init__(self, settings: Settings, state_partitions: int) -> None:
        self.settings = settings
        self.topic = settings.state_topic
        self.partitions = max(1, state_partitions)
        self._secret = settings.state_secret.get_secret_value().encode() if settings.state_secret is not None else None
        if self._secret is None:  # the worker creates its store once, at start
            log.warning(f"checkpoints are not signed: anyone who can write {self.topic} can change this worker's "
                        "state; set state_secret", extra={"ctx": {"state_topic": self.topic}})
        #: chunks last written (or read) per checkpoint key, to tombstone leftovers
        self._chunks: dict[str, int] = {}
        #: chunk size: lowered by the worker when the producer or the state topic takes less
        self.chunk_bytes = CHUNK_BYTES

    def key(self, topic: str, partition: int) -> str:
        return f"{self.settings.group_id}/{topic}/{partition}"

    def _state_partition(self, base: str) -> int:
        return zlib.crc32(base.encode()) % self.partitions

    # ------------------------------------------------------------- writing
    def write(self, producer: Producer, state: PartitionState, on_delivery) -> int:
        """Produce the checkpoint of one partition (the caller flushes or commits); its size in bytes."""
        data = encode_state(state, secret=self._secret)
        base = self.key(state.topic, state.partition)
        target = self._state_partition(base)
        size = self.chunk_bytes
        n = max(1, -(-len(data) // size))
        ident = uuid.uuid4().hex.encode()
        headers = [(H_ID, ident), (H_CHUNKS, str(n).encode()), (H_OFFSET, str(state.offset).encode())]
        for i in range(n):
            producer.produce(self.topic, key=f"{base}#{i}".encode(), value=data[i * size:(i + 1) * size],
                             partition=target, headers=headers, on_delivery=on_delivery)
        for i in range(n, self._chunks.get(base, 0)):  # a smaller checkpoint: drop the old tail
            producer.produce(self.topic, key=f"{base}#{i}".encode(), value=None, partition=target, on_delivery=on_delivery)
        self._chunks[base] = n
        return len(data)

    # ------------------------------------------------------------- reading
    def read(self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int],
             *, exactly_once: bool, cancelled: Callable[[], bool] | None = None) -> dict[tuple[str, int], Restored]:
        """The checkpoint to use for each partition (read from the state partitions that hold them).

        Only the best candidate so far and one being completed are kept per partition, so memory
        stays at about two checkpoints each however much history compaction (or a forger) left.
        ``cancelled``: stop reading once it is true (the result is then incomplete)."""
        wanted = {self.key(t, p): (t, p) for t, p in partitions}
        limits = {base: committed.get(tp) if exactly_once else None for base, tp in wanted.items()}
        best: dict[str, _Candidate] = {}
        open_: dict[str, _Candidate] = {}
        for key, value, headers in self._scan({self._state_partition(base) for base in wanted}, cancelled):
            base, _, index = key.rpartition("#")
            if base not in wanted or not (index.isascii() and index.isdigit() and len(index) <= 6):
                continue
            if value is None:
                continue
            h = dict(headers)
            try:
                ident, chunks, offset = h[H_ID], int(h[H_CHUNKS]), int(h[H_OFFSET])
            except (KeyError, ValueError, TypeError):
                continue
            if not int(index) < chunks <= MAX_CHUNKS:
                continue  # not a chunk driftline writes (a forged count would have the next write tombstone it all)
            self._chunks[base] = max(self._chunks.get(base, 0), chunks)  # tail chunks to tombstone later
            limit = limits[base]
            if limit is not None and offset > limit:
                continue  # covers offsets never committed (an aborted transaction's)
            # a checkpoint's chunks are written one after the other: one open candidate per partition is
            # enough, and bounds what forged chunks can make the reader hold
            cand = open_.get(base)
            if cand is None or cand.ident != ident or cand.chunks != chunks or cand.offset != offset:
                cand = open_[base] = _Candidate(offset, chunks, ident)
            cand.parts[int(index)] = value
            if len(cand.parts) == cand.chunks:
                best[base] = cand  # read in write order: the newest complete one wins
                del open_[base]
        out: dict[tuple[str, int], Restored] = {}
        for base, (topic, partition) in wanted.items():
            cand = best.get(base)
            if cand is None:
                out[(topic, partition)] = Restored(None, "none")
                continue
            data = b"".join(cand.parts[i] for i in range(cand.chunks))
            try:
                state = decode_state(data, secret=self._secret)
            except CheckpointError as exc:
                out[(topic, partition)] = Restored(None, "rejected", str(exc), len(data))
                continue
            if (state.topic, state.partition) != (topic, partition) or state.offset != cand.offset:
                out[(topic, partition)] = Restored(None, "rejected", "checkpoint is of another partition or offset", len(data))
                continue
            out[(topic, partition)] = Restored(state, "restored", None, len(data))
        return out

    def _scan(self, state_partitions: set[int], cancelled: Callable[[], bool] | None = None):
        """Every record of those partitions of the state topic, in order per partition, up to its end now."""
        s = self.settings
        reader: Consumer = kafka.make_reader(s, group_id=f"{s.group_id}.state.{uuid.uuid4().hex[:8]}",
                                             client_id="driftline-state-reader")
        try:
            metadata = reader.list_topics(self.topic, timeout=s.broker_timeout_seconds)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None:
                return
            records = kafka.ReadToEnd(
                reader, [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(state_partitions) if p in topic.partitions],
                s.broker_timeout_seconds,
                on_error=lambda err: log.warning("state topic read error", extra={"ctx": {"error": err.str()}}),
                cancelled=cancelled)
            for msg in records:
                key = msg.key()
                if key is None:
                    continue
                # (headers the client cannot read, a forged record's: none, so the record is refused as incomplete)
                yield key.decode("utf-8", "replace"), msg.value(), list(kafka.record_headers(msg) or ())
            if records.pending:
                log.warning("state topic not read to its end; partitions without a checkpoint start clean",
                            extra={"ctx": {"partitions": sorted(records.pending)}})
        finally:
            reader.close()
