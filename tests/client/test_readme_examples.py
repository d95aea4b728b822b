"""The README's examples fit together: what its ``PredictionLogger`` example logs, profiled as a table with its
``reference build`` command and published, is compared with that profile by a worker without a data-quality alert.

The README's code is run as written; only the broker address, the topics and the file name are the test's.
"""

from __future__ import annotations

import re
import shlex
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

import driftline.client
from conftest import wait_for
from driftline.cli.main import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECORDS = 1_500  # three 500-event windows per feature after the README's own record


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def logger_example() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", section("Logging predictions from a model server"), re.S)
    return code


def build_command() -> list[str]:
    """The README's ``reference build`` command of a table that publishes."""
    commands = [line for line in re.findall(r"```sh\n(.*?)```", section("Reference profiles"), re.S)[0].splitlines()
                if line.startswith("driftline reference build ") and "--publish" in line]
    assert len(commands) == 1, commands
    return shlex.split(commands[0])


def like(value, rng: np.random.Generator, n: int):
    """``n`` values of the README's example value's type, spread around it."""
    if isinstance(value, bool):
        return rng.random(n) < 0.3
    if isinstance(value, (int, float)):
        scale = abs(value) or 1.0
        out = value + rng.normal(0, scale / 4, n)
        return np.rint(out).astype(np.int64) if isinstance(value, int) else out
    return rng.choice([value, f"{value}-b", f"{value}-c"], n, p=[0.6, 0.3, 0.1])


def test_the_readme_logger_example_profiled_with_the_readme_build_command_raises_no_data_quality_alert(
        kenv, monkeypatch, tmp_path, capsys):
    logged: list[tuple[dict, object]] = []
    loggers: list[driftline.client.PredictionLogger] = []

    class ReadmeLogger(driftline.client.PredictionLogger):
        """The README's logger, pointed at the test's broker and topics."""

        def __init__(self, bootstrap_servers, **kw):
            assert bootstrap_servers == "kafka:9092"
            super().__init__(kenv.broker.bootstrap_servers, topic=kenv.input, labels_topic=kenv.labels, linger_ms=5, **kw)
            loggers.append(self)

        def log(self, features=None, prediction=None, **kw):
            logged.append((features, prediction))
            return super().log(features, prediction, **kw)

    # the labels topic as `driftline topics create` makes it: the input topics' partition count
    for f in kenv.admin.create_topics([NewTopic(kenv.labels, num_partitions=2, replication_factor=1)]).values():
        f.result(10)

    # the README's example as written: one prediction, its label, close
    code = logger_example()
    monkeypatch.setattr(driftline.client, "PredictionLogger", ReadmeLogger)
    exec(compile(code, "README.md", "exec"), {})
    (example,) = loggers
    assert example.stats().delivered >= 1 and len(logged) == 1
    features, prediction = logged[0]
    assert isinstance(features, dict) and isinstance(prediction, dict), "the example logs named outputs"

    # more traffic of the same shape, logged the same way
    rng = np.random.default_rng(14)
    columns = {name: like(value, rng, RECORDS) for name, value in {**features, **prediction}.items()}
    more = ReadmeLogger("kafka:9092", model=example.model, model_version=example.model_version)
    for i in range(RECORDS):
        row = {name: values[i].item() for name, values in columns.items()}
        assert more.log({k: row[k] for k in features}, {k: row[k] for k in prediction}) is not None
    more.close()
    assert more.stats().delivered == RECORDS

    # the same data as a table, profiled and published with the README's command
    first = {**features, **prediction}
    table = pa.table({name: [first[name]] + values.tolist() for name, values in columns.items()})
    path = tmp_path / "train.parquet"
    pq.write_table(table, path)
    command = build_command()
    assert command[:3] == ["driftline", "reference", "build"]
    args = [str(path) if a == "train.parquet" else kenv.broker.bootstrap_servers if a == "kafka:9092" else a
            for a in command[1:]]
    assert main([*args, "--references-topic", kenv.references, "--topic-replication-factor", "1",
                 "--broker-timeout-seconds", "10"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err, err

    worker = kenv.start_worker()
    wait_for(lambda: (example.model, example.model_version) in worker.pipeline.references, 30, "profile in force")
    profile = worker.pipeline.references[(example.model, example.model_version)]
    outputs = {f"prediction.{k}" for k in prediction}
    assert {name for source, name in profile.features if source == "prediction"} == outputs

    # every window of every feature and output is compared with the profile, not with its warm-up
    summaries = read_summaries(kenv, expected=len(columns) * (RECORDS + 1) // 500)
    assert {(s["source"], s["feature"]) for s in summaries} == {("features", k) for k in features} | {
        ("prediction", k) for k in outputs}
    assert {s["reference"] for s in summaries} == {profile.name}
    for s in summaries:
        assert s["warmed_up"] is True and s["count"] == s["records"] == 500, s

    # and nothing was wrong with the data: no data-quality finding, no alert at all
    wait_for(lambda: counter(worker, "driftline_events_total") == RECORDS + 1, 30, "every record counted")
    assert counter(worker, "driftline_data_quality_findings_total") == 0
    assert counter(worker, "driftline_alerts_total") == 0


def read_summaries(kenv, expected: int, timeout: float = 40.0) -> list[dict]:
    import orjson

    c = Consumer({"bootstrap.servers": kenv.broker.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "session.timeout.ms": 3000, "heartbeat.interval.ms": 500})
    c.subscribe([kenv.metrics_topic])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < expected:
            for m in c.consume(500, 0.2):
                if m.error() is None and m.value() is not None:
                    doc = orjson.loads(m.value())
                    if doc.get("type") == "window_summary":
                        out.append(doc)
    finally:
        c.close()
    assert len(out) == expected, f"{len(out)} window summaries, {expected} expected"
    return out


def counter(worker, name: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(worker.metrics.exposition().decode())
               for s in family.samples if s.name == name)
