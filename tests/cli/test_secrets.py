"""A canary secret through every configuration source, every validator that can fail and notify's
error paths, with the real ``driftline`` command as a process: it appears in no output.

The canary is given at once as every kind of secret: ``sasl_password`` (env), ``ssl_key_password``
(flag), ``state_secret`` (TOML), librdkafka credentials through ``-X`` (``ssl.keystore.password``),
``DRIFTLINE_KAFKA__*`` (``sasl.oauthbearer.client.secret``) and ``[kafka]`` (``ssl.key.pem``), and
inside webhook URLs (path token, basic-auth password).  Each case then breaks one validator (or
none, for the paths that run), and stdout, stderr, ``/metrics`` and ``status`` output are searched.
The processes of the cases without a broker run side by side to keep the test quick.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.demo.broker import free_port
from webhook_server import WebhookServer

pytestmark = pytest.mark.integration

CANARY = f"cAnArY{uuid.uuid4().hex[:10]}"
DEAD = "127.0.0.1:1"  # nothing listens: start-up fails fast
FAST = ["--broker-timeout-seconds", "1"]


def _base_env(toml: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(DRIFTLINE_SASL_PASSWORD=CANARY, DRIFTLINE_KAFKA__SASL_OAUTHBEARER_CLIENT_SECRET=CANARY,
               DRIFTLINE_CONFIG=str(toml), DRIFTLINE_METRICS_PORT="0", DRIFTLINE_NOTIFY_WEBHOOKS=f"http://127.0.0.1:1/{CANARY}")
    env.update(extra)
    return env


def _secret_flags() -> list[str]:
    return ["--ssl-key-password", CANARY, "-X", f"ssl.keystore.password={CANARY}"]


@pytest.fixture
def toml(tmp_path):
    path = tmp_path / "driftline.toml"
    path.write_text(f'state_secret = "{CANARY}"\nsession_timeout_ms = 3000\nheartbeat_interval_ms = 500\n'
                    f'[kafka]\n"ssl.key.pem" = "{CANARY}"\n')
    return path


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "driftline.cli.main", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _clean(text: str, what: str) -> None:
    assert CANARY not in text, f"{what} shows the canary secret:\n{text[-3000:]}"


def test_no_validator_and_no_failing_command_prints_a_secret(tmp_path, toml):
    bad_toml = tmp_path / "syntax.toml"  # a syntax error right at the secret
    bad_toml.write_text(f'warmup = 500\nsasl_password = {CANARY}\n')
    typo_toml = tmp_path / "typo.toml"  # a misspelt secret, a bad model rule, a kafka table of the wrong type
    typo_toml.write_text(f'sasl_pasword = "{CANARY}"\nwarmup = -3\n[models.fraud]\nvalid_range = "oops"\n')
    table_toml = tmp_path / "table.toml"
    table_toml.write_text(f'kafka = "{CANARY}"\n')
    events = tmp_path / "events.jsonl"
    events.write_text("".join(orjson.dumps({"model": "m", "features": {"x": float(i)}}).decode() + "\n" for i in range(50)))
    s = _secret_flags()
    env = _base_env(toml, DRIFTLINE_BOOTSTRAP_SERVERS=DEAD, DRIFTLINE_BROKER_TIMEOUT_SECONDS="1")
    cases = {  # name: (argv, env, expected exit code, expected number of stderr lines or None)
        "cross-field (flags)": (["run", *s, "--heartbeat-interval-ms", "100000"], env, 2, 1),
        "cross-field (topics)": (["status", *s, "--input-topics", "driftline.alerts"], env, 2, 1),
        "field errors + unknown + models": (["run", *s, "--config", str(typo_toml), "--batch-size", "0"], env, 2, 4),
        # replay reads no Kafka: it takes no connection flags (the secrets reach it from the environment)
        "TOML syntax at the secret": (["replay", str(events), "--config", str(bad_toml)], env, 2, 1),
        "kafka of the wrong type": (["topics", "create", *s[:2], "--config", str(table_toml)],  # alone: no other kafka source
                                    {k: v for k, v in env.items() if not k.startswith("DRIFTLINE_KAFKA__")}, 2, 1),
        "managed kafka property": (["topics", "create", *s, "-X", f"group.id={CANARY}"], env, 2, 1),
        "-X without =": (["run", *s, "-X", CANARY], env, 2, 1),
        "unknown flag": (["run", *s, f"--sasl-pasword={CANARY}", CANARY], env, 2, 1),
        "env JSON": (["run", *s], {**env, "DRIFTLINE_KAFKA": f'{{"x": "{CANARY}"'}, 2, 1),
        "32-bit": (["run", *s, "--transaction-timeout-ms", "2147483648"], env, 2, 1),
        "librdkafka range (-X)": (["notify", *s, "--bootstrap-servers", DEAD, "-X", "socket.timeout.ms=1"], env, 2, 1),
        "notify URL": (["notify", *s, "--webhook", f"http://u:{CANARY}@h/{CANARY} x"], env, 2, 1),
        "notify cross-field": (["notify", *s, "--backoff", "100", "--max-backoff", "10"], env, 2, 1),
        "notify bad value": (["notify", *s, "--cooldown", "-1"], {**env, "DRIFTLINE_NOTIFY_SLACK_WEBHOOKS": f"https://x:{CANARY}@h/{CANARY}"}, 2, 1),
        "run, dead broker": (["run", *s, "--bootstrap-servers", DEAD, *FAST, "--log-level", "DEBUG", "-X", "debug=conf"], env, 3, None),
        "status, dead broker": (["status", *s, "--bootstrap-servers", DEAD, *FAST], env, 3, 1),
        "topics, dead broker": (["topics", "create", *s, "--bootstrap-servers", DEAD, *FAST], env, 3, 1),
        "replay": (["replay", str(events), "--warmup", "50", "--window-events", "50"], env, 0, None),
        "a connection flag given to replay": (["replay", str(events), *s], env, 2, 1),
    }
    procs = {name: _start(argv, e) for name, (argv, e, _, _) in cases.items()}
    errs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        _, _, rc, lines = cases[name]
        assert proc.returncode == rc, f"{name}: exit code {proc.returncode}\n{err[-3000:]}"
        _clean(out + err, name)
        assert "Traceback" not in err, f"{name}:\n{err}"
        if lines is not None:
            assert len(err.splitlines()) == lines, f"{name}: expected {lines} line(s):\n{err}"
        errs[name] = err
    # the lines name what is wrong (the secrets stayed out because they were never put in)
    assert f"{bad_toml}, line 2, column 17: invalid TOML" in errs["TOML syntax at the secret"]
    assert "did you mean sasl_password" in errs["field errors + unknown + models"]
    assert "[models.fraud] valid_range" in errs["field errors + unknown + models"]
    assert "socket.timeout.ms from -X socket.timeout.ms" in errs["librdkafka range (-X)"]
    assert "less than or equal to 2147483647" in errs["32-bit"]
    assert "(did you mean --sasl-password?) and 1 value (not shown)" in errs["unknown flag"]


def test_running_commands_and_notify_failures_show_no_secret(kenv, toml):
    alerts = f"alerts-{uuid.uuid4().hex[:8]}"
    for f in kenv.admin.create_topics([NewTopic(alerts, num_partitions=1, replication_factor=1)]).values():
        f.result(10)
    alert = {"alert_id": "a1", "status": "firing", "model": "fraud", "model_version": "v3", "feature": "amount",
             "kind": "data_drift", "detector": "adwin", "severity": "critical", "summary": "amount moved",
             "detected_at": "2026-11-26T10:00:00.000Z"}
    kenv.produce([(b"fraud/v3/amount/adwin", orjson.dumps(alert))], topic=alerts)
    bootstrap = kenv.broker.bootstrap_servers
    s = _secret_flags()
    worker_port, notify_port = free_port(), free_port()
    with WebhookServer({f"/basic/{CANARY}": [(503, {})] * 2, f"/down/{CANARY}": [(500, {})] * 10}) as server:
        basic = server.url(f"/basic/{CANARY}").replace("http://", f"http://bot:{CANARY}@")  # 503, 503, then 200
        down = server.url(f"/down/{CANARY}")  # 500 until given up
        dead = f"https://hooks.example.invalid:1/services/T0/B0/{CANARY}"  # no answer at all
        common = _base_env(toml, DRIFTLINE_BOOTSTRAP_SERVERS=bootstrap, DRIFTLINE_TOPIC_REPLICATION_FACTOR="1",
                           DRIFTLINE_METRICS_HOST="127.0.0.1")
        worker = _start(["run", *s, "--input-topics", kenv.input, "--group-id", kenv.group, "--alerts-topic", kenv.alerts,
                         "--metrics-topic", kenv.metrics_topic, "--deadletter-topic", kenv.deadletter,
                         "--references-topic", kenv.references, "--labels-topic", "", "--state-topic", kenv.state,
                         "--metrics-port", str(worker_port)], common)
        notify = _start(["notify", *s, "--alerts-topic", alerts, "--auto-offset-reset", "earliest",
                         "--metrics-port", str(notify_port), "--group", f"n-{uuid.uuid4().hex[:6]}",
                         "--webhook", basic, "--webhook", down, "--max-retries", "2", "--backoff", "0.01",
                         "--max-backoff", "0.05", "--timeout", "1"],
                        {**common, "DRIFTLINE_NOTIFY_SLACK_WEBHOOKS": dead})
        try:
            def scrape(port: int, path: str = "/metrics") -> str:
                try:
                    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).read().decode()
                except OSError:
                    return ""

            notify_metrics = wait_for(lambda: (m := scrape(notify_port)).count("driftline_notify_deliveries_total{") >= 3
                                      and m or notify.poll() is not None, 60, "notify's three deliveries")
            assert notify.poll() is None, notify.communicate()[1][-3000:]
            worker_metrics = wait_for(lambda: scrape(worker_port) or worker.poll() is not None, 60, "the worker's /metrics")
            assert worker.poll() is None, worker.communicate()[1][-3000:]
            health = scrape(worker_port, "/healthz") + scrape(notify_port, "/readyz")
            status = subprocess.run([sys.executable, "-m", "driftline.cli.main", "status", *s, "--group-id", kenv.group,
                                     "--alerts-topic", kenv.alerts, "--metrics-topic", kenv.metrics_topic,
                                     "--input-topics", kenv.input, "--timeout", "10"], env=common,
                                    capture_output=True, text=True, timeout=60)
            status_json = subprocess.run([sys.executable, "-m", "driftline.cli.main", "status", "--json", *s,
                                          "--group-id", kenv.group, "--input-topics", kenv.input, "--timeout", "10"],
                                         env=common, capture_output=True, text=True, timeout=60)
            topics = subprocess.run([sys.executable, "-m", "driftline.cli.main", "topics", "create", *s,
                                     "--input-topics", kenv.input, "--labels-topic", "", "--state-topic", ""],
                                    env=common, capture_output=True, text=True, timeout=60)
        finally:
            for proc in (worker, notify):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            outputs = {name: proc.communicate(timeout=60) for name, proc in (("worker", worker), ("notify", notify))}
        received = list(server.received)
    assert worker.returncode == 0 and notify.returncode == 0, outputs
    assert status.returncode == 0 and status_json.returncode == 0 and topics.returncode == 0, (status.stderr, topics.stderr)
    for name, text in [("worker", "".join(outputs["worker"])), ("notify", "".join(outputs["notify"])),
                       ("worker /metrics", worker_metrics), ("notify /metrics", notify_metrics), ("health", health),
                       ("status", status.stdout + status.stderr), ("status --json", status_json.stdout + status_json.stderr),
                       ("topics create", topics.stdout + topics.stderr)]:
        _clean(text, name)
    # notify went through its error paths, and said so with the URLs reduced to scheme://host:port/…
    log = outputs["notify"][1]
    port = server.url("/").rsplit(":", 1)[1].split("/")[0]
    assert "webhook failed; retrying" in log and "given up" in log and f"url=http://127.0.0.1:{port}/…" in log
    assert "url=https://hooks.example.invalid:1/…" in log
    assert 'driftline_notify_deliveries_total{endpoint="webhook#1",outcome="delivered"} 1.0' in notify_metrics
    assert 'driftline_notify_deliveries_total{endpoint="webhook#2",outcome="failed"} 1.0' in notify_metrics
    assert 'driftline_notify_deliveries_total{endpoint="slack#1",outcome="failed"} 1.0' in notify_metrics
    # the basic-auth password went where it belongs: the Authorization header of the request
    assert {r.headers.get("Authorization") for r in received if r.path.startswith("/basic/")} == {
        "Basic " + base64.b64encode(f"bot:{CANARY}".encode()).decode()}
