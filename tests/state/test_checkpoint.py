"""Checkpoints: a restored pipeline continues exactly like the one that never stopped, every
attribute survives the round trip, and the shape of the state is pinned to the format number.
(Forged and damaged checkpoints: test_checkpoint_forgery.py.)"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import types
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import orjson
import pytest
from datasketches import kll_doubles_sketch

from driftline.config import load_settings
from driftline.contract.event import SourceRecord, build
from driftline.detection.pipeline import Pipeline
from driftline.state import codec
from driftline.state.checkpoint import STATE_FORMAT, CheckpointError, decode_state, encode_state
from driftline.transport.worker import pipeline_settings
from tests.state import streams

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
    # detected_at is wall clock; the summaries' quantiles and shape come from a KLL sketch whose
    # compaction is random (driftline documents them as approximate), all else must match
    return [{k: v for k, v in item.items() if k not in ("detected_at", "quantiles", "shape")} for item in items]


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


# ------------------------------------------------------- a full, realistic state
SPLIT, END = 1_850, 2_600  # mid-window: open windows, pending joins, a champion / challenger pair


def _split_state():
    live = streams.pipeline()
    streams.run(live, streams.records(0, SPLIT))
    at = streams.offsets(SPLIT)
    states = [live.snapshot(streams.INPUT, 0, at[streams.INPUT], now_ms=1),
              live.snapshot(streams.LABELS, 0, at[streams.LABELS], now_ms=1)]
    return live, states


def test_a_full_state_round_trips_and_the_restored_pipeline_publishes_the_same():
    live, states = _split_state()
    data = [encode_state(s) for s in states]
    monitors, outcomes = states[0].monitors, states[1].outcomes
    assert len(monitors) == 3 and states[0].alerts, "monitors of two models and fired alert keys"
    assert {f.categorical is not None for m in monitors for f in m.features.values()} == {True, False}
    assert all(o.pending for o in outcomes) and any(o.early for o in outcomes) and any(o.pairs for o in outcomes)
    restored = streams.pipeline()
    for d in data:
        restored.restore(decode_state(d))
    rest = streams.records(SPLIT, END)
    expected, got = streams.run(live, rest), streams.run(restored, rest)
    assert expected["alerts"] and expected["summaries"] and any(expected["labels"])
    assert got == expected
    assert streams.run(streams.pipeline(), rest) != expected  # (the state is what makes them so)


def _same(a, b, seen: dict, path: str) -> None:
    """``b`` is a faithful copy of ``a``: same types, values, attributes, and the same sharing."""
    assert type(a) is type(b), path
    if type(a) in (int, str, bool, bytes, type(None)):
        assert a == b, path
        return
    if type(a) is float:
        assert a == b and math.copysign(1, a) == math.copysign(1, b) or (math.isnan(a) and math.isnan(b)), path
        return
    if isinstance(a, tuple):  # immutable: equal values, identity not kept
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, seen, f"{path}[{i}]")
        return
    if id(a) in seen:
        assert seen[id(a)] is b, f"{path}: sharing lost"
        return
    seen[id(a)] = b
    if type(a) is np.ndarray:
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() and b.flags.writeable, path
    elif type(a) is kll_doubles_sketch:
        assert a.serialize() == b.serialize(), path
    elif type(a) is np.random.Generator:
        assert a.bit_generator.state == b.bit_generator.state, path
    elif type(a).__name__ == "AdaptiveWindowing":
        assert a.__getstate__() == b.__getstate__(), path
    elif type(a) is types.MethodType:
        assert a.__func__ is b.__func__ and seen.get(id(a.__self__)) is b.__self__, path
    elif type(a) in (dict, Counter, OrderedDict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], seen, f"{path}[{k!r}]")
    elif type(a) is list:
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, seen, f"{path}[{i}]")
    else:
        spec = codec.registry().by_type[type(a)]
        attrs_a = a.__getstate__() if spec.getstate else {n: getattr(a, n) for n in spec.names}
        attrs_b = b.__getstate__() if spec.getstate else {n: getattr(b, n) for n in spec.names}
        assert attrs_a.keys() == attrs_b.keys() == spec.names, path
        for name in spec.order:
            _same(attrs_a[name], attrs_b[name], seen, f"{path}.{name}")


def test_every_attribute_of_every_object_survives_the_round_trip():
    _, states = _split_state()
    for state in states:
        data = encode_state(state)
        back = decode_state(data)
        _same(state, back, {}, "state")
        assert encode_state(back) == data  # and writes back the same bytes


def test_restored_pipeline_continues_exactly_like_the_uninterrupted_one_with_secret_and_zlib():
    live, states = _split_state()
    restored = streams.pipeline()
    for s in states:
        restored.restore(decode_state(encode_state(s, secret=b"k", compress=True), secret=b"k"))
    rest = streams.records(SPLIT, END)
    assert streams.run(restored, rest) == streams.run(live, rest)


def test_shared_containers_stay_shared_and_cycles_are_refused():
    from driftline.detection.alerts import _KeyState
    from driftline.detection.findings import Finding, WindowSpan
    from driftline.state.checkpoint import PartitionState

    values, names, counts = [1.5, "\ud800", 2 ** 70, math.inf], {"x": 1}, Counter(a=2)
    nul = {"\x00@": 5, "b": values}  # a key that looks like a label
    details = {"a": values, "b": values, "c": names, "d": names, "e": counts, "f": counts, "g": nul, "h": nul,
               "i": (values, names)}
    window = WindowSpan("in", 0, 1, 2, None, None)
    finding = Finding("m", "v", "f", "drift", "adwin", "warning", 1.0, 0.5, "s", window, None, details=details)
    state = PartitionState("in", 0, 3, alerts=[("k", _KeyState(finding, 1.0, 2.0)), ("k2", _KeyState(finding, 3.0, 4.0))])
    back = decode_state(encode_state(state))
    _same(state, back, {}, "state")
    got = back.alerts[0][1].firing.details
    assert back.alerts[1][1].firing is back.alerts[0][1].firing
    assert got["a"] is got["b"] is got["i"][0] is got["g"]["b"] and got["c"] is got["d"] is got["i"][1]
    assert got["e"] is got["f"] and type(got["e"]) is Counter and got["g"] is got["h"] and got["g"]["\x00@"] == 5
    values.append(values)
    with pytest.raises(CheckpointError, match="cycle"):
        encode_state(state)


# -------------------------------------------------------------------- layout
def _layout() -> dict[str, list[str]]:
    """Every class a checkpoint may hold and the attributes written for it."""
    return {spec.alias: list(spec.order) for spec in sorted(codec.registry().by_alias.values(), key=lambda s: s.alias)}


def _digest(classes: dict) -> str:
    return hashlib.sha256(json.dumps(classes, sort_keys=True).encode()).hexdigest()


def test_every_class_of_a_full_checkpoint_is_registered_and_nothing_else_is_written():
    _, states = _split_state()
    seen: set[str] = set()
    for state in states:
        data = encode_state(state)
        (n,) = struct.unpack_from(">Q", data, 39)
        table, _ = orjson.loads(data[47:47 + n])
        seen |= {alias for alias, _ in table}
    # the classes of a full state (findings only as an alert key's firing, ClassificationStats only
    # for a classifier with class labels)
    assert seen <= set(_layout()) and {"PartitionState", "ModelMonitor", "NumericState", "CategoricalState",
                                        "OutcomeMonitor", "ADWIN", "NumericDetectors", "CategoryCusums", "CusumBank", "_Walk",
                                        "_Prediction"} <= seen


def test_state_layout_is_pinned_to_the_format_version():
    """Changing the shape of a state class (an attribute added, removed or renamed, a class added)
    fails here until STATE_FORMAT is bumped: old checkpoints are then rejected cleanly by number."""
    current = _layout()
    if not LAYOUT_FILE.exists() or os.environ.get("DRIFTLINE_REPIN_STATE") == str(STATE_FORMAT):  # pragma: no cover
        history = json.loads(LAYOUT_FILE.read_text())["history"] if LAYOUT_FILE.exists() else {}
        history[str(STATE_FORMAT)] = _digest(current)
        LAYOUT_FILE.write_text(json.dumps({"format": STATE_FORMAT, "classes": current, "history": history},
                                          indent=1, sort_keys=True) + "\n")
    pinned = json.loads(LAYOUT_FILE.read_text())
    advice = (f"the shape of checkpointed state changed: bump STATE_FORMAT in src/driftline/state/checkpoint.py "
              f"(old checkpoints are then rejected cleanly), then run this test once with "
              f"DRIFTLINE_REPIN_STATE=<the new number> to re-pin {LAYOUT_FILE.name}")
    assert pinned["format"] == STATE_FORMAT, advice
    assert pinned["classes"] == current, advice
    assert pinned["history"][str(STATE_FORMAT)] == _digest(current), advice
    earlier = {f: h for f, h in pinned["history"].items() if f != str(STATE_FORMAT)}
    assert _digest(current) not in earlier.values(), "a layout already used by an earlier format number"
