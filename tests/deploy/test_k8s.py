"""The Kubernetes manifests parse and agree with the code and image they deploy."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from driftline.cli.main import build_parser
from driftline.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _docs():
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def test_manifests_parse_and_reference_each_other():
    docs = _docs()
    deployment = docs[("Deployment", "driftline")]
    service = docs[("Service", "driftline-metrics")]
    configmap = docs[("ConfigMap", "driftline")]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]


def test_ports_probes_and_user_match_the_worker_and_image():
    docs = _docs()
    pod = docs[("Deployment", "driftline")]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    port = Settings.model_fields["metrics_port"].default
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ("metrics", port)
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == port
    service = docs[("Service", "driftline-metrics")]
    assert service["spec"]["ports"][0]["port"] == port and service["spec"]["ports"][0]["targetPort"] == "metrics"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile
    user = re.search(r"^USER (\d+)", dockerfile, re.M).group(1)
    assert pod["spec"]["securityContext"]["runAsUser"] == int(user)
    assert container["image"].split(":")[0] == "driftline"
    # the image's entrypoint is the driftline CLI: the args must be one of its commands
    assert container["args"][0] in build_parser()._subparsers._group_actions[0].choices


def test_environment_names_settings_and_the_config_map_is_valid(tmp_path, monkeypatch):
    docs = _docs()
    (container,) = docs[("Deployment", "driftline")]["spec"]["template"]["spec"]["containers"]
    settings_env = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {ENV_PREFIX + "CONFIG"}
    for env in container["env"]:
        assert env["name"] in settings_env, f"{env['name']} is not a driftline setting"
    config_path = next(e["value"] for e in container["env"] if e["name"] == ENV_PREFIX + "CONFIG")
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"]))
    key = config_path[len(mount["mountPath"]):].lstrip("/")
    toml = docs[("ConfigMap", "driftline")]["data"][key]
    path = tmp_path / key
    path.write_text(toml)
    settings = load_settings(config_file=path)  # a bad setting would raise ConfigError naming it
    assert settings.metrics_port == Settings.model_fields["metrics_port"].default
    assert "fraud" in settings.models


def test_podmonitor_scrapes_the_workers_under_the_job_the_rules_select():
    (monitor,) = yaml.safe_load_all((K8S / "prometheus-operator" / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor" and monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod = _docs()[("Deployment", "driftline")]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = pod["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]} and endpoint["path"] == "/metrics"
    # the job name comes from a pod label; the rules select that job
    job = labels[monitor["spec"]["jobLabel"]]
    rules = (ROOT / "deploy" / "prometheus" / "rules" / "driftline.rules.yml").read_text()
    assert f'up{{job="{job}"}}' in rules
