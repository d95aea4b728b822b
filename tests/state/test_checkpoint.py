"""Checkpoints: a restored pipeline continues exactly like the one that never stopped;
anything that is not a checkpoint of this format is rejected, never executed."""

from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.config import load_settings
from driftline.contract.event import SourceRecord, build
from driftline.detection.pipeline import Pipeline
from driftline.state.checkpoint import STATE_FORMAT, CheckpointError, PartitionState, decode_state, encode_state
from driftline.transport.worker import pipeline_settings

LAYOUT_FILE = Path(__file__).with_name("state_layout.json")
T0 = 1_700_000_000_000


def _records(start: int, stop: int, *, shift_at: int, seed: int) -> list[SourceRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, stop):
        shift = 1.5 if i >= shift_at else 0.0
        event = {"model": "m", "model_version": "v1", "event_id": f"e{i}", "timestamp": T0 + i * 50,
                 "features": {"x": float(rng.normal(shift, 1)), "y": float(rng.normal(0, 1)),
                              "colour": str(rng.choice(["red", "green", "blue"])), "n": int(rng.poisson(3))},
                 "prediction": float(rng.random())}
        out.append(build(SourceRecord, ("in", 0, i, None, b"m", orjson.dumps(event), ())))
    return out


def _pipeline() -> Pipeline:
    return Pipeline(pipeline_settings(load_settings(bootstrap_servers="x:1", warmup=500, window_events=500,
                                                    labels_topic="labels")))


def _comparable(items: list[dict]) -> list[dict]:
    # detected_at is wall clock; the summaries' quantiles come from a KLL sketch whose
    # compaction is random (driftline documents them as approximate), all else must match
    return [{k: v for k, v in item.items() if k not in ("detected_at", "quantiles")} for item in items]


def test_restored_pipeline_continues_exactly_like_the_uninterrupted_one():
    first, rest = _records(0, 6_000, shift_at=4_000, seed=1), _records(6_000, 12_000, shift_at=4_000, seed=2)
    live = _pipeline()
    before = live.process(first)
    fired_before = [a for a in before.alerts if a["status"] == "firing"]
    assert fired_before, "the drift must already fire before the checkpoint"

    data = encode_state(live.snapshot("in", 0, 6_000, now_ms=1))
    restored = _pipeline()
    restored.restore(decode_state(data))

    after_live = live.process(rest)
    after_restored = restored.process(rest)
    assert after_live.summaries and _comparable(after_restored.summaries) == _comparable(after_live.summaries)
    assert _comparable(after_restored.alerts) == _comparable(after_live.alerts)
    # the keys that fired before the checkpoint stay in cooldown: no second firing for the same drift
    refired = {a["alert_id"] for a in after_restored.alerts if a["status"] == "firing"} & {a["alert_id"] for a in fired_before}
    assert not refired
    assert restored.feature_count == live.feature_count


def test_restore_replaces_what_was_held_for_the_partition():
    p = _pipeline()
    p.process(_records(0, 1_000, shift_at=10**9, seed=3))
    snap = encode_state(p.snapshot("in", 0, 1_000))
    p.process(_records(1_000, 2_000, shift_at=10**9, seed=4))
    p.restore(decode_state(snap))
    (monitor,) = p.monitors.values()
    assert monitor.records == 1_000


def test_checkpoint_size_per_numeric_feature_is_tens_of_kilobytes_and_zlib_is_optional():
    p = _pipeline()
    p.process(_records(0, 5_000, shift_at=10**9, seed=5))
    snap = p.snapshot("in", 0, 5_000)
    data, packed = encode_state(snap), encode_state(snap, compress=True)
    per_feature = len(data) / p.feature_count
    assert 1_000 < per_feature < 60_000, per_feature
    assert len(packed) < len(data)
    assert decode_state(packed).offset == decode_state(data).offset == 5_000


