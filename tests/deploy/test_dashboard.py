"""The Grafana dashboard asks only for metrics a worker really exports."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from driftline.observability.metrics import WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "driftline-dashboard.json"
_PROMQL_FUNCTIONS = {"sum", "rate", "increase", "max", "min", "avg", "by", "histogram_quantile", "changes", "label_values",
                     "le"}


def _expressions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, (str, dict)):
                yield from ([value] if isinstance(value, str) and "(" in value else _expressions(value))
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def _exported_names() -> tuple[set[str], dict[str, set[str]]]:
    """Sample names a worker exposes, and the labels of each, from the metric definitions."""
    from prometheus_client.metrics import MetricWrapperBase

    from driftline.observability.exposition import Family

    metrics = WorkerMetrics(CollectorRegistry(), process_metrics=True)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, (MetricWrapperBase, Family)):
            continue
        for family in metric.describe():
            for suffix in suffixes[family.type]:
                names.add(family.name + suffix)
                labels[family.name + suffix] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
    for family in metrics.registry.collect():  # the process collector's
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def test_every_promql_expression_names_exported_metrics_and_labels():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(_expressions(dashboard))
    assert len(exprs) >= 20
    names, labels = _exported_names()
    used = set()
    for expr in exprs:
        for metric, selector in re.findall(r"\b((?:driftline|process)_[a-z_]+)\b(\{[^}]*\})?", expr):
            used.add(metric)
            assert metric in names, f"{metric!r} in {expr!r} is not exported by a worker"
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!=|=)", selector or ""):
                assert label == "job" or label in labels[metric], f"{metric} has no label {label!r} ({expr!r})"
        for word in re.findall(r"\bby \(([^)]*)\)", expr):
            metric = re.findall(r"\b((?:driftline|process)_[a-z_]+)\b", expr)[0]
            for label in (w.strip() for w in word.split(",")):
                assert label == "le" or label in labels[metric], f"{metric} has no label {label!r} ({expr!r})"
    # the panels: drift statistics, firing alerts, events/s, dead letters by reason, lag, batch latency
    for metric in ("driftline_feature_drift_statistic", "driftline_alerts_firing", "driftline_events_total",
                   "driftline_dead_letters_total", "driftline_consumer_lag_records", "driftline_batch_duration_seconds_bucket"):
        assert metric in used
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))
