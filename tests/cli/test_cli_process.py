"""The console script as a process: SIGTERM stops it cleanly; the demo passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import orjson
import pytest

from conftest import wait_for
from driftline.demo.broker import free_port

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(extra)
    return env


def _metric(port: int, name: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{") or line.startswith(name + " "))


def test_sigterm_stops_the_worker_cleanly_with_offsets_committed(kenv):
    port = free_port()
    env = _env(DRIFTLINE_BOOTSTRAP_SERVERS=kenv.broker.bootstrap_servers, DRIFTLINE_INPUT_TOPICS=kenv.input,
               DRIFTLINE_GROUP_ID=kenv.group, DRIFTLINE_ALERTS_TOPIC=kenv.alerts, DRIFTLINE_METRICS_TOPIC=kenv.metrics_topic,
               DRIFTLINE_DEADLETTER_TOPIC=kenv.deadletter, DRIFTLINE_METRICS_PORT=str(port), DRIFTLINE_METRICS_HOST="127.0.0.1",
               DRIFTLINE_SESSION_TIMEOUT_MS="3000", DRIFTLINE_HEARTBEAT_INTERVAL_MS="500",
               DRIFTLINE_TOPIC_REPLICATION_FACTOR="1", DRIFTLINE_LOG_FORMAT="json")
    proc = subprocess.Popen([sys.executable, "-m", "driftline.cli.main", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        docs = [(b"m", orjson.dumps({"model": "m", "features": {"x": float(i % 13)}})) for i in range(300)]
        kenv.produce(docs)
        wait_for(lambda: _metric(port, "driftline_records_total") >= 300, 60, "records processed by the process")
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(l["message"] == "worker stopping" for l in lines)
    assert any(l["message"] == "partitions assigned" and kenv.input in l["partitions"] for l in lines)
    # offsets were committed: the group's position is at the end of what was produced
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": kenv.broker.bootstrap_servers, "group.id": kenv.group})
    committed = c.committed([TopicPartition(kenv.input, p) for p in (0, 1)], timeout=10)
    c.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 300


def test_demo_command_finds_the_drift_and_nothing_else():
    r = subprocess.run([sys.executable, "-m", "driftline.cli.main", "demo", "--rate", "0", "--metrics-port", str(free_port())],
                       capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in _env().items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo passed" in r.stdout
    assert "income" in r.stdout and "channel" in r.stdout
    # stdout is a pipe: plain lines instead of the live view (progress lines, the features table once)
    assert "sent 12,004 of 12,004 events; processed 12,004" in r.stdout
    assert "credit-risk v2: latest window's drift statistics" in r.stdout and "\x1b[" not in r.stdout
