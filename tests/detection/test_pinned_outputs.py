"""The hot path changes speed, not results: what a fixed stream publishes is pinned.

The stream mixes what the worker meets: dense records in a fixed key order, sparse ones (features left
out), shuffled key orders, several models interleaved, a type change, non-finite values, a drift of one
feature and of a category mix, and records that become dead letters.  The alerts (their ids included),
window summaries and dead letters it gives are reduced to a digest pinned in ``pinned_outputs.json``.
Fields that are wall clock (``detected_at``) or come from a KLL sketch's random compaction
(``quantiles``, ``shape``) are left out.  An intended change of results re-pins with
``DRIFTLINE_REPIN_OUTPUTS=1`` and says why in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import orjson

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings

PIN = Path(__file__).with_name("pinned_outputs.json")
T0 = 1_700_000_000_000


def _stream() -> list[SourceRecord]:
    rng = np.random.default_rng(12)
    rnd = random.Random(12)
    out: list[SourceRecord] = []
    for i in range(30_000):
        model = ("fixed", "sparse", "shuffled")[i % 3]
        features: dict[str, object] = {f"n{j}": float(rng.normal() + (1.0 if j == 0 and i >= 18_000 else 0.0))
                                       for j in range(6)}
        features["c"] = str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2] if i < 21_000 else [0.2, 0.3, 0.5]))
        features["k"] = int(rng.poisson(3))
        if model == "sparse":
            features = {k: v for k, v in features.items() if rnd.random() < 0.8}
        elif model == "shuffled":
            items = list(features.items())
            rnd.shuffle(items)
            features = dict(items)
        if i % 997 == 0:
            features["n1"] = "text"  # a type change
        if i % 1_499 == 0:
            features["n2"] = None
        doc = {"model": model, "model_version": "v1", "event_id": f"e{i}", "timestamp": T0 + i * 20,
               "features": features, "prediction": float(rng.random())}
        value = orjson.dumps(doc)
        if i % 2_003 == 0:
            value = value[:-3]  # a dead letter
        elif i % 2_011 == 0:
            value = value.replace(b'"n3":', b'"n3":1e400,"x":', 1)  # a non-finite value, a new feature
        out.append(SourceRecord("in", i % 2, i // 2, T0 + i * 20, model.encode(), value))
    return out


def _comparable(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("detected_at", "quantiles", "shape")}


def _outputs() -> dict[str, object]:
    pipeline = Pipeline(pipeline_settings(load_settings(bootstrap_servers="x:1", labels_topic="", warmup=1000,
                                                        window_events=2000)))
    records = _stream()
    alerts, summaries, dead = [], [], []
    for start, size in zip(range(0, len(records), 1_700), [1_700] * len(records)):
        result = pipeline.process(records[start:start + size])
        alerts += [_comparable(a) for a in result.alerts]
        summaries += [_comparable(s) for s in result.summaries]
        dead += [[d.record.partition, d.record.offset, d.reason] for d in result.dead_letters]
    digest = {name: hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS)).hexdigest()
              for name, items in (("alerts", alerts), ("summaries", summaries), ("dead_letters", dead))}
    return {"counts": {"alerts": len(alerts), "summaries": len(summaries), "dead_letters": len(dead),
                       "firing": sum(a["status"] == "firing" for a in alerts)},
            "alert_ids": [a["alert_id"] for a in alerts], "digest": digest}


def test_a_fixed_stream_publishes_what_is_pinned():
    got = _outputs()
    assert got["counts"]["firing"] >= 3 and got["counts"]["dead_letters"] > 0 and got["counts"]["summaries"] > 100
    if os.environ.get("DRIFTLINE_REPIN_OUTPUTS") == "1":
        PIN.write_text(json.dumps(got, indent=1) + "\n")
    pinned = json.loads(PIN.read_text())
    assert got["counts"] == pinned["counts"]
    assert got["alert_ids"] == pinned["alert_ids"]
    assert got["digest"] == pinned["digest"]
