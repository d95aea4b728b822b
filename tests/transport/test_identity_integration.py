"""Worker identity against a real broker: a taken metrics port and a fenced producer (``driftline run``)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_for
from driftline.config import load_settings
from driftline.demo.broker import free_port
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import EXIT_FENCED, Worker

pytestmark = pytest.mark.integration
DRIFTLINE = str(Path(__import__("sys").executable).with_name("driftline"))


def topics(bootstrap: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    names = {"input_topics": f"in-{tag}", "alerts_topic": f"alerts-{tag}", "metrics_topic": f"metrics-{tag}",
             "deadletter_topic": f"dead-{tag}", "references_topic": f"refs-{tag}", "state_topic": f"state-{tag}",
             "group_id": f"g-{tag}"}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(names["input_topics"], num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    return names


def env_of(bootstrap: str, **settings: object) -> dict[str, str]:
    base = dict(bootstrap_servers=bootstrap, labels_topic="", session_timeout_ms=3000, heartbeat_interval_ms=500,
                metrics_host="127.0.0.1", topic_replication_factor=1, topic_partitions=1, broker_timeout_seconds=10)
    base.update(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update({f"DRIFTLINE_{k.upper()}": str(v) for k, v in base.items()})
    return env


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except (urllib.error.URLError, OSError) as exc:
        return getattr(exc, "code", 0)


def test_a_taken_metrics_port_exits_2_in_one_line_before_touching_kafka(broker):
    names = topics(broker.bootstrap_servers)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([DRIFTLINE, "run"], env=env_of(broker.bootstrap_servers, metrics_port=port, **names),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "metrics_port" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"port {port}" in lines[0] and "DRIFTLINE_METRICS_PORT" in lines[0] and "--metrics-port" in lines[0]
    existing = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10).topics
    made = {names[k] for k in ("alerts_topic", "metrics_topic", "deadletter_topic", "references_topic", "state_topic")}
    assert not made & set(existing), "topics were created before the port was bound"


def test_two_workers_with_one_transactional_id_the_fenced_one_exits_4_in_one_line(broker):
    bootstrap = broker.bootstrap_servers
    tid = f"shared-{uuid.uuid4().hex[:6]}"
    a_names = topics(bootstrap)
    a_port = free_port()
    a = subprocess.Popen([DRIFTLINE, "run"], env=env_of(bootstrap, metrics_port=a_port, transactional_id=tid,
                                                         checkpoint_interval_seconds=0, **a_names),
                         stderr=subprocess.PIPE, text=True)
    b = thread = None
    try:
        wait_for(lambda: status(a_port, "/readyz") == 200, 60, "worker A assigned")
        # B: another group, same transactional id (as two workers on one host with --metrics-port 0 had)
        b_names = topics(bootstrap)
        b = Worker(load_settings(bootstrap_servers=bootstrap, labels_topic="", session_timeout_ms=3000,
                                 heartbeat_interval_ms=500, metrics_port=0, transactional_id=tid,
                                 topic_replication_factor=1, topic_partitions=1, broker_timeout_seconds=10,
                                 **b_names), metrics=WorkerMetrics())
        thread = threading.Thread(target=b.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        wait_for(b.started.is_set, 60, "worker B started (its init_transactions fenced A)")
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce(a_names["input_topics"], key=b"m", value=b'{"model": "m", "features": {"x": 1.0}}')
        assert p.flush(10) == 0
        _, stderr = a.communicate(timeout=60)
        assert a.returncode == EXIT_FENCED, stderr
        lines = [line for line in stderr.splitlines() if "fenced" in line]
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert lines[0].startswith("driftline: fenced: another worker") and repr(tid) in lines[0]
        assert thread.is_alive() and b.stalled() is None  # the newer one goes on
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(10)
        if b is not None and thread is not None:
            b.stop()
            thread.join(30)
