"""The demo's terminal view: rendered from a worker's real metrics, and the demo run live in-process."""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest
from rich.console import Console

from driftline.cli.demo import run_demo
from driftline.cli.demo_view import DemoView, feature_rows
from driftline.contract.event import SourceRecord
from driftline.demo.broker import free_port
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.settings import MonitorSettings
from driftline.observability.metrics import WorkerMetrics


def drifted_metrics() -> tuple[WorkerMetrics, list[dict]]:
    """A worker's metrics after a batch in which ``x`` shifts by 3 sd and ``c`` stays put."""
    metrics = WorkerMetrics(process_metrics=False)
    p = Pipeline(PipelineSettings(monitor=MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=200, window_events=200)))
    rng = np.random.default_rng(0)
    recs = [SourceRecord("in", 0, i, 1_700_000_000_000 + i, b"m",
                         orjson.dumps({"model": "m", "model_version": "v1",
                                       "features": {"x": float(rng.normal() + (3 if i > 600 else 0)), "c": str(rng.choice(["a", "b"]))}}))
            for i in range(1000)] + [SourceRecord("in", 0, 1000, None, None, b"bad")]
    result = p.process(recs)
    metrics.records.labels("in").inc(len(recs))
    metrics.record_batch(result, models=p.model_count, features=p.feature_count)
    return metrics, result.alerts


def test_feature_rows_carry_the_latest_statistics_and_the_firing_detectors():
    metrics, alerts = drifted_metrics()
    rows = {r["feature"]: r for r in feature_rows(metrics, alerts)}
    assert set(rows) == {"x", "c"}
    assert rows["x"]["drift"]["mean_shift_sd"] > 2 and rows["x"]["missing_ratio"] == 0.0
    assert sorted(rows["x"]["firing"]) == sorted({a["detector"] for a in alerts if a["feature"] == "x"}) != []
    assert rows["c"]["firing"] == [] and "psi" in rows["c"]["drift"] and "mean_shift_sd" not in rows["c"]["drift"]


def test_render_shows_progress_rates_counters_and_the_features_table():
    metrics, alerts = drifted_metrics()
    view = DemoView(metrics, total=2000)
    view.start(now=100.0)
    view.sent = 1000
    for a in alerts:
        view.add_alert(a)
    assert len(view.new_alerts()) == len(alerts) and view.new_alerts() == []  # each alert printed once
    console = Console(record=True, width=100)
    console.print(view.render(now=102.0))
    text = console.export_text()
    assert "1,000 / 2,000" in text and "500 events/s" in text  # 1,000 sent in 2 s
    assert "1,001 / 2,000" in text  # records processed, read from driftline_records_total
    assert f"alerts: {len(alerts)} fired, 0 resolved" in text and "dead letters: 1" in text and "elapsed 2.0 s" in text
    assert "m v1: latest window's drift statistics" in text
    x_line = next(line for line in text.splitlines() if line.strip().startswith("x "))
    assert x_line.split()[-1] == str(len({a["detector"] for a in alerts if a["feature"] == "x"}))  # firing keys


def test_rates_freeze_to_the_average_once_everything_is_sent():
    metrics = WorkerMetrics(process_metrics=False)
    view = DemoView(metrics, total=1000)
    view.start(now=0.0)
    view.sent = 400
    assert view.rates(now=1.0)[0] == 400.0
    view.sent = 1000
    assert view.rates(now=2.0)[0] == 500.0  # all sent after 2 s
    assert view.rates(now=30.0)[0] == 500.0  # stays the run's average, not a decaying window


def test_before_any_window_the_view_says_what_it_waits_for():
    console = Console(record=True, width=100)
    console.print(DemoView(WorkerMetrics(process_metrics=False), total=10).render(now=0.0))
    assert "waiting for the first window" in console.export_text()


@pytest.fixture
def driftline_logging():
    """The demo configures the ``driftline`` logger; give the next tests theirs back."""
    log = logging.getLogger("driftline")
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])
    log.propagate = saved[2]


@pytest.mark.integration
def test_demo_live_view_in_process(driftline_logging):
    console = Console(record=True, force_terminal=True, width=120)
    assert run_demo(rate=0, metrics_port=free_port(), console=console) == 0
    text = console.export_text()
    assert "credit-risk v2: latest window's drift statistics" in text
    assert "events sent" in text and "12,004 / 12,004" in text and "events/s" in text
    table = [line for line in text.splitlines() if line.strip().startswith(("income ", "channel ", "age "))]
    assert table, "features table rows"
    assert "FIRING   data_drift income" in text and "FIRING   data_drift channel" in text
    assert "driftline demo: summary" in text and "demo passed" in text
