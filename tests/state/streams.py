"""A realistic stream for checkpoint tests: everything a worker's state can hold.

Inference records of a classifier (two versions: champion / challenger on the
same events, numeric, integer and categorical features, a mean shift half-way
so detectors fire and alert keys exist, a second one later, outputs checked by rules) and of a
regressor; labels on their own topic, most arriving a few events late (pending
joins), some before their inference (early), one never matched.
"""

from __future__ import annotations

import numpy as np
import orjson

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000
INPUT, LABELS = "in", "lab"
LAG = 25


def settings():
    return load_settings(bootstrap_servers="x:1", labels_topic=LABELS, warmup=300, window_events=400,
                         label_warmup=200, models={"clf": {"valid_range": [0, 1], "allowed_classes": ["a", "b"]}})


def pipeline() -> Pipeline:
    return Pipeline(pipeline_settings(settings()))


def records(start: int, stop: int, *, shift_at: int = 1_500, late_at: int = 2_100, seed: int = 0) -> list[SourceRecord]:
    """Records of steps ``start`` to ``stop`` (offsets continue across calls with the same ``start`` grid)."""
    rng = np.random.default_rng([seed, start])
    out: list[SourceRecord] = []
    per_step_in, per_step_lab = 3, 2
    for i in range(start, stop):
        shift = 1.2 if i >= shift_at else 0.0
        x = float(rng.normal(shift, 1.0))
        colour = str(rng.choice(["red", "green", "blue", "grey"], p=[0.4, 0.3, 0.2, 0.1] if i < shift_at else
                                [0.1, 0.2, 0.3, 0.4]))
        # y moves later (after the checkpoint tests' split): a new incident opens after the restore
        features = {"x": x, "y": float(rng.normal(1.5 if i >= late_at else 0.0)), "n": int(rng.poisson(3)), "colour": colour}
        score = float(1 / (1 + np.exp(-2 * x)))
        at = T0 + i * 20
        base = i * per_step_in
        for k, version in enumerate(("v1", "v2")):
            doc = {"model": "clf", "model_version": version, "event_id": f"e{i}", "timestamp": at,
                   "features": features, "prediction": min(1.0, score + 0.05 * k)}
            out.append(SourceRecord(INPUT, 0, base + k, at, b"clf", orjson.dumps(doc)))
        doc = {"model": "reg", "model_version": "1", "event_id": f"r{i}", "timestamp": at,
               "features": {"z": float(rng.normal())}, "prediction": float(rng.normal())}
        out.append(SourceRecord(INPUT, 0, base + 2, at, b"reg", orjson.dumps(doc)))
        lab = i * per_step_lab
        if i % 97 == 5:  # a label before its inference (early)
            label = {"model": "clf", "event_id": f"e{i + 3}", "label": int(rng.random() < 0.5), "timestamp": at}
        else:
            label = {"model": "clf", "event_id": f"e{i - LAG}", "label": int(rng.random() < score), "timestamp": at}
        out.append(SourceRecord(LABELS, 0, lab, at, b"clf", orjson.dumps(label)))
        label = {"model": "reg", "event_id": f"r{i - LAG}", "label": float(rng.normal()), "timestamp": at}
        out.append(SourceRecord(LABELS, 0, lab + 1, at, b"reg", orjson.dumps(label)))
    return out


def offsets(step: int) -> dict[str, int]:
    """Next offset of each topic after ``step`` steps."""
    return {INPUT: 3 * step, LABELS: 2 * step}


def run(p: Pipeline, recs: list[SourceRecord], chunk: int = 1_000) -> dict[str, list]:
    """Process in batches; what a worker would publish (wall-clock and random-compaction fields left out)."""
    out: dict[str, list] = {"alerts": [], "summaries": [], "dead": [], "labels": [], "violations": []}
    for i in range(0, len(recs), chunk):
        r = p.process(recs[i:i + chunk])
        out["alerts"] += [_comparable(a) for a in r.alerts]
        out["summaries"] += [_comparable(s) for s in r.summaries]
        out["dead"] += [(d.record.offset, d.reason) for d in r.dead_letters]
        out["labels"].append(sorted(r.labels.items()))
        out["violations"].append(sorted(r.violations.items()))
    return out


def _comparable(item: dict) -> dict:
    # detected_at is wall clock; quantiles and shape come from a KLL sketch whose compaction is random (documented
    # as approximate); everything else must be identical
    return {k: v for k, v in item.items() if k not in ("detected_at", "quantiles", "shape")}