# ------------------------------------------------------------------ rejection
def _valid() -> bytes:
    p = _pipeline()
    p.process(_records(0, 600, shift_at=10**9, seed=6))
    return encode_state(p.snapshot("in", 0, 600))


def test_other_format_is_rejected_with_both_versions_named():
    data = bytearray(_valid())
    struct.pack_into(">H", data, 4, STATE_FORMAT - 1 if STATE_FORMAT > 1 else 99)
    with pytest.raises(CheckpointError, match=f"this worker reads format {STATE_FORMAT}"):
        decode_state(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "json"])
def test_corrupt_or_foreign_bytes_are_rejected(damage):
    data = bytearray(_valid())
    if damage == "flip":
        data[-10] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b'{"format": "driftline.state/0", "monitors": []}')
    with pytest.raises(CheckpointError):
        decode_state(bytes(data))


def test_signed_checkpoints_need_the_same_secret():
    p = _pipeline()
    p.process(_records(0, 600, shift_at=10**9, seed=7))
    data = encode_state(p.snapshot("in", 0, 600), secret=b"k1")
    assert decode_state(data, secret=b"k1").offset == 600
    with pytest.raises(CheckpointError, match="digest"):
        decode_state(data, secret=b"k2")
    with pytest.raises(CheckpointError, match="signed"):
        decode_state(data)
    with pytest.raises(CheckpointError, match="not signed"):
        decode_state(_valid(), secret=b"k1")


class _Evil:
    def __reduce__(self):
        import os
        return os.system, ("touch /tmp/driftline-checkpoint-pwned",)


def _envelope(obj: object) -> bytes:
    import hashlib
    payload = pickle.dumps(obj, protocol=5)
    return struct.pack(">4sHB32s", b"DLCK", STATE_FORMAT, 0, hashlib.sha256(payload).digest()) + payload


def test_a_payload_calling_anything_outside_the_state_classes_is_refused(tmp_path):
    marker = Path("/tmp/driftline-checkpoint-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="may not contain"):
        decode_state(_envelope(PartitionState("in", 0, 1, monitors=[_Evil()])))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="may not contain"):
        decode_state(_envelope(PartitionState("in", 0, 1, monitors=[getattr])))
    with pytest.raises(CheckpointError, match="not a PartitionState"):
        decode_state(_envelope({"offset": 3}))


# -------------------------------------------------------------------- layout
def _layout() -> dict[str, list[str]]:
    """Attribute names of every class in a full checkpoint's object graph."""
    seen: dict[str, set[str]] = {}

    class Recorder(pickle.Pickler):
        def reducer_override(self, obj):
            cls = type(obj)
            if cls.__module__.startswith(("driftline.", "river.")):
                names = set(getattr(obj, "__dict__", {}))
                for klass in cls.__mro__:
                    names |= set(getattr(klass, "__slots__", ()))
                seen.setdefault(f"{cls.__module__}.{cls.__qualname__}", set()).update(names)
            return NotImplemented

    p = _pipeline()
    p.process(_records(0, 3_000, shift_at=2_000, seed=8))
    from driftline.state import checkpoint
    buffer = io.BytesIO()
    Recorder(buffer, protocol=5).dump(p.snapshot("in", 0, 3_000))
    assert checkpoint  # the module registers the sketch reducer used above
    return {k: sorted(v) for k, v in sorted(seen.items())}


def test_state_layout_is_pinned_to_the_format_version():
    current = {"format": STATE_FORMAT, "classes": _layout()}
    if not LAYOUT_FILE.exists():  # pragma: no cover - first run writes it
        LAYOUT_FILE.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(LAYOUT_FILE.read_text())
    assert current == pinned, (
        "the shape of checkpointed state changed: bump STATE_FORMAT in src/driftline/state/checkpoint.py "
        f"(old checkpoints are then rejected cleanly) and delete {LAYOUT_FILE.name} to re-pin it")
