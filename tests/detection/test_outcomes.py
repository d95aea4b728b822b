"""Labels joined to inferences: performance, concept drift, output rules, champion / challenger."""

import math

import numpy as np
import orjson
import pytest

from driftline.config import load_settings
from driftline.contract.event import SourceRecord
from driftline.detection.findings import Kind
from driftline.detection.outcomes import LabelOutcome
from driftline.detection.pipeline import Pipeline
from driftline.transport.worker import pipeline_settings

T0 = 1_700_000_000_000
LABELS = "lab"


def pipeline(**kw):
    base = dict(labels_topic=LABELS, warmup=500, window_events=2000, window_seconds=0, label_warmup=300)
    base.update(kw)
    return Pipeline(pipeline_settings(load_settings(**base)))


class Stream:
    """Inference and label records of one partition, with offsets per topic."""

    def __init__(self):
        self.records = []
        self.offsets = {"in": 0, LABELS: 0}

    def add(self, topic, doc):
        self.records.append(SourceRecord(topic, 0, self.offsets[topic], None, b"m", orjson.dumps(doc)))
        self.offsets[topic] += 1

    def inference(self, i, version="v1", prediction=None, features=None, at=None):
        doc = {"model": "m", "model_version": version, "event_id": f"e{i}", "timestamp": T0 + (i if at is None else at) * 10}
        if features is not None:
            doc["features"] = features
        if prediction is not None:
            doc["prediction"] = prediction
        self.add("in", doc)

    def label(self, i, label, at=None):
        self.add(LABELS, {"model": "m", "event_id": f"e{i}", "label": label, "timestamp": T0 + (i if at is None else at) * 10})


def run(p, records, chunk=1000):
    alerts, summaries, labels = [], [], {}
    for i in range(0, len(records), chunk):
        r = p.process(records[i:i + chunk])
        for item in r.alerts + r.summaries:
            orjson.dumps(item)  # what the worker publishes must serialise
        alerts += r.alerts
        summaries += r.summaries
        for key, n in r.labels.items():
            labels[key[1]] = labels.get(key[1], 0) + n
    return alerts, summaries, labels


def classifier_stream(n, flip_at=None, seed=0, lag=20):
    """A calibrated binary classifier; labels arrive ``lag`` events later; the relation flips at ``flip_at``."""
    rng = np.random.default_rng(seed)
    s = Stream()
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-2.5 * x))
    y = (rng.random(n) < score).astype(int)
    if flip_at is not None:
        y[flip_at:] = 1 - y[flip_at:]
    for i in range(n + lag):
        if i < n:
            s.inference(i, prediction=float(score[i]), features={"x": float(x[i])})
        if i >= lag:
            s.label(i - lag, int(y[i - lag]), at=i)
    return s, score, y


def test_accuracy_decay_raises_concept_drift_and_no_data_drift():
    s, score, y = classifier_stream(12_000, flip_at=6000)
    alerts, summaries, labels = run(pipeline(), s.records)
    kinds = {a["kind"] for a in alerts}
    assert Kind.CONCEPT_DRIFT in kinds and Kind.DATA_DRIFT not in kinds and Kind.PREDICTION_DRIFT not in kinds
    (cd,) = [a for a in alerts if a["kind"] == Kind.CONCEPT_DRIFT]
    assert cd["details"]["metric"] == "error_rate" and cd["details"]["after"] > cd["details"]["before"] + 0.2
    assert cd["details"]["label_coverage"] > 0.9
    # detected within a few hundred labels of the flip: label offsets are event numbers here
    assert 6000 <= cd["window"]["last_offset"] < 6600 and cd["window"]["topic"] == LABELS
    assert labels[LabelOutcome.JOINED] == 12_000
    perf = [x for x in summaries if x["type"] == "performance_summary"]
    first = perf[0]["window_performance"]
    k = first["labeled"]  # a window is 2,000 records of both topics: labels of events 0 .. k - 1
    assert 900 < k < 1100
    assert first["accuracy"] == pytest.approx(np.mean((score[:k] >= 0.5).astype(int) == y[:k]))
    assert perf[0]["estimated_accuracy"] == pytest.approx(first["accuracy"], abs=0.03)  # calibrated scores
    assert perf[-1]["window_performance"]["accuracy"] < 0.4


def test_stationary_error_stream_raises_nothing():
    s, _, _ = classifier_stream(20_000, seed=1)
    alerts, summaries, _ = run(pipeline(), s.records)
    assert alerts == []
    total = [x for x in summaries if x["type"] == "performance_summary"][-1]["cumulative_performance"]
    assert 0.7 < total["accuracy"] < 0.85 and total["log_loss"] < 0.6 and total["brier"] < 0.2


