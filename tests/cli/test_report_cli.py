"""``driftline report``: from a replayed file, from summary / alert files and from the topics; clear errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from driftline.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from drifting import MODEL, SETTINGS, training_profile, write_events  # noqa: E402

FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]


def outline(page: Path) -> list[str]:
    """Headings, feature names, alerts and chart kinds of a page, in order.

    Not the numbers: the window quantiles come from KLL sketches, whose
    compaction is randomised, so two replays of one file differ slightly.
    """
    text = page.read_text(encoding="utf-8")
    return re.findall(r"<h[1-4]>.*?</h[1-4]>|<figcaption>.*?</figcaption>|<td class=\"(?:firing|resolved)\">", text)


def moved(page: Path) -> list[str]:
    table = page.read_text(encoding="utf-8").split("Features that moved first")[1].split("All features")[0]
    return re.findall(r'<td class="name"><a href="#[^"]+">([^<]+)</a>', table)


def test_file_and_summary_files_give_the_same_report(tmp_path, capsys):
    events = write_events(tmp_path / "events.jsonl")
    summaries, alerts = tmp_path / "summaries.jsonl", tmp_path / "alerts.jsonl"
    assert main(["replay", str(events), "--summaries-out", str(summaries), "--alerts-out", str(alerts), *FLAGS]) == 0
    from_file, from_summaries = tmp_path / "a.html", tmp_path / "b.html"
    assert main(["report", str(events), "--model", MODEL, "-o", str(from_file), *FLAGS]) == 0
    assert f"wrote {from_file}: {MODEL} (v2), 6 features (3 moved), 3 alert(s)" in capsys.readouterr().err.replace("\n", "")
    assert main(["report", "--model", MODEL, "--summaries", str(summaries), "--alerts", str(alerts),
                 "-o", str(from_summaries)]) == 0
    assert outline(from_file) == outline(from_summaries) and len(outline(from_file)) > 30
    assert moved(from_file)[0] == "income" and set(moved(from_file)) == {"income", "channel", "prediction.default_probability"}
    # without alerts the features still move (by their windows over the threshold), later
    no_alerts = tmp_path / "c.html"
    assert main(["report", "--model", MODEL, "--summaries", str(summaries), "-o", str(no_alerts)]) == 0
    assert set(moved(no_alerts)) == set(moved(from_file)) and "No alerts." in no_alerts.read_text()


def test_reference_profile_is_used_and_named(tmp_path):
    events = write_events(tmp_path / "events.jsonl")
    profile = training_profile()
    path = tmp_path / "profile.json"
    path.write_bytes(profile.to_bytes())
    page = tmp_path / "r.html"
    assert main(["report", str(events), "--model", MODEL, "-o", str(page), "--reference-files", str(path), *FLAGS]) == 0
    text = page.read_text()
    assert f"{profile.name} (supplied)" in text and "(5,000 values)" in text
    summaries = tmp_path / "s.jsonl"
    assert main(["replay", str(events), "--summaries-out", str(summaries), "--reference-files", str(path), *FLAGS]) == 0
    assert main(["report", "--model", MODEL, "--summaries", str(summaries), "-o", str(page)]) == 0
    assert f"{profile.name} (not supplied: pass --reference-files)" in page.read_text()


def test_table_input_with_model_flag(tmp_path):
    rng = np.random.default_rng(2)
    n = 3000
    table = pa.table({"x": np.r_[rng.normal(size=2000), rng.normal(size=n - 2000) + 2.0], "y": rng.normal(size=n),
                      "prediction": rng.random(n)})
    path = tmp_path / "scored.csv"
    pa_csv.write_csv(table, path)
    page = tmp_path / "t.html"
    assert main(["report", str(path), "--model", "tab", "--model-version", "v9", "-o", str(page),
                 "--warmup", "500", "--window-events", "500"]) == 0
    assert moved(page)[0] == "x" and "y" not in moved(page)
    assert "tab · version v9" in page.read_text()


@pytest.mark.parametrize("argv, code, message", [
    (["x.jsonl", "--summaries", "s.jsonl"], 2, "either FILE"),
    (["--alerts", "a.jsonl"], 2, "--alerts goes with --summaries"),
    (["--summaries", "missing.jsonl"], 2, "--summaries: file"),
    (["--summaries", "bad.jsonl"], 2, "line 2 of"),
    (["--summaries", "good.jsonl", "--model-version", "v7"], 1, "its versions there: v1"),
    (["--summaries", "good.jsonl", "--output", "no/such/dir/r.html"], 2, "--output: directory"),
])
def test_errors_name_the_flag(tmp_path, monkeypatch, capsys, argv, code, message):
    monkeypatch.chdir(tmp_path)
    summary = {"type": "window_summary", "model": "m", "model_version": "v1", "feature": "x",
               "window": {"topic": "t", "partition": 0, "first_offset": 0, "last_offset": 9,
                          "last_event_time": "2025-01-01T00:00:00.000Z"}}
    Path("good.jsonl").write_bytes(orjson.dumps(summary) + b"\n")
    Path("bad.jsonl").write_bytes(orjson.dumps(summary) + b"\n{not json\n")
    args = ["report", "--model", "m", *argv]
    if "--output" not in argv:
        args += ["--output", "r.html"]
    assert main(args) == code
    assert message in capsys.readouterr().err
    assert not Path("r.html").exists()


def test_unknown_model_lists_the_models_there(tmp_path, capsys):
    events = write_events(tmp_path / "events.jsonl", total=600)
    assert main(["report", str(events), "--model", "nope", "-o", str(tmp_path / "r.html"), *FLAGS]) == 1
    assert f"no window summaries of model nope in a replay of {events}; models there: {MODEL}" in capsys.readouterr().err


@pytest.mark.integration
def test_report_from_the_topics(kenv, tmp_path, capsys):
    """Summaries and alerts on their topics (keyed as the worker keys them), the profile on the references topic."""
    events = write_events(tmp_path / "events.jsonl")
    profile = training_profile()
    path = tmp_path / "profile.json"
    path.write_bytes(profile.to_bytes())
    summaries, alerts = tmp_path / "s.jsonl", tmp_path / "a.jsonl"
    assert main(["replay", str(events), "--summaries-out", str(summaries), "--alerts-out", str(alerts),
                 "--reference-files", str(path), *FLAGS]) == 0
    for f in kenv.admin.create_topics([NewTopic(kenv.metrics_topic, num_partitions=3, replication_factor=1),
                                       NewTopic(kenv.alerts, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    producer = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers, "linger.ms": 5})
    noise = {"type": "window_summary", "model": "other", "model_version": "v1", "feature": "z",
             "window": {"topic": "t", "partition": 0, "first_offset": 0, "last_offset": 1,
                        "last_event_time": "2025-01-01T00:00:00.000Z"}}
    producer.produce(kenv.metrics_topic, key=b"other/v1/z", value=orjson.dumps(noise))
    producer.produce(kenv.metrics_topic, key=f"{MODEL}/v2/performance".encode(),
                     value=orjson.dumps({"type": "performance_summary", "model": MODEL, "model_version": "v2"}))
    for line in summaries.read_bytes().splitlines():
        s = orjson.loads(line)
        producer.produce(kenv.metrics_topic, key=f"{s['model']}/{s['model_version']}/{s['feature']}".encode(), value=line)
    for line in alerts.read_bytes().splitlines():
        a = orjson.loads(line)
        producer.produce(kenv.alerts, key=f"{a['model']}/{a['model_version']}/{a['feature']}/{a['detector']}".encode(),
                         value=line)
    assert producer.flush(30) == 0
    topics = ["--bootstrap-servers", kenv.broker.bootstrap_servers, "--metrics-topic", kenv.metrics_topic,
              "--alerts-topic", kenv.alerts, "--references-topic", kenv.references, "--group-id", kenv.group,
              "--broker-timeout-seconds", "10"]
    assert main(["reference", "build", str(tmp_path / "events.jsonl"), "--model", MODEL, "-o",
                 str(tmp_path / "unused.json")]) == 0  # a profile that is *not* the one the summaries name ...
    assert main(["reference", "merge", str(path), "--publish", *topics]) == 0  # ... and the one they do, published
    page = tmp_path / "topics.html"
    assert main(["report", "--model", MODEL, "-o", str(page), "--timeout", "30", *topics]) == 0
    text = page.read_text()
    assert f"{profile.name} (supplied)" in text
    assert set(moved(page)) == {"income", "channel", "prediction.default_probability"}
    assert "3 firing, 0 resolved" in text  # one incident per moved feature and "12 on 1 partition" in text
    from_files = tmp_path / "files.html"
    assert main(["report", "--model", MODEL, "--summaries", str(summaries), "--alerts", str(alerts),
                 "--reference-files", str(path), "-o", str(from_files)]) == 0
    assert moved(page) == moved(from_files)
    assert main(["report", "--model", "other", "-o", str(page), "--timeout", "30", *topics]) == 0
    assert "other · version v1" in page.read_text()
