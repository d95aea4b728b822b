"""Time of one ``/metrics`` scrape of a worker at the caps, in both ``metrics_series`` modes.

Fills a :class:`WorkerMetrics` through ``record_batch`` with window summaries
of ``--models`` model versions x ``--features`` features (9 in 10 numeric,
with the 8 numeric drift statistics; the others categorical, with 4), plus
data-quality findings on 5 % of the features and firing alerts on 2 %, as a
worker at the caps (``max_models`` 100 x ``max_features_per_model`` 500) has
them after a few windows.  Then it times:

* ``feature``: ``WorkerMetrics.exposition_parts()`` (what ``/metrics`` sends) in the default mode, after one
  more round of summaries changed every value (a scrape that finds nothing
  cached), and again with nothing changed;
* ``model``: the same in ``metrics_series = "model"``;
* ``prometheus_client``: the same series in plain prometheus_client Gauges and
  Counters (what driftline exported before) through ``generate_latest``.

Each time is the median of ``--repeat`` scrapes; "GET /metrics" is a whole
scrape over HTTP on loopback (body read to the end) from the worker's
MetricsServer; "resident MB" the growth of the process's resident set while the
metrics were filled (for prometheus_client: while the per-feature series were
copied into its metrics).  The per-feature text is
checked to hold exactly the samples of the prometheus_client one.
Usage: python benchmarks/metrics_scrape.py [--models 100] [--features 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import urllib.request

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from driftline.detection.pipeline import BatchResult
from driftline.observability.exposition import Family
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.server import MetricsServer

NUMERIC = ("page_hinkley", "page_hinkley_spread", "mean_shift_sd", "spread_ratio", "ks", "ks_p_value", "wasserstein_sd", "psi")
CATEGORICAL = ("chi_square", "p_value", "psi", "jensen_shannon")


def batches(models: int, features: int, rounds: int, seed: int = 0):
    """One BatchResult per model version and round: a summary per feature, some findings and alerts."""
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        for m in range(models):
            model = f"model-{m:03d}"
            result = BatchResult()
            values = rng.random((features, len(NUMERIC)))
            for f in range(features):
                numeric = f % 10 != 9
                stats = NUMERIC if numeric else CATEGORICAL
                result.summaries.append({
                    "type": "window_summary", "model": model, "model_version": "v3", "feature": f"feature_{f:03d}",
                    "source": "features", "feature_type": "numeric" if numeric else "categorical",
                    "missing_ratio": float(values[f, 0] / 10),
                    "drift": {name: float(values[f, i]) for i, name in enumerate(stats)}})
                if f % 20 == 0:
                    result.quality[(model, f"feature_{f:03d}", "type_change" if numeric else "new_category")] += 3
                if f % 50 == 0 and r == 0:
                    for detector in ("page_hinkley", "psi"):
                        result.alerts.append({"model": model, "model_version": "v3", "feature": f"feature_{f:03d}",
                                              "source": "features", "kind": "data_drift", "detector": detector,
                                              "status": "firing"})
            result.events[(model, "ml.inferences")] += 10_000
            yield result


def fill(series: str, models: int, features: int, rounds: int) -> WorkerMetrics:
    metrics = WorkerMetrics(process_metrics=False, series=series)  # type: ignore[arg-type]
    for result in batches(models, features, rounds):
        metrics.record_batch(result, models=models, features=models * features)
    return metrics


def baseline(metrics: WorkerMetrics) -> CollectorRegistry:
    """The per-feature families of ``metrics`` copied into prometheus_client metrics, beside the others."""
    registry = CollectorRegistry()
    for collector in list(metrics._own._collector_to_names):  # the metrics that are prometheus_client already
        registry.register(collector)
    for family in metrics._families:
        cls = Counter if family.kind == "counter" else Gauge
        metric = cls(family.name, family.documentation, family.labelnames, registry=registry)
        for labels, value in family.items():
            child = metric.labels(*labels)
            child.inc(value) if family.kind == "counter" else child.set(value)
    return registry


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def over_http(render, repeat: int) -> float:
    """Median seconds of GET /metrics from a MetricsServer serving ``render`` (loopback, body read to the end)."""
    with MetricsServer(render, "127.0.0.1", 0, lambda: (True, "ok")) as server:
        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=60) as response:
                return response.read()
        return timed(get, repeat)[0]


def timed(render, repeat: int) -> tuple[float, bytes]:
    """Median seconds of ``render()`` (bytes, or the list of parts the server sends), and the text."""
    times, body = [], b""
    for _ in range(repeat):
        start = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - start)
    return statistics.median(times), body if isinstance(body, bytes) else b"".join(body)


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode("utf-8")) for s in family.samples
            if not s.name.endswith("_created")}


def series_count(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []

    before = rss_mb()  # filled first: resident memory freed later would hide its growth
    aggregate = fill("model", args.models, args.features, rounds=2)
    memory = {"model": rss_mb() - before}
    before = rss_mb()
    per_feature = fill("feature", args.models, args.features, rounds=2)
    memory["feature"] = rss_mb() - before
    changing = iter(list(batches(args.models, args.features, rounds=args.repeat, seed=1)))

    def after_update() -> bytes:  # every value changed since the last scrape: nothing cached
        for _ in range(args.models):
            per_feature.record_batch(next(changing), models=args.models, features=args.models * args.features)
        start = time.perf_counter()
        parts = per_feature.exposition_parts()
        after_update.seconds.append(time.perf_counter() - start)  # type: ignore[attr-defined]
        return b"".join(parts)

    after_update.seconds = []  # type: ignore[attr-defined]
    _, text = timed(after_update, args.repeat)
    rows.append(("feature", "after every value changed", statistics.median(after_update.seconds), text))  # type: ignore[attr-defined]
    seconds, text = timed(per_feature.exposition_parts, args.repeat)
    rows.append(("feature", "nothing changed", seconds, text))
    http = {"feature": over_http(per_feature.exposition_parts, args.repeat)}
    before = rss_mb()
    registry = baseline(per_feature)
    memory["prometheus_client"] = rss_mb() - before
    seconds, reference = timed(lambda: generate_latest(registry), max(1, min(args.repeat, 3)))
    rows.append(("prometheus_client", "generate_latest", seconds, reference))
    http["prometheus_client"] = over_http(registry, max(1, min(args.repeat, 3)))
    ours, theirs = samples(text), samples(reference)
    assert ours == theirs, f"the texts differ in {len(set(ours.items()) ^ set(theirs.items()))} samples"

    registry = None  # (free it before the next measurement)
    seconds, model_text = timed(aggregate.exposition_parts, args.repeat)
    rows.append(("model", "per-model aggregates", seconds, model_text))
    http["model"] = over_http(aggregate.exposition_parts, args.repeat)
    assert not any('feature="' in line for line in model_text.decode().splitlines())

    base = rows[2][2]
    table = Table(title=f"/metrics at {args.models} model versions x {args.features} features "
                        f"(median of {args.repeat} scrapes; 'vs pc' = prometheus_client's time / this one's)")
    right = ("series", "bytes", "seconds", "vs pc", "GET /metrics s", "resident MB")
    for column in ("metrics_series", "scrape", *right):
        table.add_column(column, justify="right" if column in right else "left")
    for i, (mode, what, seconds, body) in enumerate(rows):
        first = i == 0 or rows[i - 1][0] != mode
        table.add_row(mode, what, f"{series_count(body):,}", f"{len(body):,}", f"{seconds:.3f}", f"{base / seconds:.1f}x",
                      f"{http[mode]:.3f}" if first else "", f"{memory[mode]:.0f}" if first else "")
    Console(width=140).print(table)
    families = sum(len(f) for f in per_feature._families if isinstance(f, Family))
    print(f"per-feature series in Family objects: {families:,}; texts of both implementations hold the same samples")


if __name__ == "__main__":
    main()
