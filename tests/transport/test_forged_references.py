"""Forged records on the references topic: each is a rejected update, never an exception or a crash.

Anyone who can write ``driftline.references`` (a careless user publishing by
hand included) hands every worker a JSON document whose numbers and sketch
bytes reach the monitors.  A mutated KLL sketch crashed the process in
DataSketches (segmentation fault) or raised ``IndexError``; counts beyond 64
bits, a negative ``m2`` or an empty category mix raised later, when the profile
was applied.  Each forged kind here is refused by the feed's decoder; the few
that are legitimate stay usable by a pipeline.
"""

from __future__ import annotations

import base64
import copy
import subprocess
import sys

import numpy as np
import orjson
import pytest

from driftline.contract.event import InferenceEvent, SourceRecord
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.settings import MonitorSettings
from driftline.reference.builder import ProfileBuilder
from driftline.transport.references import _update

T0 = 1_700_000_000_000


def _genuine() -> dict:
    rng = np.random.default_rng(0)
    b = ProfileBuilder()
    b.add([InferenceEvent("m", "v1", None, None, {"x": float(rng.normal()), "c": "ab"[i % 2]},
                          {"prediction": float(rng.random())}) for i in range(3000)])
    (p,) = b.result()
    doc = p.to_dict()
    doc.pop("id")  # a forger need not state an id
    return doc


GENUINE = _genuine()


def _feature(doc: dict, name: str) -> dict:
    return next(f for f in doc["features"] if f["name"] == name)


def _set(path: tuple, value: object):
    def mutate(doc: dict) -> None:
        target = doc if path[0] == "" else _feature(doc, path[0])
        for part in path[1:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


def _kll(offset: int, byte: int):
    def mutate(doc: dict) -> None:
        f = _feature(doc, "x")
        raw = bytearray(base64.b64decode(f["kll"]))
        raw[offset] = byte
        f["kll"] = base64.b64encode(bytes(raw)).decode()
    return mutate


FORGED = {
    "records beyond 64 bits (float)": _set(("", "records"), 1e300),
    "source records beyond 64 bits": _set(("", "source_records", "features"), 2.0 ** 70),
    "feature records 2**64-1": _set(("x", "records"), 2**64 - 1),
    "negative count": _set(("x", "count"), -1),
    "count as text": _set(("x", "count"), "7"),
    "non_finite beyond 64 bits": _set(("x", "non_finite"), 1e300),
    "moments n beyond 64 bits": _set(("x", "moments", "n"), 1e300),
    "negative m2": _set(("x", "moments", "m2"), -5.0),
    "min above max": _set(("x", "moments", "min"), 1e300),
    "mean as text": _set(("x", "moments", "mean"), "x"),
    "negative category count": _set(("c", "categories", "a"), -5),
    "category count beyond 64 bits": _set(("c", "categories", "a"), 1e300),
    "empty category mix": _set(("c", "categories"), {}),
    "empty sketch bytes": _set(("x", "kll"), ""),
    "sketch not base64": _set(("x", "kll"), "!!!"),
    "sketch k mutated": _kll(4, 0xFF),
    "sketch levels mutated": _kll(20, 0x7F),
    "sketch item count mutated": _kll(8, 0x01),
    "numeric type without a sketch": _set(("c", "type"), "numeric"),
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_a_forged_profile_is_a_rejected_update(kind):
    doc = copy.deepcopy(GENUINE)
    FORGED[kind](doc)
    update = _update(b"m/v1", orjson.dumps(doc))
    assert update.profile is None and update.error, kind


def test_a_forged_sketch_never_reaches_datasketches():
    """Byte mutations of the sketch's header, each read in a child process (a crash is its exit code)."""
    script = """
import base64, copy, random, sys, orjson
from driftline.transport.references import _update
doc = orjson.loads(sys.stdin.buffer.read())
f = next(f for f in doc["features"] if f["name"] == "x")
good = base64.b64decode(f["kll"])
random.seed(11)
for _ in range(200):
    raw = bytearray(good)
    for _ in range(random.randint(1, 3)):
        raw[random.randrange(60)] = random.randrange(256)
    f["kll"] = base64.b64encode(bytes(raw)).decode()
    u = _update(b"m/v1", orjson.dumps(doc))
    if u.profile is not None:
        u.profile.features[("features", "x")].sketch.get_quantiles([0.1, 0.5, 0.9])
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], input=orjson.dumps(GENUINE), capture_output=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == b"ok", (run.returncode, run.stderr[-2000:])


def test_the_genuine_profile_is_applied_and_monitored():
    update = _update(b"m/v1", orjson.dumps(GENUINE))
    assert update.error is None
    monitor = MonitorSettings.calibrated(false_alarm_rate=1e-3, warmup=30, window_events=200, window_seconds=None)
    pipeline = Pipeline(PipelineSettings(monitor=monitor))
    assert pipeline.set_reference(update.profile)
    records = [SourceRecord("in", 0, i, T0 + i, None, orjson.dumps(
        {"model": "m", "model_version": "v1", "features": {"x": float(i % 5), "c": "a"}, "prediction": 0.5}))
        for i in range(400)]
    result = pipeline.process(records)
    assert {s["reference"] for s in result.summaries} == {update.profile.name}


@pytest.mark.parametrize("model, version", [("m" * 300, "v1"), ("\ud800", "v1"), ("m", "v" * 257)])
def test_a_profile_named_as_no_record_could_be_is_a_rejected_update(model, version):
    doc = {**copy.deepcopy(GENUINE), "model": model, "model_version": version}
    update = _update(f"{model}/{version}".encode("utf-8", "surrogatepass"), _dumps(doc))
    assert update.profile is None and update.error
    assert len(update.key) <= 200 and len(update.error) < 1000


def _dumps(doc: dict) -> bytes:
    import json
    return json.dumps(doc).encode()  # json writes lone surrogates as \ud800 escapes, as a forger would


def test_profiles_beyond_max_models_are_rejected_and_a_withdrawal_frees_a_place():
    from driftline.config import load_settings
    from driftline.transport.references import ReferenceFeed, ReferenceUpdate

    feed = ReferenceFeed.__new__(ReferenceFeed)  # no consumer: only the admission rule
    feed.settings = load_settings(bootstrap_servers="x:1", max_models=2)
    feed._keys = set()
    genuine = _update(b"m/v1", orjson.dumps(GENUINE)).profile
    assert genuine is not None
    updates = [ReferenceUpdate(f"m{i}/v1", genuine) for i in range(3)]
    admitted = feed._admit(updates)
    assert [u.profile is not None for u in admitted] == [True, True, False]
    assert "max_models" in (admitted[2].error or "")
    assert feed._admit([ReferenceUpdate("m0/v1", genuine)])[0].profile is not None  # a replacement is no new place
    feed._admit([ReferenceUpdate("m0/v1", None)])  # withdrawn
    assert feed._admit([ReferenceUpdate("m2/v1", genuine)])[0].profile is not None
