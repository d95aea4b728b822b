import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.contract.event import SourceRecord
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.settings import MonitorSettings
from driftline.observability.metrics import WorkerMetrics


def test_batch_results_become_labelled_samples():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    p = Pipeline(PipelineSettings(monitor=MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=200, window_events=200)))
    rng = np.random.default_rng(0)
    recs = [SourceRecord("in", 0, i, 1_700_000_000_000 + i, b"m",
                         orjson.dumps({"model": "m", "features": {"x": float(rng.normal() + (3 if i > 600 else 0)), "c": "a"}}))
            for i in range(1000)] + [SourceRecord("in", 0, 1000, None, None, b"bad")]
    result = p.process(recs)
    metrics.record_batch(result, models=p.model_count, features=p.feature_count)
    assert registry.get_sample_value("driftline_events_total", {"model": "m", "topic": "in"}) == 1000
    assert registry.get_sample_value("driftline_dead_letters_total", {"reason": "invalid_json", "topic": "in"}) == 1
    fired = [a for a in result.alerts if a["feature"] == "x"]
    assert fired
    a = fired[0]
    assert registry.get_sample_value("driftline_alerts_total", {"model": "m", "feature": "x", "kind": "data_drift",
                                                                "detector": a["detector"], "status": "firing"}) >= 1
    assert registry.get_sample_value("driftline_feature_missing_ratio", {"model": "m", "model_version": "unversioned", "feature": "c"}) == 0.0
    assert registry.get_sample_value("driftline_monitored_features") == 2
    # the exposition parses
    names = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {"driftline_events", "driftline_feature_drift_statistic", "driftline_batch_duration_seconds"} <= names


def test_window_distances_and_the_reference_in_use_are_exported():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    p = Pipeline(PipelineSettings(monitor=MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=200, window_events=400)))
    rng = np.random.default_rng(1)
    recs = [SourceRecord("in", 0, i, 1_700_000_000_000 + i, b"m",
                         orjson.dumps({"model": "m", "features": {"x": float(rng.normal() + (2 if i >= 400 else 0)),
                                                                  "c": str(rng.choice(["a", "b"]))}}))
            for i in range(800)]
    result = p.process(recs)
    metrics.record_batch(result, models=p.model_count, features=p.feature_count)
    last = [s for s in result.summaries if s["feature"] == "x"][-1]["drift"]

    def stat(feature, name):
        return registry.get_sample_value("driftline_feature_drift_statistic",
                                         {"model": "m", "model_version": "unversioned", "feature": feature, "statistic": name})

    for name in ("psi", "ks", "ks_p_value", "wasserstein_sd"):
        assert stat("x", name) == last[name]
    assert stat("x", "psi") > 0.2
    for name in ("chi_square", "p_value", "psi", "jensen_shannon"):
        assert stat("c", name) is not None
    metrics.reference_in_use("m", "unversioned", "profile@abc")
    metrics.reference_in_use("m", "unversioned", "profile@def")
    assert registry.get_sample_value("driftline_reference_info", {"model": "m", "model_version": "unversioned",
                                                                  "reference": "profile@def"}) == 1
    assert registry.get_sample_value("driftline_reference_info", {"model": "m", "model_version": "unversioned",
                                                                  "reference": "profile@abc"}) is None


def test_labels_violations_and_performance_are_exported():
    from driftline.config import load_settings
    from driftline.transport.worker import pipeline_settings

    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, process_metrics=False)
    p = Pipeline(pipeline_settings(load_settings(labels_topic="lab", window_events=400, window_seconds=0,
                                                 models={"m": {"valid_range": [0, 1]}})))
    recs = []
    for i in range(300):
        recs.append(SourceRecord("in", 0, i, None, b"m", orjson.dumps(
            {"model": "m", "event_id": f"e{i}", "timestamp": 1_700_000_000_000 + i, "prediction": 2.0 if i < 3 else 0.8})))
        recs.append(SourceRecord("lab", 0, i, None, b"m", orjson.dumps(
            {"model": "m", "event_id": f"e{i}", "label": 1, "timestamp": 1_700_000_000_000 + i})))
    metrics.record_batch(p.process(recs), models=p.model_count, features=p.feature_count)
    get = registry.get_sample_value
    assert get("driftline_labels_total", {"model": "m", "outcome": "joined"}) == 300
    assert get("driftline_output_violations_total", {"model": "m", "rule": "out_of_range"}) == 3
    assert get("driftline_model_performance", {"model": "m", "model_version": "unversioned", "metric": "accuracy"}) == 1.0
    assert get("driftline_model_performance", {"model": "m", "model_version": "unversioned", "metric": "label_coverage"}) == 1.0
