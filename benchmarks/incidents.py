"""Records per drift episode, counted as a consumer of the alerts topic would count them.

Runs the worker's detection core (:class:`driftline.detection.pipeline.Pipeline`, default settings) over
streams with known episodes, many seeds, and prints one table:

* ``episode``: one feature of three shifted by +1 sd for 30,000 events (10 events/s of event time, so 3,000 s:
  ten cooldowns), then back for 30,000: firing and resolved records of the drifted feature, the event at which
  it was found, and the first event of the data the ``resolved`` record shows it back on;
* ``break``: 8 of a model's 10 features shifted at once and for good, beside a stationary model: firing and
  resolved records, distinct ``incident_id`` values, records of the stationary model;
* ``from first``: a drift of +1 sd present from the first record against a published profile: the event at
  which it was found;
* ``category mix``: a 30-point change of a 5-category mix after 5,000 events: events until it was found.

Usage: python benchmarks/incidents.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from driftline.config import load_settings
from driftline.contract.event import InferenceEvent, SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.reference.builder import ProfileBuilder
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000
STEP_MS = 100


def _pipeline() -> Pipeline:
    return Pipeline(pipeline_settings(load_settings(bootstrap_servers="x:1", labels_topic="")))


def _records(rows: list[dict], model: str = "m") -> list[SourceRecord]:
    return [SourceRecord("in", 0, i, None, model.encode(), orjson.dumps(r)) for i, r in enumerate(rows)]


def _run(p: Pipeline, records: list[SourceRecord], batch: int = 2000) -> list[dict]:
    alerts: list[dict] = []
    for i in range(0, len(records), batch):
        alerts += p.process(records[i:i + batch]).alerts
    return alerts


def _rows(n: int, rng, *, model: str, features: int, moved: int, shifted: range) -> list[dict]:
    z = rng.normal(size=(n, features))
    return [{"model": model, "model_version": "v1", "timestamp": T0 + i * STEP_MS,
             "features": {f"f{j}": float(z[i, j] + (1.0 if j < moved and i in shifted else 0.0)) for j in range(features)}}
            for i in range(n)]


def episode(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rows = _rows(60_000, rng, model="m", features=3, moved=1, shifted=range(5_000, 35_000))
    every = _run(_pipeline(), _records(rows))
    alerts = [a for a in every if a["feature"] == "f0" and a["kind"] == "data_drift"]
    firing = [a for a in alerts if a["status"] == "firing"]
    resolved = [a for a in alerts if a["status"] == "resolved"]
    others = len(every) - len(alerts)
    return {"firing": len(firing), "resolved": len(resolved), "others": others,
            "found_after": firing[0]["window"]["last_offset"] - 5_000 if firing else float("nan"),
            "back_from": resolved[0]["window"]["first_offset"] - 35_000 if resolved else float("nan")}


def upstream_break(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    broken = _rows(20_000, rng, model="broken", features=10, moved=8, shifted=range(5_000, 10**9))
    calm = _rows(20_000, rng, model="calm", features=10, moved=0, shifted=range(0))
    rows = [r for pair in zip(broken, calm) for r in pair]
    records = [SourceRecord("in", 0, i, None, r["model"].encode(), orjson.dumps(r)) for i, r in enumerate(rows)]
    alerts = _run(_pipeline(), records)
    mine = [a for a in alerts if a["model"] == "broken"]
    return {"firing": sum(a["status"] == "firing" for a in mine), "resolved": sum(a["status"] == "resolved" for a in mine),
            "incidents": len({a["incident_id"] for a in mine}), "calm": sum(a["model"] == "calm" for a in alerts)}


def from_first(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    builder = ProfileBuilder()
    builder.add(InferenceEvent("m", "v1", None, None, {f"f{j}": float(v) for j, v in enumerate(row)}, None)
                for row in rng.normal(size=(20_000, 3)))
    (profile,) = builder.result()
    p = _pipeline()
    p.set_reference(profile)
    rows = _rows(5_000, rng, model="m", features=3, moved=1, shifted=range(0, 10**9))
    firing = [a for a in _run(p, _records(rows)) if a["status"] == "firing" and a["feature"] == "f0"]
    return {"found_at": firing[0]["window"]["last_offset"] if firing else float("nan")}


def category_mix(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    before, after = [0.4, 0.3, 0.15, 0.1, 0.05], [0.1, 0.6, 0.15, 0.1, 0.05]
    cats = ["a", "b", "c", "d", "e"]
    rows = [{"model": "m", "model_version": "v1", "timestamp": T0 + i * STEP_MS,
             "features": {"c": str(rng.choice(cats, p=before if i < 5_000 else after))}} for i in range(10_000)]
    firing = [a for a in _run(_pipeline(), _records(rows)) if a["status"] == "firing" and a["kind"] == "data_drift"]
    return {"found_after": firing[0]["window"]["last_offset"] - 5_000 if firing else float("nan")}


def _summary(values: list[float]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return f"median {statistics.median(values):g} (min {min(values):g}, max {max(values):g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)
    table = Table(title=f"Records per drift episode, default settings, {args.seeds} seeds", title_justify="left")
    for column in ("stream", "measure", "result", "target"):
        table.add_column(column)
    targets = {("episode", "firing"): "1", ("episode", "resolved"): "1 (after the return)", ("episode", "others"): "0",
               ("episode", "back_from"): ">= 0", ("break", "firing"): "8", ("break", "resolved"): "0 (never ends)",
               ("break", "incidents"): "1", ("break", "calm"): "0", ("from first", "found_at"): "<= 50 (median)",
               ("category mix", "found_after"): "<= 300 (median)"}
    for name, run in (("episode", episode), ("break", upstream_break), ("from first", from_first),
                      ("category mix", category_mix)):
        results = [run(seed) for seed in seeds]
        for measure in results[0]:
            table.add_row(name, measure, _summary([r[measure] for r in results]), targets.get((name, measure), ""))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
