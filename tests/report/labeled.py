"""A labeled stream run through the live pipeline: inferences and their labels, the relation flipping part-way.

A binary classifier scores ``x``; its labels agree with the scores until ``FLIP_AT``, then the outcome flips
(accuracy drops from ~0.8 to ~0.2) while the inputs stay put: concept drift, no data drift.  One run per
process (cached): the report and status tests read its summaries and alerts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import orjson

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings

MODEL = "fraud"
TOTAL = 6000
FLIP_AT = 3000
T0 = 1_764_000_000_000
STEP_MS = 50
SETTINGS = {"warmup": 500, "window_events": 1000, "window_seconds": 0, "label_warmup": 300,
            "input_topics": "in", "labels_topic": "labels"}


class Run(NamedTuple):
    summaries: list[dict]
    alerts: list[dict]


def inference(i: int, score: float, x: float) -> bytes:
    return orjson.dumps({"model": MODEL, "model_version": "v1", "event_id": f"e{i}", "timestamp": T0 + i * STEP_MS,
                         "features": {"x": x}, "prediction": score})


def label(i: int, y: int) -> bytes:
    return orjson.dumps({"model": MODEL, "event_id": f"e{i}", "label": y, "timestamp": T0 + (i + 20) * STEP_MS})


def streams(total: int = TOTAL, flip_at: int = FLIP_AT, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=total)
    score = 1 / (1 + np.exp(-2.5 * x))
    y = (rng.random(total) < score).astype(int)
    y[flip_at:] = 1 - y[flip_at:]
    return ([inference(i, float(score[i]), float(x[i])) for i in range(total)],
            [label(i, int(y[i])) for i in range(total)])


@lru_cache(maxsize=None)
def run() -> Run:
    """The pipeline over the interleaved streams (each label 20 events after its inference), in batches of 500."""
    pipeline = Pipeline(pipeline_settings(load_settings(**SETTINGS)))
    inferences, labels = streams()
    records: list[SourceRecord] = []
    for i in range(TOTAL + 20):
        if i < TOTAL:
            records.append(SourceRecord("in", 0, i, T0 + i * STEP_MS, MODEL.encode(), inferences[i], ()))
        if i >= 20:
            j = i - 20
            records.append(SourceRecord("labels", 0, j, T0 + i * STEP_MS, MODEL.encode(), labels[j], ()))
    summaries, alerts = [], []
    for start in range(0, len(records), 500):
        result = pipeline.process(records[start:start + 500])
        summaries.extend(result.summaries)
        alerts.extend(result.alerts)
    return Run(summaries, alerts)