def test_classification_metrics_match_a_direct_computation():
    rng = np.random.default_rng(2)
    s = Stream()
    n = 3000
    classes = np.array(["cat", "dog", "fox"])
    pred = rng.choice(classes, n)
    actual = np.where(rng.random(n) < 0.7, pred, rng.choice(classes, n))
    for i in range(n):
        s.inference(i, prediction=str(pred[i]))
        s.label(i, str(actual[i]))
    p = pipeline(window_events=10**6, models={"m": {"positive_class": "dog"}})
    _, summaries, _ = run(p, s.records)
    p.outcomes[(0, "m")]._close_window(out := __import__("driftline.detection.outcomes", fromlist=["x"]).OutcomeOutput())
    perf = out.summaries[0]["cumulative_performance"]
    tp = np.sum((pred == "dog") & (actual == "dog"))
    precision = tp / np.sum(pred == "dog")
    recall = tp / np.sum(actual == "dog")
    assert perf["accuracy"] == pytest.approx(np.mean(pred == actual))
    assert perf["precision"] == pytest.approx(precision) and perf["recall"] == pytest.approx(recall)
    assert perf["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_regression_metrics_and_concept_drift_on_absolute_error():
    rng = np.random.default_rng(3)
    s = Stream()
    n = 8000
    truth = rng.normal(100, 10, n)
    noise = rng.normal(0, 2, n) * np.where(np.arange(n) >= 5000, 3.0, 1.0)  # errors triple at 5000
    pred = truth + noise
    for i in range(n):
        s.inference(i, prediction=float(pred[i]))
        s.label(i, float(truth[i]))
    alerts, summaries, _ = run(pipeline(window_events=10_000), s.records)
    (cd,) = [a for a in alerts if a["kind"] == Kind.CONCEPT_DRIFT]
    assert cd["details"]["metric"] == "mae" and cd["window"]["last_offset"] >= 5000
    perf = [x for x in summaries if x["type"] == "performance_summary"][0]["window_performance"]
    err = pred[:5000] - truth[:5000]
    assert perf["mae"] == pytest.approx(np.mean(np.abs(err))) and perf["bias"] == pytest.approx(np.mean(err))
    assert perf["rmse"] == pytest.approx(math.sqrt(np.mean(err ** 2)))


def test_join_accounting_early_late_duplicate_unmatched_and_bounded_memory():
    s = Stream()
    s.label(0, 1, at=0)                      # early: before its inference
    s.inference(0, prediction=0.9)
    s.inference(1, prediction=0.2)
    s.label(1, 0, at=2)                      # joined
    s.label(1, 0, at=3)                      # duplicate
    s.label(999_999, 1, at=4)                # its inference never comes: unmatched once the window passes
    s.inference(2, prediction=0.7)
    s.label(2, 1, at=2 + 1000)               # 10 s after the inference: beyond a 5 s join window
    for i in range(3, 3003):                 # a flood of inferences, all in one event-time instant, never labeled
        s.inference(i, prediction=0.5, at=1003)
    s.inference(10_000, prediction=0.5)      # event time moves on: everything above expires
    p = pipeline(join_window_seconds=5, join_max_pending=1000)
    _, _, labels = run(p, s.records, chunk=97)
    monitor = p.outcomes[(0, "m")]
    assert labels[LabelOutcome.JOINED] == 2 and labels[LabelOutcome.EARLY] == 1
    assert labels[LabelOutcome.DUPLICATE] == 1 and labels[LabelOutcome.LATE] == 1
    assert labels[LabelOutcome.UNMATCHED] == 1
    # the entry cap held while the join window could not (3,001 pending inferences, room for 1,000) ...
    assert labels[LabelOutcome.EVICTED] == 2001
    # ... and the last one moved event time on: the other 999 expired unlabeled
    assert labels[LabelOutcome.UNLABELED] == 999
    assert len(monitor.pending) <= 1000 and len(monitor.early) == 0


def test_champion_challenger_divergence_only_when_the_challenger_differs():
    def stream(shift, seed):
        rng = np.random.default_rng(seed)
        s = Stream()
        for i in range(6000):
            base = float(1 / (1 + math.exp(-2 * rng.normal())))
            s.inference(i, "v1", prediction=base)
            s.inference(i, "v2", prediction=min(1.0, max(0.0, base + shift + rng.normal(0, 0.005))))
        return s.records

    alerts, summaries, _ = run(pipeline(), stream(0.15, 4))
    div = [a for a in alerts if a["kind"] == Kind.VERSION_DIVERGENCE]
    assert div and div[0]["model_version"] == "v2" and div[0]["details"]["champion"] == "v1"
    comparison = [x for x in summaries if x["type"] == "version_comparison"]
    assert comparison and comparison[0]["pairs"] == 1000 and comparison[0]["disagreement_rate"] > 0.1
    assert comparison[0]["ks"] > 0.2  # the challenger's score distribution moved too

    alerts, summaries, _ = run(pipeline(), stream(0.0, 5))
    assert not [a for a in alerts if a["kind"] == Kind.VERSION_DIVERGENCE]
    same = [x for x in summaries if x["type"] == "version_comparison"][0]
    assert same["disagreement_rate"] < 0.02 and same["ks"] < 0.1


def test_output_rules_and_confident_errors_raise_output_quality():
    rng = np.random.default_rng(6)
    s = Stream()
    for i in range(3000):
        p = float(rng.random())
        s.inference(i, prediction=(1.7 if i % 100 == 0 else p))       # 1 % out of range
        y = int(p < 0.5) if p > 0.95 or p < 0.05 else int(rng.random() < p)  # confident and wrong at the extremes
        s.label(i, y)
    alerts, summaries, _ = run(pipeline(models={"m": {"valid_range": [0, 1], "task": "classification"}}), s.records)
    details = {a["detector"]: a for a in alerts if a["kind"] == Kind.OUTPUT_QUALITY}
    assert set(details) == {"output_rules", "confident_errors"}
    assert details["output_rules"]["details"]["violations"]["out_of_range"] == 10  # of the window's 1,000 inferences
    assert details["confident_errors"]["statistic"] > 0.5


def test_named_outputs_of_an_unconfigured_model_are_not_violations():
    s = Stream()
    for i in range(500):
        s.add("in", {"model": "m", "event_id": f"e{i}", "timestamp": T0 + i, "prediction": {"label": "a", "score": 0.7}})
    alerts, _, _ = run(pipeline(window_events=200), s.records)
    assert alerts == []
    s = Stream()
    for i in range(500):
        s.add("in", {"model": "m", "event_id": f"e{i}", "timestamp": T0 + i, "prediction": {"label": "a"}})
    alerts, summaries, _ = run(pipeline(window_events=200, models={"m": {"prediction": "prediction.class"}}), s.records)
    assert {a["detector"] for a in alerts} == {"output_rules"}
    perf = [x for x in summaries if x["type"] == "performance_summary"]
    assert perf[0]["output_violations"] == {"missing_output": 200}  # every inference of the 200-record window


def test_regression_challenger_is_compared_by_mean_difference_and_paired_error():
    def stream(shift, seed):
        rng = np.random.default_rng(seed)
        s = Stream()
        for i in range(3000):
            truth = float(rng.normal(50, 10))
            base = truth + float(rng.normal(0, 2))
            s.inference(i, "v1", prediction=base)
            s.inference(i, "v2", prediction=base + shift + float(rng.normal(0, 0.1)))
            s.label(i, truth)
        return s.records

    alerts, summaries, _ = run(pipeline(window_events=3000), stream(4.0, 7))
    assert {a["detector"] for a in alerts if a["kind"] == Kind.VERSION_DIVERGENCE} == {"mean_difference"}
    c = [x for x in summaries if x["type"] == "version_comparison"][0]
    assert c["disagreement_rate"] is None  # regression values are not classes
    assert c["mean_difference"] == pytest.approx(4.0, abs=0.1)
    paired = c["paired_loss_difference"]
    assert paired["loss"] == "absolute_error" and paired["challenger_minus_champion"] > 2.0
    assert paired["interval_95"][0] > 0  # the challenger is worse, and the interval says so

    alerts, _, _ = run(pipeline(window_events=3000), stream(0.0, 8))
    assert not [a for a in alerts if a["kind"] == Kind.VERSION_DIVERGENCE]


def test_regression_concept_drift_does_not_depend_on_units_and_heavy_tails_are_clipped():
    from driftline.detection.outcomes import _ErrorDrift

    rng = np.random.default_rng(9)
    noise = rng.normal(0, 2.0, 12_000)
    noise[4000:] *= 2.0
    found = []
    for unit in (1.0, 1e-3):  # the same errors in metres and in kilometres
        d = _ErrorDrift(4e-4, 32)
        hits = [i for i, e in enumerate(np.abs(noise) * unit) if d.add(float(e), 500) is not None]
        found.append(hits[0] if hits else None)
    assert found[0] is not None and found[0] == found[1] and found[0] - 4000 < 500
    # Student-t(3) errors: the warm-up's 99.9th percentile caps single huge errors
    d = _ErrorDrift(4e-4, 32)
    errors = np.abs(rng.standard_t(3, 200_000))
    assert [i for i, e in enumerate(errors) if d.add(float(e), 500) is not None] == []
    assert d.cap < float(errors.max())


def test_outcome_alerts_and_summaries_do_not_depend_on_batching():
    s, _, _ = classifier_stream(6000, flip_at=3000, seed=12)
    results = []
    for chunk in (len(s.records), 137, 1000):
        alerts, summaries, labels = run(pipeline(window_events=1000), s.records, chunk)
        results.append((sorted(orjson.dumps({k: v for k, v in a.items() if k != "detected_at"}, option=orjson.OPT_SORT_KEYS)
                               for a in alerts),
                        [orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in summaries if x["type"] != "window_summary"],
                        labels))
    assert results[0][0] and results[0] == results[1] == results[2]
