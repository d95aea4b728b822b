"""``driftline notify`` as a process: configured from the environment, serves metrics, stops on SIGTERM."""

import os
import signal
import subprocess
import sys
import urllib.request
import uuid

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.demo.broker import free_port
from webhook_server import WebhookServer

pytestmark = pytest.mark.integration


def test_notify_process_posts_to_slack_and_stops_on_sigterm(kenv):
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    for f in kenv.admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    alert = {"alert_id": "x1", "status": "firing", "model": "fraud", "model_version": "v3", "feature": "amount",
             "kind": "data_drift", "detector": "adwin", "severity": "critical", "summary": "amount moved",
             "detected_at": "2026-11-26T10:00:00.000Z"}
    kenv.produce([(b"fraud/v3/amount/adwin", orjson.dumps(alert))], topic=topic)
    port = free_port()
    with WebhookServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env.update(DRIFTLINE_BOOTSTRAP_SERVERS=kenv.broker.bootstrap_servers, DRIFTLINE_ALERTS_TOPIC=topic,
                   DRIFTLINE_AUTO_OFFSET_RESET="earliest", DRIFTLINE_SESSION_TIMEOUT_MS="3000",
                   DRIFTLINE_HEARTBEAT_INTERVAL_MS="500", DRIFTLINE_METRICS_PORT=str(port),
                   DRIFTLINE_METRICS_HOST="127.0.0.1", DRIFTLINE_LOG_FORMAT="json",
                   DRIFTLINE_NOTIFY_SLACK_WEBHOOKS=server.url("/slack"), DRIFTLINE_NOTIFY_GROUP=f"n-{uuid.uuid4().hex[:6]}")
        proc = subprocess.Popen([sys.executable, "-m", "driftline.cli.main", "notify"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: server.ok("/slack") or proc.poll() is not None, 60, "the Slack message")
            assert proc.poll() is None, proc.communicate()[1]
            body = orjson.loads(server.ok("/slack")[0].body)
            assert "FIRING" in body["text"] and body["attachments"][0]["title"] == "amount moved"
            metrics = wait_for(lambda: 'driftline_notify_alerts_total{outcome="sent"} 1.0' in (
                text := urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()) and text,
                10, "the sent alert counted")
            assert 'driftline_notify_deliveries_total{endpoint="slack#1",outcome="delivered"} 1.0' in metrics
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert server.url("/slack") not in err  # the webhook URL is a secret
    messages = [orjson.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    assert "alert posted" in messages and "notify stopping" in messages
