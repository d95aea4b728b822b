"""A real Prometheus (Debian's ``prometheus``) scrapes a real worker.

The worker consumes from tansu; Prometheus runs on a free port with its own
storage, scrapes the worker every second and evaluates
``deploy/prometheus/rules/driftline.rules.yml``.  The test asks Prometheus'
HTTP API, never the worker, for what it asserts on.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from conftest import wait_for
from tools import require_binary

from driftline.demo.broker import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftline.rules.yml"
T0 = 1_700_000_000_000  # event times in 2023: the event-time lag rule must notice


def _events(n: int, shift_at: int, seed: int = 3):
    """``amount`` moves up by 40 from event ``shift_at``; ``age`` and ``country`` stay put."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        doc = {"model": "fraud", "model_version": "v3", "event_id": f"e{i}", "timestamp": T0 + i * 10,
               "features": {"amount": float(rng.lognormal(3, 1) + (40.0 if i >= shift_at else 0.0)),
                            "age": float(rng.normal(40, 10)), "country": str(rng.choice(["de", "fr", "it"]))},
               "prediction": float(rng.random())}
        yield b"fraud", orjson.dumps(doc)


class Prometheus:
    """One Prometheus process on a free port, scraping ``targets`` as job ``driftline``."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "driftline", "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()}"
        try:
            return urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def api(self, path: str, **params: str):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def prometheus_for(tmp_path):
    binary = require_binary("prometheus")
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        p = Prometheus(binary, tmp_path, targets)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
        assert p.process.returncode is not None


def _worker_gauges(worker, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for f in worker.metrics.registry.collect()
            for s in f.samples if s.name == name}


def test_prometheus_scrapes_a_worker_and_its_drift_series_and_rules(kenv, prometheus_for):
    worker = kenv.start_worker()
    instance = f"127.0.0.1:{worker.metrics_port}"
    prom = prometheus_for([instance])
    wait_for(prom.ready, 30, "prometheus ready")

    events = list(_events(4000, 2500))
    # Stationary traffic first, and Prometheus has seen it ...
    kenv.produce(events[:2500])
    wait_for(lambda: prom.query(f'driftline_events_total{{job="driftline",model="fraud",topic="{kenv.input}"}} == 2500'),
             60, "prometheus sees the first 2500 events")
    assert prom.query('up{job="driftline"}')[0]["value"][1] == "1"
    assert prom.query("driftline_alerts_firing == 1") == []
    assert prom.query('ALERTS{alertname="DriftlineDrift"}') == []

    # ... then the drift.
    kenv.produce(events[2500:])
    firing = wait_for(lambda: prom.query('driftline_alerts_firing{job="driftline"} == 1'), 60, "a firing drift alert scraped")
    assert {r["metric"]["feature"] for r in firing} == {"amount"}
    assert all(r["metric"]["model"] == "fraud" and r["metric"]["kind"] == "data_drift" for r in firing)
    wait_for(lambda: prom.query('driftline_events_total{job="driftline",model="fraud"} == 4000'), 60, "all events scraped")

    # The drift statistics Prometheus holds are the worker's, label for label.
    result = prom.query('driftline_feature_drift_statistic{job="driftline",model="fraud",feature="amount"}')
    scraped = {(r["metric"]["model_version"], r["metric"]["statistic"]): float(r["value"][1]) for r in result}
    own = {(dict(k)["model_version"], dict(k)["statistic"]): v
           for k, v in _worker_gauges(worker, "driftline_feature_drift_statistic").items() if dict(k)["feature"] == "amount"}
    assert scraped and scraped == pytest.approx(own)
    assert {r["metric"]["instance"] for r in result} == {instance}
    stationary = prom.query('driftline_feature_drift_statistic{feature="age",statistic="ks"}')
    shifted = prom.query('driftline_feature_drift_statistic{feature="amount",statistic="ks"}')
    assert float(shifted[0]["value"][1]) > float(stationary[0]["value"][1])

    # The rules, evaluated by this Prometheus on the scraped series.
    alerts = wait_for(lambda: prom.query('ALERTS{alertname="DriftlineDrift",alertstate="firing"}'), 30, "DriftlineDrift firing")
    assert [(a["metric"]["model"], a["metric"]["feature"], a["metric"]["kind"], a["metric"]["severity"]) for a in alerts] \
        == [("fraud", "amount", "data_drift", "warning")]
    lag = wait_for(lambda: prom.query('ALERTS{alertname="DriftlineEventTimeLagHigh"}'), 30, "event-time lag alert pending")
    assert [(a["metric"]["topic"], a["metric"]["alertstate"]) for a in lag] == [(kenv.input, "pending")]  # for: 10m
    rate = wait_for(lambda: prom.query('model:driftline_events:rate5m{job="driftline",model="fraud"} > 0'), 30,
                    "events rate recorded")
    assert len(rate) == 1
    assert prom.query('ALERTS{alertname=~"DriftlineWorkerDown|DriftlineNothingAssigned|DriftlineQualityIssue"}') == []
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert [r["name"] for r in rules if r["health"] != "ok"] == [], [r.get("lastError") for r in rules]
