"""What a worker says while it runs, and what status and the read-only commands say back, over one worker.

One worker reads a labeled stream whose outcome flips part-way (concept drift) plus a few bad records; its
log must show the start-up waits, one WARNING per dead-letter reason and progress lines; ``status`` must show
the dead letters by reason and, with ``--model``, the accuracy per window and the concept-drift alert;
a mistyped group id, model or profile must be reported as unknown.
"""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest

from conftest import wait_for
from driftline.cli.main import main

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
N = 4000
FLIP_AT = 2000


def _records(worker) -> float:
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_records_total")


def _stream():
    rng = np.random.default_rng(3)
    x = rng.normal(size=N)
    score = 1 / (1 + np.exp(-2.5 * x))
    y = (rng.random(N) < score).astype(int)
    y[FLIP_AT:] = 1 - y[FLIP_AT:]
    inferences = [(b"fraud", orjson.dumps({"model": "fraud", "model_version": "v1", "event_id": f"e{i}",
                                           "timestamp": T0 + i * 10, "features": {"x": float(x[i])},
                                           "prediction": float(score[i])})) for i in range(N)]
    labels = [(b"fraud", orjson.dumps({"model": "fraud", "event_id": f"e{i}", "label": int(y[i]),
                                       "timestamp": T0 + (i + 30) * 10})) for i in range(N)]
    return inferences, labels


def test_worker_feedback_and_status_views(kenv, caplog, capsys):
    caplog.set_level(logging.INFO, logger="driftline.worker")
    worker = kenv.start_worker(window_events=1000, window_seconds=0, label_warmup=300, progress_interval_seconds=1.0)
    inferences, labels = _stream()
    bad = [(b"fraud", b"not json"), (b"fraud", b"{also not json"), (b"fraud", b'{"features": {"x": 1}}')]
    kenv.produce(inferences[:100] + bad + inferences[100:])
    kenv.produce(labels, topic=kenv.labels)
    wait_for(lambda: _records(worker) >= 2 * N + len(bad), 90, "all records processed")

    def progress():
        return [r for r in caplog.records if r.getMessage().startswith("progress: ")]

    wait_for(lambda: sum(sum(r.ctx["dead_letters"].values()) for r in progress()) >= 3, 20, "dead letters in progress lines")
    messages = [r.getMessage() for r in caplog.records]
    # start-up: each wait said when it starts and when it ends
    for start, end in (("waiting for the broker", "broker answered after"),
                       ("waiting for the group join", "start-up done: partitions assigned after")):
        assert any(m.startswith(start) for m in messages) and any(m.startswith(end) for m in messages), messages[:12]
    # at most one WARNING per reason per interval (1 s): the two invalid_json records usually share a batch, but a
    # batch may end between them (batch_wait_seconds), and then a second WARNING is due only an interval later
    dead = [r for r in caplog.records if r.getMessage().startswith("dead letter") and r.levelno == logging.WARNING]
    assert {r.ctx["reason"] for r in dead} == {"invalid_json", "missing_model"}, [r.ctx for r in dead]
    assert sum(r.ctx["reason"] == "missing_model" for r in dead) == 1
    times = [r.created for r in dead if r.ctx["reason"] == "invalid_json"]
    assert len(times) <= 2 and all(b - a >= 0.9 for a, b in zip(times, times[1:])), times
    assert sum(r.ctx["records"] for r in progress()) == 2 * N + len(bad)
    line = next(r.getMessage() for r in progress() if r.ctx["dead_letters"])
    assert "events/s" in line and "lag " in line and "open incidents" in line

    common = ["--bootstrap-servers", kenv.broker.bootstrap_servers, "--group-id", kenv.group, "--input-topics", kenv.input,
              "--labels-topic", kenv.labels, "--alerts-topic", kenv.alerts, "--metrics-topic", kenv.metrics_topic,
              "--deadletter-topic", kenv.deadletter, "--references-topic", kenv.references, "--timeout", "20"]
    wait_for(lambda: main(["status", "--json", "--model", "fraud", *common]) == 0
             and orjson.loads(capsys.readouterr().out)["model_quality"]["concept_drift_alerts"], 30, "concept drift in status")
    assert main(["status", "--json", "--model", "fraud", *common]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["group"]["known"] and report["dead_letters"]["by_reason"] == {"invalid_json": 2, "missing_model": 1}
    (perf,) = report["performance"]
    assert (perf["model"], perf["model_version"], perf["metric"]) == ("fraud", "v1", "accuracy")
    assert perf["label_coverage_total"] > 0.9
    windows = report["model_quality"]["windows"]
    values = [w["value"] for w in windows if w["value"] is not None]
    assert values[0] > 0.7 and values[-1] < 0.3, values
    assert {a["status"] for a in report["model_quality"]["concept_drift_alerts"]} >= {"firing"}
    # the same as tables
    assert main(["status", "--model", "fraud", *common]) == 0
    out = capsys.readouterr().out
    assert "fraud: performance per window" in out and "fraud: concept-drift alerts" in out and "invalid_json" in out

    # a mistyped group: unknown, no lag claimed, the real one suggested
    typo = [kenv.group + "x" if a == kenv.group else a for a in common]
    assert main(["status", "--json", *typo]) == 0
    unknown = orjson.loads(capsys.readouterr().out)
    assert not unknown["group"]["known"] and unknown["total_lag"] is None
    assert any(f"unknown group '{kenv.group}x'" in n and f"did you mean '{kenv.group}'?" in n for n in unknown["notes"])
    # a mistyped model, and a profile that never existed
    assert main(["status", "--model", "frod", *common]) == 2
    assert "unknown --model 'frod': did you mean 'fraud'?" in capsys.readouterr().err
    assert main(["reference", "withdraw", "--model", "fraud", "--model-version", "v9", "--bootstrap-servers",
                 kenv.broker.bootstrap_servers, "--references-topic", kenv.references]) == 2
    assert "unknown profile 'fraud/v9'" in capsys.readouterr().err
