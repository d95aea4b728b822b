"""Resident memory per monitored feature, after warm-up.

Feeds ``--models`` model versions with ``--features`` numeric features each
(plus one categorical) through the real pipeline until every feature is past
warm-up and a few windows have closed, and prints the growth of the process's
resident set size per added monitored feature.
Usage: python benchmarks/memory.py [--models 50] [--features 20]
"""

from __future__ import annotations

import argparse
import gc
import resource

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--events", type=int, default=12_000, help="events per model")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(args.features)]
    pipeline = Pipeline(pipeline_settings(load_settings(max_models=args.models)))
    gc.collect()
    before = rss_mb()
    rows = []
    for m in range(args.models):
        values = rng.normal(size=(args.events, args.features))
        batch = [SourceRecord("in", 0, i, 1_700_000_000_000 + i, None, orjson.dumps(
            {"model": f"m{m}", "features": {**dict(zip(names, values[i].tolist())), "c": "abc"[i % 3]}}))
            for i in range(args.events)]
        for i in range(0, len(batch), 5000):
            pipeline.process(batch[i:i + 5000])
        del batch, values
        if (m + 1) % max(1, args.models // 5) == 0:
            gc.collect()
            rows.append((m + 1, pipeline.feature_count, rss_mb() - before))
    table = Table(title="Resident memory of monitor state (after warm-up and ≥ 2 windows per model)")
    table.add_column("models")
    table.add_column("features monitored", justify="right")
    table.add_column("RSS growth MB", justify="right")
    table.add_column("KB per added feature", justify="right")
    previous = None
    for models, features, mb in rows:
        # The first row also holds the allocator's high-water mark from
        # building the input batches; the marginal cost between rows is the
        # cost of monitor state.
        marginal = "-" if previous is None else f"{(mb - previous[1]) * 1024 / (features - previous[0]):.1f}"
        table.add_row(str(models), f"{features:,}", f"{mb:.1f}", marginal)
        previous = (features, mb)
    Console().print(table)


if __name__ == "__main__":
    main()
