"""``driftline replay``: files through the live pipeline; identical to the live stream."""

from __future__ import annotations

import uuid

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.cli.main import main
from driftline.reference.profile import ReferenceProfile

T0 = 1_700_000_000_000


def lines(n=4000, shift_at=2500, seed=3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield orjson.dumps({"model": "m", "model_version": "v1", "timestamp": T0 + i * 10,
                            "features": {"x": float(rng.normal() + (1.5 if i >= shift_at else 0.0)),
                                         "y": float(rng.normal()), "c": str(rng.choice(["a", "b"]))}})


def replay_alerts(path, capsys, *extra):
    assert main(["replay", str(path), "--json", "--warmup", "500", "--window-events", "500", *extra]) == 0
    return [orjson.loads(l) for l in capsys.readouterr().out.splitlines() if l.strip()]


def test_replay_jsonl_finds_the_shift_only(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines()) + b"\n")
    summaries = tmp_path / "summaries.jsonl"
    alerts = replay_alerts(path, capsys, "--summaries-out", str(summaries))
    assert alerts and {a["feature"] for a in alerts} == {"x"}
    assert min(a["window"]["last_offset"] for a in alerts) >= 2500
    assert len(summaries.read_bytes().splitlines()) == 3 * 8


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_replay_tables(tmp_path, capsys, fmt):
    rng = np.random.default_rng(1)
    n = 4000
    table = pa.table({"x": rng.normal(size=n) + np.r_[np.zeros(2500), np.full(n - 2500, 1.5)],
                      "y": rng.normal(size=n), "prediction": rng.random(n)})
    path = tmp_path / f"t.{fmt}"
    (pa_csv.write_csv if fmt == "csv" else pq.write_table)(table, path)
    alerts = replay_alerts(path, capsys, "--model", "tab")
    assert alerts and {a["feature"] for a in alerts} == {"x"} and {a["model"] for a in alerts} == {"tab"}


def test_table_without_model_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,2\n")
    assert main(["replay", str(path)]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.mark.integration
def test_replay_gives_the_same_alerts_as_the_live_stream(kenv, tmp_path, capsys):
    topic = f"one-{uuid.uuid4().hex[:6]}"
    for f in kenv.admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    data = list(lines(6000, 3000, seed=11))
    # Compare with a reference profile built from the first 2,000 records, as a user would from a training set.
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"\n".join(lines(2000, 10**9, seed=12)) + b"\n")
    profile = tmp_path / "profile.json"
    assert main(["reference", "build", str(train), "-o", str(profile)]) == 0
    capsys.readouterr()  # the profile's table (stdout)
    kenv.input = topic
    worker = kenv.start_worker(input_topics=topic, reference_files=str(profile))
    kenv.produce([(b"m", v) for v in data], topic=topic)
    wait_for(lambda: sum(s.value for f in worker.metrics.registry.collect() for s in f.samples
                         if s.name == "driftline_records_total") >= len(data), 60, "live processing")
    path = tmp_path / "same.jsonl"
    path.write_bytes(b"\n".join(data) + b"\n")
    replayed = replay_alerts(path, capsys, "--topic", topic, "--partition", "0", "--reference-files", str(profile))
    # every alert the worker published (a live extra would show up), and at least as many as replay found
    published = lambda: sum(s.value for f in worker.metrics.registry.collect()  # noqa: E731
                            for s in f.samples if s.name == "driftline_alerts_total")
    live = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, max(int(published()), len(replayed)), timeout=20)]
    assert len(live) == published()

    def key(a):
        return (a["alert_id"], a["status"], a["feature"], a["detector"], a["window"]["last_offset"], round(a["statistic"], 9))

    assert live and sorted(map(key, live)) == sorted(map(key, replayed))
    assert {a["reference"] for a in live} == {a["reference"] for a in replayed} == {
        ReferenceProfile.from_bytes(profile.read_bytes()).name}
    # the whole alert, not just its key, is the same (but for the wall-clock detected_at)
    strip = lambda alerts: sorted(orjson.dumps({k: v for k, v in a.items() if k != "detected_at"},  # noqa: E731
                                               option=orjson.OPT_SORT_KEYS) for a in alerts)
    assert strip(live) == strip(replayed)
