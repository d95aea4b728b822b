"""examples/model_server.py as a process over tansu: traffic with an injected drift, POST /predict, SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.contract.label import LabelEvent, decode_label
from driftline.demo.broker import free_port
from test_client_logger import decoded, read_topic

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "model_server.py"


def post(port: int, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_example_server_logs_traffic_with_a_drift_and_serves_predict(kenv, tmp_path):
    for f in kenv.admin.create_topics([NewTopic(kenv.labels, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    port = free_port()
    env = {**os.environ, "DRIFTLINE_BOOTSTRAP_SERVERS": kenv.broker.bootstrap_servers,
           "DRIFTLINE_INPUT_TOPICS": kenv.input, "DRIFTLINE_LABELS_TOPIC": kenv.labels}
    stderr = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--traffic", "300", "--drift-after", "0.7", "--port", str(port)],
                            env=env, stderr=stderr, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or healthy(port), 30, "the example server to answer /healthz")
        assert proc.poll() is None, Path(stderr.name).read_text()
        status, answer = post(port, "/predict", b'{"income": 42000, "age": 37, "debt_ratio": 0.3, "open_accounts": 2, "channel": "web"}')
        assert status == 200 and 0 < answer["prediction"]["default_probability"] < 1 and answer["model"] == "credit-risk"
        status, error = post(port, "/predict", b'{"income": "lots"}')
        assert status == 400 and "'income'" in error["error"]
        status, error = post(port, "/predict", b"[1, 2]")
        assert status == 400 and "JSON object" in error["error"]
        wait_for(lambda: "drift injected" in Path(stderr.name).read_text(), 30, "the drift")
        wait_for(lambda: post(port, "/predict", b"{}")[1]["event_id"] and
                 json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())["delivered"] >= 550,
                 60, "550 delivered records")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log = Path(stderr.name).read_text()
    assert code == 0, log
    final = re.search(r"stopped; logger ClientStats\(sent=(\d+), delivered=(\d+), failed=0, dropped=0, invalid=0, "
                      r"buffered=0\), 0 undelivered", log)
    assert final and final.group(1) == final.group(2), log
    sent = int(final.group(1))

    msgs = read_topic(kenv.broker.bootstrap_servers, kenv.input, 2, sent, idle=1.5)
    labels = read_topic(kenv.broker.bootstrap_servers, kenv.labels, 2, sent - len(msgs), idle=1.5)
    assert len(msgs) >= 400 and len(msgs) + len(labels) == sent  # everything the logger sent is there, once
    events = [decoded(m) for m in msgs]  # asserts: no dead letter
    assert {m.key() for m in msgs} == {b"credit-risk"} and len({m.partition() for m in msgs}) == 1
    assert {(e.model, e.model_version) for e in events} == {("credit-risk", "v2")}
    assert answer["event_id"] in {e.event_id for e in events}
    assert all(e.features is not None and set(e.features) == {"income", "age", "debt_ratio", "open_accounts", "channel"}
               for e in events)

    drift_ms = int(re.search(r"drift injected at epoch_ms=(\d+)", log).group(1))
    traffic = [e for e in events if e.features["age"] is not None]  # the POSTed {} records have no values
    before = [e.features for e in traffic if e.timestamp_ms < drift_ms]
    after = [e.features for e in traffic if e.timestamp_ms > drift_ms + 5]
    assert len(before) > 100 and len(after) > 100, (len(before), len(after))
    assert statistics.mean(f["income"] for f in after) < statistics.mean(f["income"] for f in before) - 9000
    web_before = sum(f["channel"] == "web" for f in before) / len(before)
    web_after = sum(f["channel"] == "web" for f in after) / len(after)
    assert web_after < web_before - 0.15, (web_before, web_after)

    decoded_labels = [decode_label(m.value(), max_bytes=1_000_000) for m in labels]
    assert len(labels) >= 40 and all(isinstance(x, LabelEvent) and x.label in (0.0, 1.0) for x in decoded_labels)
    assert {x.event_id for x in decoded_labels} <= {e.event_id for e in events}


def test_example_flags_are_validated(capsys):
    spec = importlib.util.spec_from_file_location("model_server_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--traffic", "-1"]) == 2
    assert "--traffic" in capsys.readouterr().err
    args = example.build_parser().parse_args(["--traffic", "50", "--drift-after", "180", "--port", "8000"])  # docker-compose's
    assert (args.traffic, args.drift_after, args.port) == (50.0, 180.0, 8000)
