"""Resident memory over a long stream with every cap reached: it must stay flat.

Streams ``--records`` records through the real pipeline (decode, monitors,
windowed tests, alerts, label join), in batches as the worker consumes them:

* ``--models`` model names, more than ``max_models`` (the rest is overflow);
* per event 20 steady numeric features plus a few with names never seen
  before, so every model hits ``max_features_per_model``;
* a categorical feature with ever new values (``max_categories``);
* a prediction and an ``event_id`` on every event, and labels for half of
  them on the labels topic (the join keeps at most ``join_max_pending``
  inferences per model and partition);
* a drift part-way, so alerts fire and resolve;
* 1 % malformed records (dead letters).

Prints RSS every ``--every`` records and the growth over the second half.
Usage: python benchmarks/soak.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from driftline.cli.main import tune_gc
from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def batches(records: int, models: int, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    offsets = {"in": 0, "labels": 0}
    pending_labels: list[bytes] = []
    for start in range(0, records, batch):
        out = []
        n = min(batch, records - start)
        values = rng.normal(size=(n, 20))
        model_ids = rng.integers(0, models, n)
        for j in range(n):
            i = start + j
            if i % 100 == 37:
                out.append(SourceRecord("in", i % 4, offsets["in"], None, None, b"{not json", ()))
                offsets["in"] += 1
                continue
            model = f"m{model_ids[j]}"
            shift = 1.0 if i > records // 2 else 0.0
            features = {f"f{k}": float(values[j, k] + shift) for k in range(20)}
            features[f"new_{i % 997}_{i // 997}"] = 1.0  # a feature name never seen before
            features["colour"] = f"c{int(rng.integers(0, 1_000_000))}"  # ever new categories
            event_id = f"e{i}"
            out.append(SourceRecord("in", i % 4, offsets["in"], None, model.encode(), orjson.dumps(
                {"model": model, "event_id": event_id, "timestamp": T0 + i * 10, "features": features,
                 "prediction": float(rng.random())}), ()))
            offsets["in"] += 1
            if i % 2 == 0:
                pending_labels.append(orjson.dumps({"model": model, "event_id": event_id, "label": int(rng.random() < 0.5),
                                                    "timestamp": T0 + i * 10}))
        # labels of the previous batch arrive with this one
        for value in pending_labels[: len(pending_labels)]:
            out.append(SourceRecord("labels", 0, offsets["labels"], None, None, value, ()))
            offsets["labels"] += 1
        pending_labels = []
        yield out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    tune_gc()
    settings = load_settings(bootstrap_servers="x:1", labels_topic="labels", max_models=40, max_features_per_model=40,
                             max_categories=100, join_max_pending=2_000, window_events=5_000, window_seconds=60)
    pipeline = Pipeline(pipeline_settings(settings))
    gc.collect()
    start_rss = rss_mb()
    rows = []
    done, alerts, dead, next_mark = 0, 0, 0, args.every
    started = time.perf_counter()
    for batch in batches(args.records, args.models, args.batch, seed=1):
        result = pipeline.process(batch)
        done += sum(1 for r in batch if r.topic == "in")
        alerts += len(result.alerts)
        dead += len(result.dead_letters)
        if done >= next_mark:
            rows.append((done, rss_mb(), pipeline.model_count, pipeline.feature_count, alerts, dead,
                         sum(len(m.pending) for m in pipeline.outcomes.values())))
            next_mark += args.every
    elapsed = time.perf_counter() - started
    table = Table(title=f"Soak: {args.records:,} records, {args.models} models (cap 40), features capped at 40 per "
                        f"model, labels for half ({elapsed:.0f} s; RSS at start {start_rss:.0f} MB)")
    for column in ("records", "RSS MB", "models", "features", "alerts", "dead letters", "inferences waiting"):
        table.add_column(column, justify="right")
    for done, rss, models, features, alerts, dead, waiting in rows:
        table.add_row(f"{done:,}", f"{rss:.0f}", str(models), str(features), str(alerts), str(dead), f"{waiting:,}")
    Console().print(table)
    half = rows[len(rows) // 2 - 1][1] if len(rows) >= 2 else rows[0][1]
    print(f"RSS growth over the second half: {rows[-1][1] - half:+.1f} MB ({(rows[-1][1] - half) / half * 100:+.1f} %)")


if __name__ == "__main__":
    main()
