"""Checkpoint encoding: monitor state to bytes and back, versioned and checked.

A checkpoint is the state a worker keeps for one input partition (model
monitors, outcome monitors, alert keys) plus the input offset it covers.
It is written to Kafka by the transport layer; this module only turns it
into bytes and back, with no I/O.

Envelope (all integers big-endian)::

    b"DLCK"  u16 format  u8 flags  32-byte digest  payload (or zlib(payload), flag bit 1)

* ``format`` is :data:`STATE_FORMAT`.  A checkpoint of another format is
  rejected with a :class:`CheckpointError` naming both formats; the caller
  falls back to a clean start.  ``STATE_FORMAT`` is bumped whenever a state
  class changes shape (``tests/state/test_checkpoint.py`` pins the shape).
* ``digest`` is SHA-256 of the first 7 envelope bytes and the payload, or
  HMAC-SHA256 with ``state_secret`` (flag bit 0).  The SHA-256 only finds
  truncated or corrupt records: anyone can compute it, so without a secret a
  writer of the state topic can give a worker any state (see docs/state.md,
  threat model).  With a secret only its holders can.
* The payload is data only (:mod:`driftline.state.codec`): decoding builds
  numbers, strings, containers and arrays, then the state objects of an
  exact registry of classes, by code of driftline.  No name in the payload is
  ever imported or called, so a forged checkpoint can at worst be a wrong
  but well-formed state; it cannot run code.  (Format 1 was a pickle, which
  could; format-1 checkpoints are rejected.)  A compressed payload is
  inflated to at most :func:`inflate_limit` bytes (a zlib bomb is rejected).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATE_FORMAT", "CheckpointError", "PartitionState", "encode_state", "decode_state", "inflate_limit"]

#: Version of the checkpoint payload; bump when any state class changes shape.
#: 1: pickle (rejected since 2: it could name any callable); 2: data only (driftline.state.codec);
#: 3: reference-relative CUSUMs (NumericDetectors, CategoryCusums) instead of river's Page-Hinkley;
#: 4: window counts allocated with the window's first value, in the smallest dtype;
#: 5: NumericState without the cumulative sketch (nothing read it), its generator built at its first tie
STATE_FORMAT = 5
_MAGIC = b"DLCK"
_HEADER = struct.Struct(">4sHB32s")
_PREFIX = 7  # magic, format, flags: covered by the digest
_SIGNED = 0x01
_ZLIB = 0x02
_KNOWN_FLAGS = _SIGNED | _ZLIB
#: a compressed payload inflates to at most this many times its size (zlib on a state: about 2x), ...
_MAX_RATIO = 64
#: ... and never beyond this
_MAX_INFLATED = 2 ** 31


def inflate_limit(compressed: int) -> int:
    """Most bytes a compressed payload of ``compressed`` bytes may inflate to."""
    return min(_MAX_INFLATED, max(16 * 2 ** 20, _MAX_RATIO * compressed))


class CheckpointError(ValueError):
    """A checkpoint cannot be used (corrupt, foreign, other format); the message says why."""


@dataclass(slots=True)
class PartitionState:
    """Everything a worker keeps for one input partition, as of ``offset``.

    ``offset`` is the next offset to read: the state covers every record before it.
    """

    topic: str
    partition: int
    offset: int
    #: model monitors of this partition (``driftline.detection.monitor.ModelMonitor``)
    monitors: list[Any] = field(default_factory=list)
    #: outcome monitors (labels, rules) of this partition
    outcomes: list[Any] = field(default_factory=list)
    #: alert keys whose firing came from this partition: (key, state)
    alerts: list[tuple[str, Any]] = field(default_factory=list)
    #: the worker's event-time watermark (ms) when the checkpoint was taken
    watermark_ms: float | None = None
    #: wall-clock time of the checkpoint (ms since the epoch)
    written_at_ms: int = 0


# ------------------------------------------------------------- envelope
def _digest(header: bytes, parts: list, secret: bytes | None) -> bytes:
    h = hmac.new(secret, digestmod=hashlib.sha256) if secret else hashlib.sha256()
    h.update(header)
    for part in parts:
        h.update(part)
    return h.digest()


def encode_state(state: PartitionState, *, secret: bytes | None = None, compress: bool = False) -> bytes:
    """Checkpoint bytes of ``state``.

    Not compressed by default: the producer compresses the records (lz4) in C,
    and zlib would triple the time the worker loop spends on a checkpoint.
    """
    from driftline.state.codec import encode_payload

    parts = encode_payload(state)
    if compress:
        parts = [zlib.compress(b"".join(parts), 1)]
    flags = (_SIGNED if secret else 0) | (_ZLIB if compress else 0)
    prefix = _HEADER.pack(_MAGIC, STATE_FORMAT, flags, bytes(32))[:_PREFIX]
    return b"".join([prefix, _digest(prefix, parts, secret), *parts])


def _inflate(payload: memoryview) -> bytes:
    limit = inflate_limit(len(payload))
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, limit)
    except zlib.error as exc:
        raise CheckpointError(f"checkpoint payload cannot be inflated: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise CheckpointError(f"checkpoint payload inflates beyond {limit:,} bytes (or is cut short); rejected")
    if inflater.unused_data:
        raise CheckpointError("checkpoint payload has bytes after its compressed data")
    return raw


def decode_state(data: bytes | None, *, secret: bytes | None = None) -> PartitionState:
    """The state in ``data``, or :class:`CheckpointError` saying why it cannot be used."""
    from driftline.state.codec import decode_payload

    if not data or len(data) < _HEADER.size:
        raise CheckpointError("not a driftline checkpoint (too short)")
    magic, fmt, flags, digest = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise CheckpointError("not a driftline checkpoint (bad magic bytes)")
    if fmt != STATE_FORMAT:
        raise CheckpointError(f"checkpoint format {fmt}; this worker reads format {STATE_FORMAT}")
    if flags & ~_KNOWN_FLAGS:
        raise CheckpointError(f"checkpoint has unknown flags {flags:#04x}")
    if bool(flags & _SIGNED) != bool(secret):
        raise CheckpointError("checkpoint is signed but no state_secret is set" if flags & _SIGNED
                              else "checkpoint is not signed but state_secret is set")
    view = memoryview(data)
    payload = view[_HEADER.size:]
    if not hmac.compare_digest(digest, _digest(bytes(view[:_PREFIX]), [payload], secret)):
        raise CheckpointError("checkpoint digest does not match its content (corrupt, truncated or wrong secret)")
    return decode_payload(_inflate(payload) if flags & _ZLIB else payload)
