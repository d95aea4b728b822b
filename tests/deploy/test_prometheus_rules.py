"""The Prometheus and Alertmanager files under ``deploy/``.

promtool and amtool (Debian packages ``prometheus`` and ``prometheus-alertmanager``,
installed by ``.ci/run``) check the syntax and run the rule unit tests under
``deploy/prometheus/tests``; the rest is read as data and checked against what a
worker exports (the metric definitions in ``driftline.observability.metrics``),
the alert kinds and the CLI.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_dashboard import _exported_names  # the dashboard test's view of the worker's metrics
from tools import require_binary

from driftline.cli.main import build_parser
from driftline.detection.findings import Kind

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "driftline.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
_RECORDED = r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+"
_RAW = r"(?:driftline|process)_[a-z0-9_]+"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


# --- the tools -------------------------------------------------------------------


def test_promtool_checks_the_config_and_the_rules():
    promtool = require_binary("promtool")
    out = _run([promtool, "check", "config", str(PROMETHEUS_CONFIG)]).stdout
    assert "1 rule files found" in out, out  # rule_files resolves to the rules, not to the unit tests
    out = _run([promtool, "check", "rules", str(RULES)]).stdout
    assert f"{len(_rules())} rules found" in out, out


def test_promtool_rule_unit_tests_pass():
    promtool = require_binary("promtool")
    assert RULE_TESTS, "no rule unit tests under deploy/prometheus/tests"
    out = _run([promtool, "test", "rules", *map(str, RULE_TESTS)]).stdout
    assert out.count("SUCCESS") == len(RULE_TESTS), out


def test_every_rule_has_a_unit_test():
    """Each alert is evaluated by an alert_rule_test that expects it to fire, and
    each recording rule appears in a promql_expr_test."""
    fired: set[str] = set()
    queried = ""
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert [Path(f).resolve() for f in doc["rule_files"]] == [RULES] or \
            [(path.parent / f).resolve() for f in doc["rule_files"]] == [RULES], f"{path.name} does not test {RULES.name}"
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
            queried += " ".join(case["expr"] for case in test.get("promql_expr_test", [])) + " "
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    records = {r["record"] for r in _rules() if "record" in r}
    assert alerts - fired == set(), f"alerts never expected to fire in a unit test: {sorted(alerts - fired)}"
    untested = {r for r in records if not re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", queried)}
    assert not untested, f"recording rules without a promql_expr_test: {sorted(untested)}"


def test_amtool_checks_the_alertmanager_config():
    amtool = require_binary("amtool")
    out = _run([amtool, "check-config", str(ALERTMANAGER_CONFIG)]).stdout
    assert "SUCCESS" in out and "1 receivers" in out, out


def test_commented_slack_example_is_a_valid_config(tmp_path):
    """Uncommenting the Slack example gives a config Alertmanager accepts, with the route using it."""
    amtool = require_binary("amtool")
    text = ALERTMANAGER_CONFIG.read_text()
    yaml_line = re.compile(r"^(\s*)# (\s*(?:- )?[a-z_]+:.*)$")  # a commented key, not prose
    uncommented = "\n".join(yaml_line.sub(r"\1\2", line) for line in text.splitlines()) + "\n"
    assert "slack_configs:" in uncommented and "slack_configs:" not in yaml.safe_load(text).__repr__()
    path = tmp_path / "alertmanager.yml"
    path.write_text(uncommented)
    assert "2 receivers" in _run([amtool, "check-config", str(path)]).stdout
    routed = _run([amtool, "config", "routes", "test", f"--config.file={path}",
                   "alertname=DriftlineDrift", "model=fraud", "feature=amount", "severity=warning"]).stdout
    assert routed.split() == ["slack-ml-models"], routed


def test_alerts_route_to_the_webhook_with_resolved_notices():
    amtool = require_binary("amtool")
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    hooks = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert hooks and all(h["url"].startswith(("http://", "https://")) and h.get("send_resolved") for h in hooks)
    for rule in (r for r in _rules() if "alert" in r):
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule.get("labels", {}).items())]
        routed = _run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels]).stdout
        assert routed.split() == [config["route"]["receiver"]], f"{rule['alert']} goes to {routed!r}"


# --- the rules against what the worker exports -----------------------------------------


def _by_labels(expr: str) -> set[str]:
    return {w.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for w in group.split(",") if w.strip()}


def _selectors(expr: str, name_pattern: str) -> list[tuple[str, str]]:
    """(metric, label selector or '') for every series named in an expression."""
    return re.findall(rf"(?<![\w:])({name_pattern})(?![\w:])(\{{[^}}]*\}})?", expr)


def _series_labels() -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
    """Walk the rules in order, checking each series they name against what a
    worker exports (plus Prometheus' ``up``) or an earlier recording rule.

    Returns the labels each recording rule keeps, the labels each alert
    carries (before its own ``labels``), and the exported metrics used.
    """
    names, labels = _exported_names()
    labels = {name: found | TARGET_LABELS for name, found in labels.items()}
    names, labels["up"] = names | {"up"}, set(TARGET_LABELS)
    recorded: dict[str, set[str]] = {}
    alerts: dict[str, set[str]] = {}
    used: set[str] = set()
    for rule in _rules():
        expr = rule["expr"]
        series = _selectors(expr, _RECORDED)
        for metric, _ in series:
            assert metric in recorded, f"{metric!r} in {expr!r} is recorded by no earlier rule"
        raw = _selectors(re.sub(_RECORDED, " ", expr), _RAW + r"|up")
        for metric, _ in raw:
            assert metric in names, f"{metric!r} in {expr!r} is not exported by a worker"
            used.add(metric)
        available = {name: (recorded[name] if name in recorded else labels[name]) for name, _ in series + raw}
        assert available, f"{expr!r} names no series"
        for metric, selector in series + raw:
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector or ""):
                assert label in available[metric], f"{metric} has no label {label!r} ({expr!r})"
        by = _by_labels(expr)
        for label in by:
            assert all(label in found for found in available.values()), f"by ({label}) in {expr!r}: not a label of every series"
        out = by or set.intersection(*available.values())
        if "record" in rule:
            assert by, f"recording rule {rule['record']} should aggregate with by (...)"
            recorded[rule["record"]] = out
        else:
            alerts[rule["alert"]] = out
    return recorded, alerts, used


def test_rules_name_only_exported_metrics_and_labels():
    recorded, alerts, used = _series_labels()
    for name, kept in recorded.items():
        level = name.split(":", 1)[0]
        assert set(level.split("_")) <= kept, f"{name}: level {level!r} names labels it does not keep ({sorted(kept)})"
    for rule in (r for r in _rules() if "alert" in r):
        text = " ".join(rule.get("annotations", {}).values())
        for label in re.findall(r"\$labels\.([a-zA-Z_]+)", text):
            assert label in alerts[rule["alert"]], \
                f"{rule['alert']}: annotation uses $labels.{label}, the expression keeps {sorted(alerts[rule['alert']])}"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), f"{rule['alert']}: severity"
    # the alerts: drift, dead letters, consumer lag, worker down, event-time lag
    assert {"driftline_alerts_firing", "driftline_dead_letters_total", "driftline_records_total",
            "driftline_consumer_lag_records", "driftline_event_time_lag_seconds", "up"} <= used


def test_rule_annotations_name_real_metrics_and_commands():
    names, _ = _exported_names()
    families = names | {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    parser = build_parser()
    commands = "|".join(next(a for a in parser._actions if a.dest == "command").choices)
    checked = 0
    for rule in (r for r in _rules() if "alert" in r):
        for text in rule["annotations"].values():
            for metric in re.findall(rf"\b{_RAW}\b", text):
                assert metric in families, f"{rule['alert']}: annotation names {metric!r}, which no worker exports"
            for command in re.findall(rf"\bdriftline ((?:{commands})\b[^\n]*)", text):
                argv = shlex.split(re.sub(r"\{\{[^}]*\}\}", "x", command))
                try:
                    parser.parse_args(argv)
                except SystemExit:
                    pytest.fail(f"{rule['alert']}: `driftline {command}` is not a valid command line")
                checked += 1
    assert checked >= 2, "the drift alerts should say which command shows the alert records"


def test_alert_kinds_in_rules_are_the_worker_kinds():
    """Every alert kind of the worker raises exactly one of the rules, and no rule names an unknown kind."""
    kinds = {v for k, v in vars(Kind).items() if k.isupper()}
    seen: list[str] = []
    for rule in (r for r in _rules() if "alert" in r):
        for values in re.findall(r'kind=~?"([^"]*)"', rule["expr"]):
            seen += values.split("|")
    assert sorted(seen) == sorted(kinds), f"rules cover kinds {sorted(seen)}, the worker has {sorted(kinds)}"


def test_alertmanager_groups_by_labels_the_alerts_carry():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    _, alerts, _ = _series_labels()
    carried = {"alertname"}.union(*alerts.values())
    for rule in (r for r in _rules() if "alert" in r):
        carried |= set(rule.get("labels", {}))
    assert set(config["route"]["group_by"]) <= carried, set(config["route"]["group_by"]) - carried
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    for inhibit in config.get("inhibit_rules", []):
        for matcher in inhibit.get("source_matchers", []) + inhibit.get("target_matchers", []):
            m = re.fullmatch(r'alertname="([^"]+)"', matcher)
            if m:
                assert m.group(1) in alerts, f"inhibit rule names unknown alert {m.group(1)!r}"


def test_drift_and_quality_alerts_are_grouped_per_model_incident():
    """An upstream break that moves 8 features is one notification: drift and quality alerts are grouped by
    (model, model_version, incident_id), which DriftlineIncident carries, and the per-feature alerts of a model
    are muted while one of its incidents is open."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    _, alerts, _ = _series_labels()
    assert {"model", "model_version", "incident_id"} <= alerts["DriftlineIncident"]

    def route_of(labels: dict[str, str]) -> dict[str, Any]:
        for route in config["route"]["routes"]:
            if all(_matches(m, labels) for m in route["matchers"]):
                return route
        return config["route"]

    for name in ("DriftlineIncident", "DriftlineDrift", "DriftlineQualityIssue"):
        rule = next(r for r in _rules() if r.get("alert") == name)
        route = route_of({"alertname": name, **rule["labels"]})
        assert route["group_by"] == ["model", "model_version", "incident_id"], name
    [inhibit] = [i for i in config["inhibit_rules"] if i["source_matchers"] == ['alertname="DriftlineIncident"']]
    muted = inhibit["target_matchers"][0]
    assert _matches(muted, {"alertname": "DriftlineDrift"}) and _matches(muted, {"alertname": "DriftlineQualityIssue"})
    assert not _matches(muted, {"alertname": "DriftlineIncident"}) and inhibit["equal"] == ["job", "model"]
    amtool = require_binary("amtool")
    routed = _run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", "alertname=DriftlineIncident",
                   "model=fraud", "model_version=v3", "incident_id=5f1c", "severity=warning"]).stdout
    assert routed.split() == [config["route"]["receiver"]]


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    """Whether an Alertmanager matcher (``name="v"`` or ``name=~"re"``) matches ``labels``."""
    m = re.fullmatch(r'([a-z_]+)\s*(=~|=)\s*"([^"]*)"', matcher)
    assert m, f"matcher {matcher!r} not understood by this test"
    name, op, value = m.groups()
    got = labels.get(name, "")
    return bool(re.fullmatch(value, got)) if op == "=~" else got == value
