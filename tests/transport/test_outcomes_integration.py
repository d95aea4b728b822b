"""Labels over a real broker: concept drift, join accounting, champion / challenger, co-partitioning."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.cli.main import main
from driftline.errors import ConfigError
from driftline.transport.worker import Worker

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def total(worker, name, **labels):
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def inference(i, version="v1", score=0.5, x=0.0):
    return b"fraud", orjson.dumps({"model": "fraud", "model_version": version, "event_id": f"e{i}",
                                   "timestamp": T0 + i * 10, "features": {"x": x}, "prediction": score})


def label(i, y, at):
    return b"fraud", orjson.dumps({"model": "fraud", "event_id": f"e{i}", "label": y, "timestamp": T0 + at * 10})


def test_accuracy_decay_fires_concept_drift_and_labels_are_accounted(kenv):
    worker = kenv.start_worker(window_events=2000, window_seconds=0, label_warmup=300)
    rng = np.random.default_rng(0)
    n = 8000
    x = rng.normal(size=n)
    score = 1 / (1 + np.exp(-2.5 * x))
    y = (rng.random(n) < score).astype(int)
    y[4000:] = 1 - y[4000:]  # the relation between inputs and outcome flips; the inputs do not move
    kenv.produce([inference(i, score=float(score[i]), x=float(x[i])) for i in range(n)])
    # labels arrive later, on their own topic; plus a duplicate and a label for an unknown event
    kenv.produce([label(i, int(y[i]), at=i + 50) for i in range(n)] + [label(7, int(y[7]), at=n + 60)]
                 + [label(10**7, 1, at=n + 70)], topic=kenv.labels)
    wait_for(lambda: total(worker, "driftline_records_total") >= 2 * n + 2, 90, "all records processed")
    wait_for(lambda: total(worker, "driftline_labels_total", outcome="joined") >= n, 30, "labels joined")
    assert total(worker, "driftline_labels_total", outcome="joined") == n
    assert total(worker, "driftline_labels_total", outcome="duplicate") == 1
    alerts = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, int(total(worker, "driftline_alerts_total")))]
    kinds = {a["kind"] for a in alerts}
    assert "concept_drift" in kinds and "data_drift" not in kinds
    (cd,) = [a for a in alerts if a["kind"] == "concept_drift"]
    assert cd["details"]["after"] > 0.5 > cd["details"]["before"]
    assert total(worker, "driftline_model_performance", model="fraud", metric="accuracy") > 0


def test_champion_challenger_divergence_over_the_broker(kenv, capsys):
    worker = kenv.start_worker(window_events=2000, window_seconds=0)
    rng = np.random.default_rng(1)
    records = []
    for i in range(3000):
        base = float(1 / (1 + math.exp(-2 * rng.normal())))
        records += [inference(i, "v1", base), inference(i, "v2", min(1.0, base + 0.2))]
    kenv.produce(records)
    wait_for(lambda: total(worker, "driftline_records_total") >= len(records), 60, "records processed")
    wait_for(lambda: total(worker, "driftline_alerts_total", kind="version_divergence") >= 1, 30, "divergence alert")
    assert total(worker, "driftline_version_comparison", champion="v1", challenger="v2",
                 statistic="disagreement_rate") > 0.1
    # the people on call see it side by side
    capsys.readouterr()
    assert main(["compare", "--json", "--bootstrap-servers", kenv.broker.bootstrap_servers,
                 "--metrics-topic", kenv.metrics_topic, "--timeout", "20"]) == 0
    (row,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["model"], row["champion"], row["challenger"]) == ("fraud", "v1", "v2")
    assert row["disagreement_rate"] > 0.1 and row["pairs"] >= 20


def test_labels_topic_with_another_partition_count_stops_start_up(kenv):
    for f in kenv.admin.create_topics([NewTopic(kenv.labels, num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    worker = Worker(kenv.settings(), metrics=None)
    with pytest.raises(ConfigError, match="labels_topic"):
        worker.run(install_signal_handlers=False)
