"""Static checks of the deployment files (no Docker engine needed).

``docker-compose.yml`` and ``deploy/Dockerfile`` are read as data and checked
against the code they deploy: settings fields and defaults come from
``driftline.config.Settings``, the console script from ``pyproject.toml``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.cli.main import build_parser
from driftline.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"


# --- helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in compose["services"], f"docker-compose.yml has no service {name!r}"
    return compose["services"][name]


def _env(service: dict[str, Any]) -> dict[str, str]:
    """``environment`` as a dict, whether written as a mapping or as KEY=VALUE items."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _as_argv(value: Any) -> list[str]:
    """A compose ``command``/``entrypoint`` (string or list) as an argv list."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _command_text(service: dict[str, Any]) -> str:
    return "\n".join(_as_argv(service.get("entrypoint")) + _as_argv(service.get("command")))


def _csv_map(value: str) -> dict[str, str]:
    """``A:x,B:y`` -> ``{"A": "x", "B": "y"}``."""
    out = {}
    for item in value.split(","):
        item = item.strip()
        if item:
            key, _, val = item.partition(":")
            out[key.strip()] = val.strip()
    return out


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> ``{NAME: (host, port)}`` (empty host for all interfaces)."""
    out = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_]+)://(\[[^\]]*\]|[^:]*):(\d+)", item)
        assert m, f"unparsable listener {item!r}"
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def _host_ports(value: str) -> list[tuple[str, int]]:
    out = []
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        assert host and port.isdigit(), f"{item!r} is not host:port"
        out.append((host, int(port)))
    return out


def _kafka_client_endpoints(compose: dict[str, Any]) -> set[tuple[str, int]]:
    """host:port pairs under which service ``kafka`` serves PLAINTEXT clients.

    A pair counts when a listener is bound on that port, is not a controller
    listener, maps to the PLAINTEXT security protocol, and is advertised under
    that host, which must be a name of the ``kafka`` service on the compose network.
    """
    kafka = _service(compose, "kafka")
    env = _env(kafka)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env.get("KAFKA_ADVERTISED_LISTENERS", env["KAFKA_LISTENERS"]))
    protocols = _csv_map(env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", ""))
    controllers = {n.strip() for n in env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")}
    names = {"kafka", kafka.get("hostname"), kafka.get("container_name")}
    for net in (kafka.get("networks") or {}).values() if isinstance(kafka.get("networks"), dict) else ():
        names.update((net or {}).get("aliases", []))
    names.discard(None)

    endpoints = set()
    for name, (_, port) in listeners.items():
        if name in controllers or protocols.get(name, name) != "PLAINTEXT":
            continue
        adv_host, adv_port = advertised.get(name, ("", -1))
        if adv_port == port and adv_host in names:
            endpoints.add((adv_host, port))
    return endpoints


def _topic_creations(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``kafka-topics.sh --create`` invocations of a service, by topic name."""
    created = {}
    for line in _command_text(service).replace("\\\n", " ").splitlines():
        if "kafka-topics.sh" not in line:
            continue
        args = shlex.split(line)
        if "--create" not in args:
            continue

        def opt(flag: str) -> str | None:
            i = args.index(flag) if flag in args else -1
            return args[i + 1] if 0 <= i < len(args) - 1 else None

        topic = opt("--topic")
        assert topic, f"kafka-topics.sh --create without --topic: {line!r}"
        created[topic] = {
            "if_not_exists": "--if-not-exists" in args,
            "partitions": opt("--partitions"),
            "replication_factor": opt("--replication-factor"),
            "bootstrap": opt("--bootstrap-server"),
            "configs": dict(args[i + 1].split("=", 1) for i, a in enumerate(args[:-1]) if a == "--config"),
        }
    return created


def _default(field: str) -> Any:
    info = Settings.model_fields[field]
    return info.get_default(call_default_factory=True)


def _dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last build stage; continuations joined, comments dropped."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    logical, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append(buf + stripped)
        buf = ""
    if buf:
        logical.append(buf)
    instructions = []
    for line in logical:
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1]:]


def _exec_form(args: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return shlex.split(args)
    assert isinstance(value, list), f"not an exec form: {args!r}"
    return [str(v) for v in value]


def _last(stage: list[tuple[str, str]], word: str) -> str | None:
    values = [args for w, args in stage if w == word]
    return values[-1] if values else None


def _console_scripts() -> dict[str, str]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


# --- kafka -------------------------------------------------------------------


def test_kafka_uses_the_official_apache_image(compose):
    image = _service(compose, "kafka").get("image", "")
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", image), f"kafka image {image!r} is not apache/kafka:<version>"


def test_kafka_runs_in_kraft_mode_without_zookeeper(compose):
    env = _env(_service(compose, "kafka"))
    roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert "controller" in roles and "broker" in roles, f"KAFKA_PROCESS_ROLES={env.get('KAFKA_PROCESS_ROLES')!r}"
    assert env.get("KAFKA_CONTROLLER_QUORUM_VOTERS"), "KRaft needs KAFKA_CONTROLLER_QUORUM_VOTERS"
    controller_names = {n.strip() for n in env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",") if n.strip()}
    assert controller_names and controller_names <= set(_listeners(env["KAFKA_LISTENERS"])), \
        "the controller listener must be one of KAFKA_LISTENERS"
    # Comments may mention it; the parsed configuration must not.
    assert "zookeeper" not in json.dumps(compose).lower()


def test_kafka_healthcheck_probes_a_client_listener(compose):
    kafka = _service(compose, "kafka")
    test = " ".join(_as_argv(kafka.get("healthcheck", {}).get("test")))
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test
    m = re.search(r"--bootstrap-server\s+(\S+)", test)
    assert m, f"healthcheck without --bootstrap-server: {test!r}"
    ports = {port for _, port in _host_ports(m.group(1))}
    listener_ports = {port for _, port in _listeners(_env(kafka)["KAFKA_LISTENERS"]).values()}
    assert ports <= listener_ports, f"healthcheck probes {ports}, listeners are on {listener_ports}"


def test_kafka_single_node_replication_settings(compose):
    env = _env(_service(compose, "kafka"))
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env.get(key) == "1", f"{key}={env.get(key)!r}; a single broker needs 1"


# --- topics ------------------------------------------------------------------


def test_topics_service_creates_every_default_topic(compose):
    topics = _service(compose, "topics")
    created = _topic_creations(topics)
    wanted = set(_default("input_topics")) | {_default(f) for f in ("alerts_topic", "metrics_topic", "deadletter_topic",
                                                                      "labels_topic", "references_topic")}
    missing = wanted - set(created)
    assert not missing, f"topics service does not create {sorted(missing)}"
    # labels meet their inferences only on the same partition number (driftline.transport.kafka.check_labels_topic)
    for topic in _default("input_topics"):
        assert created[_default("labels_topic")]["partitions"] == created[topic]["partitions"]
    from driftline.transport.kafka import OUTPUT_TOPIC_CONFIGS

    references = created[_default("references_topic")]["configs"]
    assert references == OUTPUT_TOPIC_CONFIGS["references"], "references topic configs differ from the worker's"
    endpoints = _kafka_client_endpoints(compose)
    for name in wanted:
        spec = created[name]
        assert spec["if_not_exists"], f"{name}: --create without --if-not-exists fails on a restart"
        assert spec["replication_factor"] == "1", f"{name}: replication factor must be 1 on a single broker"
        assert spec["partitions"] and int(spec["partitions"]) >= 1, f"{name}: bad --partitions"
        assert spec["bootstrap"], f"{name}: no --bootstrap-server"
        assert set(_host_ports(spec["bootstrap"])) <= endpoints, \
            f"{name}: bootstrap {spec['bootstrap']!r} is not a PLAINTEXT listener of kafka ({sorted(endpoints)})"


def test_topics_service_runs_once_after_kafka_is_healthy(compose):
    topics = _service(compose, "topics")
    assert topics.get("image") == _service(compose, "kafka").get("image")
    assert topics.get("depends_on", {}).get("kafka", {}).get("condition") == "service_healthy"
    assert str(topics.get("restart", "no")) in ("no", "False", "false"), "a one-shot job must not restart"
    assert _service(compose, "kafka").get("healthcheck"), "service_healthy needs a kafka healthcheck"


# --- driftline services ----------------------------------------------------------

#: The two workers of one consumer group, and every service running the driftline image.
WORKERS = ("driftline-1", "driftline-2")
DRIFTLINE_IMAGE_SERVICES = (*WORKERS, "model-server")


def _driftline_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    return {k: v for k, v in _env(_service(compose, name)).items() if k.startswith(ENV_PREFIX)}


@pytest.mark.parametrize("name", DRIFTLINE_IMAGE_SERVICES)
def test_driftline_env_names_real_settings(compose, name):
    env = _driftline_env(compose, name)
    assert env, f"{name} sets no DRIFTLINE_* variables"
    fields = Settings.model_fields
    for key in env:
        setting = key[len(ENV_PREFIX):].lower()
        top = setting.split("__", 1)[0]  # DRIFTLINE_KAFKA__SECURITY_PROTOCOL -> kafka
        assert setting == "config" or top in fields, f"{name}: {key} is not a driftline setting"
        if "__" in setting:
            assert top == "kafka", f"{name}: {key}: only the kafka setting takes nested keys"


@pytest.mark.parametrize("name", DRIFTLINE_IMAGE_SERVICES)
def test_driftline_env_values_are_valid_settings(compose, monkeypatch, name):
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    env = _driftline_env(compose, name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()  # raises ConfigError naming a bad value
    if "DRIFTLINE_METRICS_PORT" in env:
        assert settings.metrics_port == int(env["DRIFTLINE_METRICS_PORT"])


@pytest.mark.parametrize("name", DRIFTLINE_IMAGE_SERVICES)
def test_driftline_bootstrap_is_a_kafka_plaintext_listener(compose, name):
    bootstrap = _env(_service(compose, name)).get("DRIFTLINE_BOOTSTRAP_SERVERS")
    assert bootstrap, f"{name} does not set DRIFTLINE_BOOTSTRAP_SERVERS"
    endpoints = _kafka_client_endpoints(compose)
    assert endpoints, "kafka exposes no PLAINTEXT client listener advertised under its service name"
    for host_port in _host_ports(bootstrap):
        assert host_port in endpoints, f"{name}: {host_port} is not a PLAINTEXT listener of kafka ({sorted(endpoints)})"


def test_workers_form_one_group_on_the_same_topics(compose, monkeypatch):
    """Both workers resolve to the same group and input topics, and the model
    server produces to one of those topics."""
    resolved = []
    for name in DRIFTLINE_IMAGE_SERVICES:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in _driftline_env(compose, name).items():
            monkeypatch.setenv(key, value)
        resolved.append(load_settings())
    workers, server = resolved[:len(WORKERS)], resolved[-1]
    assert len({s.group_id for s in workers}) == 1, f"workers in groups {[s.group_id for s in workers]}"
    assert len({tuple(s.input_topics) for s in workers}) == 1
    assert set(server.input_topics) <= set(workers[0].input_topics), "the model server produces to a topic no worker reads"


def _published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) pairs of ``ports``."""
    out = []
    for item in service.get("ports", []):
        if isinstance(item, dict):
            out.append((int(item.get("published", item["target"])), int(item["target"])))
            continue
        spec = str(item).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            out.append((int(parts[0]), int(parts[0])))
        else:
            out.append((int(parts[-2]), int(parts[-1])))
    return out


def _metrics_port(service: dict[str, Any]) -> int:
    return int(_env(service).get("DRIFTLINE_METRICS_PORT", _default("metrics_port")))


@pytest.mark.parametrize("name, host_port", [("driftline-1", 9188), ("driftline-2", 9189)])
def test_driftline_publishes_its_metrics_port(compose, name, host_port):
    service = _service(compose, name)
    port = _metrics_port(service)
    published = _published(service)
    assert (host_port, port) in published, f"{name}: metrics port {port} is not published as {host_port}:{port} ({published})"
    health = " ".join(_as_argv(service.get("healthcheck", {}).get("test")))
    assert f":{port}/healthz" in health, f"{name} healthcheck does not probe :{port}/healthz: {health!r}"
    assert "urllib" in health, "the slim image has no curl/wget; the healthcheck must use Python"


def test_no_two_services_publish_the_same_host_port(compose):
    seen: dict[int, str] = {}
    for name, service in compose["services"].items():
        for host, _ in _published(service):
            assert host not in seen, f"{name} and {seen[host]} both publish host port {host}"
            seen[host] = name
    assert {3000, 9090, 9093, 9188, 9189, 8000} <= set(seen), f"published: {sorted(seen)}"


@pytest.mark.parametrize("name", DRIFTLINE_IMAGE_SERVICES)
def test_driftline_build_points_to_an_existing_dockerfile(compose, name):
    service = _service(compose, name)
    assert service.get("image") == "driftline:latest"
    build = service.get("build")
    assert build, f"{name} has no build: compose would try to pull driftline:latest"
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert context.is_dir(), f"build context {context} does not exist"
    assert dockerfile.is_file(), f"build dockerfile {dockerfile} does not exist"
    assert dockerfile.resolve() == DOCKERFILE.resolve(), f"{name} is built from {dockerfile}, not deploy/Dockerfile"


@pytest.mark.parametrize("name", DRIFTLINE_IMAGE_SERVICES)
def test_driftline_waits_for_topics(compose, name):
    deps = _service(compose, name).get("depends_on", {})
    assert deps.get("topics", {}).get("condition") == "service_completed_successfully"


@pytest.mark.parametrize("name", WORKERS)
def test_driftline_container_runs_driftline_run(compose, name):
    """Compose entrypoint/command combined with the image's ENTRYPOINT/CMD give ``driftline run``."""
    service = _service(compose, name)
    stage = _dockerfile_final_stage()
    entrypoint = _as_argv(service["entrypoint"]) if "entrypoint" in service else _exec_form(_last(stage, "ENTRYPOINT") or "[]")
    if "command" in service:
        command = _as_argv(service["command"])
    elif "entrypoint" in service:
        command = []  # overriding the entrypoint drops the image's CMD
    else:
        command = _exec_form(_last(stage, "CMD") or "[]")
    argv = entrypoint + command
    assert argv and argv[0] in _console_scripts(), f"container runs {argv!r}, not a console script"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run", f"container runs {argv!r}"


# --- Dockerfile --------------------------------------------------------------------


def test_dockerfile_runs_as_non_root():
    user = _last(_dockerfile_final_stage(), "USER")
    assert user, "final stage has no USER: the worker would run as root"
    name = user.split(":", 1)[0].strip()
    assert name not in ("root", "0", ""), f"USER {user!r} is root"


def test_dockerfile_exposes_the_default_metrics_port():
    port = Settings.model_fields["metrics_port"].default
    exposed = set()
    for word, args in _dockerfile_final_stage():
        if word == "EXPOSE":
            exposed.update(int(p.split("/", 1)[0]) for p in args.split())
    assert port in exposed, f"EXPOSE {sorted(exposed)} lacks the metrics port {port}"


def test_dockerfile_entrypoint_is_the_console_script():
    scripts = _console_scripts()
    entry = _last(_dockerfile_final_stage(), "ENTRYPOINT")
    assert entry, "final stage has no ENTRYPOINT"
    argv = _exec_form(entry)
    assert entry.lstrip().startswith("["), "use the exec form so signals reach the worker"
    assert argv[0] in scripts, f"ENTRYPOINT {argv!r} is not a [project.scripts] entry ({sorted(scripts)})"
    assert scripts[argv[0]] == "driftline.cli.main:main", f"{argv[0]} points at {scripts[argv[0]]!r}"


def test_dockerfile_healthcheck_probes_healthz():
    health = _last(_dockerfile_final_stage(), "HEALTHCHECK")
    assert health and "/healthz" in health and "urllib" in health, f"HEALTHCHECK {health!r}"


def test_dockerfile_copies_existing_sources():
    """Every COPY source from the build context exists (multi-stage COPY --from excluded)."""
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^\s*COPY\s+(?!.*--from)(.+)$", text, flags=re.MULTILINE)
    assert copies, "Dockerfile copies nothing from the context"
    for line in copies:
        parts = [p for p in _exec_form(line) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source!r} does not exist"


# --- topics for other parts -------------------------------------------------------


def test_state_topic_is_compacted(compose):
    """``driftline.state`` keeps the latest checkpoint per key, like the references topic."""
    created = _topic_creations(_service(compose, "topics"))
    assert "driftline.state" in created, "topics service does not create driftline.state"
    spec = created["driftline.state"]
    assert spec["configs"].get("cleanup.policy") == "compact"
    assert spec["if_not_exists"] and spec["replication_factor"] == "1"


# --- the rest of the stack: images, mounts, files -------------------------------------

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "driftline-dashboard.json"


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path in the repo, container path, read-only) of a service's bind mounts (named volumes left out)."""
    out = []
    for item in service.get("volumes", []):
        if isinstance(item, dict):
            if item.get("type") != "bind":
                continue
            source, target, ro = item["source"], item["target"], bool(item.get("read_only"))
        else:
            source, target, *mode = str(item).split(":")
            ro = bool(mode) and "ro" in mode[0].split(",")
            if not source.startswith((".", "/")):
                continue  # a named volume
        out.append(((COMPOSE_FILE.parent / source).resolve(), target, ro))
    return out


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a container path of a service is bind-mounted from."""
    best = None
    for host, target, _ in _bind_mounts(service):
        target = target.rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            if best is None or len(target) > len(best[1]):
                best = (host, target)
    assert best, f"{container_path} is not under a bind mount of the service ({_bind_mounts(service)})"
    host, target = best
    return host / container_path[len(target):].lstrip("/") if container_path != target else host


def _flag(service: dict[str, Any], name: str) -> str:
    for arg in _as_argv(service.get("command")):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"command has no {name}=...: {service.get('command')!r}")


#: Services whose image is built here rather than pulled.
LOCAL_IMAGES = {"driftline:latest"}


def test_every_pulled_image_is_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        if image in LOCAL_IMAGES:
            assert service.get("build"), f"{name}: {image} is built locally but the service has no build"
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag not in ("", "latest"), f"{name}: image {image!r} is not pinned to a version"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: tag {tag!r} is not a release version"
    images = {name: s["image"].rpartition(":")[0] for name, s in compose["services"].items()}
    assert images["prometheus"] == "prom/prometheus"
    assert images["alertmanager"] == "prom/alertmanager"
    assert images["grafana"] == "grafana/grafana"


def test_every_bind_mount_comes_from_the_repository(compose):
    for name, service in compose["services"].items():
        for host, target, ro in _bind_mounts(service):
            assert ROOT in (host, *host.parents), f"{name} mounts {host}, outside the repository"
            assert ro, f"{name}: mount {host} -> {target} should be read-only"
            if host == ROOT / "examples" and not host.exists():
                continue  # examples/ comes with the producer SDK (checked in test_model_server_*)
            assert host.exists(), f"{name} mounts {host}, which does not exist"


def test_model_server_runs_the_example_from_a_read_only_mount(compose):
    service = _service(compose, "model-server")
    entrypoint = _as_argv(service.get("entrypoint"))
    assert entrypoint == ["python", "/app/examples/model_server.py"], entrypoint
    assert ("./examples", "/app/examples", "ro") in {tuple(str(v).split(":")) for v in service.get("volumes", [])}
    assert _host_path(service, entrypoint[1]) == ROOT / "examples" / "model_server.py"
    args = _as_argv(service.get("command"))
    options = dict(zip(args[::2], args[1::2]))
    assert options == {"--traffic": "50", "--drift-after": "180", "--port": "8000"}, args
    assert (8000, int(options["--port"])) in _published(service)
    assert set(_driftline_env(compose, "model-server")) >= {"DRIFTLINE_BOOTSTRAP_SERVERS", "DRIFTLINE_INPUT_TOPICS"}


def test_model_server_example_accepts_the_compose_flags(compose):
    import subprocess
    import sys

    script = ROOT / "examples" / "model_server.py"
    if not script.is_file():
        pytest.skip("examples/model_server.py comes with the producer SDK; not on this branch yet")
    # argparse answers --help before it complains about anything else, and lists every flag.
    args = _as_argv(_service(compose, "model-server").get("command"))
    result = subprocess.run([sys.executable, str(script), *args, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in args[::2]:
        assert flag in result.stdout, f"examples/model_server.py --help does not list {flag}"


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())


def _container_port(compose: dict[str, Any], name: str) -> set[int]:
    return {target for _, target in _published(_service(compose, name))}


def test_prometheus_runs_the_repository_config(compose):
    service = _service(compose, "prometheus")
    config = _host_path(service, _flag(service, "--config.file"))
    assert config == PROMETHEUS_DIR / "prometheus.yml", config
    assert 9090 in _container_port(compose, "prometheus")


def test_prometheus_scrapes_exactly_the_workers(compose, prometheus_config):
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    assert "driftline" in jobs, "no scrape job named driftline (the rules select job=\"driftline\")"
    job = jobs["driftline"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {f"{name}:{_metrics_port(_service(compose, name))}" for name in WORKERS}
    assert targets == expected, f"driftline job scrapes {sorted(targets)}, the workers listen on {sorted(expected)}"


def test_prometheus_loads_the_rules_and_alerts_the_alertmanager(compose, prometheus_config):
    rule_files = [f for pattern in prometheus_config["rule_files"] for f in PROMETHEUS_DIR.glob(pattern)]
    assert PROMETHEUS_DIR / "rules" / "driftline.rules.yml" in rule_files, rule_files
    assert not [f for f in rule_files if f.parent.name == "tests"], "rule unit tests are loaded as rules"
    targets = {t for am in prometheus_config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]}
    ports = _container_port(compose, "alertmanager")
    assert targets == {f"alertmanager:{p}" for p in ports}, f"alertmanager targets {targets}, service listens on {ports}"


def test_alertmanager_runs_the_repository_config(compose):
    service = _service(compose, "alertmanager")
    config = _host_path(service, _flag(service, "--config.file"))
    assert config == ROOT / "deploy" / "alertmanager" / "alertmanager.yml", config
    assert 9093 in _container_port(compose, "alertmanager")


def _grafana_provisioning(compose: dict[str, Any], kind: str) -> list[tuple[Path, dict[str, Any]]]:
    service = _service(compose, "grafana")
    folder = _host_path(service, f"/etc/grafana/provisioning/{kind}")
    files = sorted(folder.glob("*.y*ml"))
    assert files, f"no Grafana {kind} provisioning files in {folder}"
    return [(f, yaml.safe_load(f.read_text())) for f in files]


def test_grafana_datasource_is_the_prometheus_service(compose):
    datasources = [ds for _, doc in _grafana_provisioning(compose, "datasources") for ds in doc["datasources"]]
    assert len(datasources) == 1, datasources
    ds = datasources[0]
    assert ds["type"] == "prometheus" and ds.get("isDefault") is True and ds.get("uid")
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/?", ds["url"])
    assert m, f"datasource url {ds['url']!r}"
    assert m.group(1) in compose["services"] and int(m.group(2)) in _container_port(compose, m.group(1))
    assert _service(compose, m.group(1))["image"].startswith("prom/prometheus:")


def _datasource_refs(node: Any):
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict):
            yield ref
        for value in node.values():
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def test_grafana_dashboard_uses_the_provisioned_datasource(compose):
    datasources = [ds for _, doc in _grafana_provisioning(compose, "datasources") for ds in doc["datasources"]]
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"}
    refs = list(_datasource_refs(dashboard))
    assert refs, "the dashboard names no datasource"
    for ref in refs:
        uid = ref.get("uid", "")
        m = re.fullmatch(r"\$\{?(\w+)\}?", uid)
        if m:  # a datasource variable: it offers the datasources of its type, the default first
            assert m.group(1) in variables, f"datasource variable {uid!r} is not defined"
            assert variables[m.group(1)]["query"] in {ds["type"] for ds in datasources if ds.get("isDefault")}
        else:
            assert uid in {ds["uid"] for ds in datasources}, f"the dashboard uses datasource uid {uid!r}, not provisioned"
        assert ref.get("type", "prometheus") == "prometheus"


def test_grafana_dashboard_provider_loads_the_dashboard(compose):
    service = _service(compose, "grafana")
    providers = [p for _, doc in _grafana_provisioning(compose, "dashboards") for p in doc["providers"]]
    assert len(providers) == 1 and providers[0]["type"] == "file", providers
    folder = providers[0]["options"]["path"].rstrip("/")
    # what the container sees there: files mounted into the folder, or the files of a mounted folder
    visible = [host for host, target, _ in _bind_mounts(service) if target.startswith(folder + "/")]
    if any(folder == t.rstrip("/") or folder.startswith(t.rstrip("/") + "/") for _, t, _ in _bind_mounts(service)):
        visible += list(_host_path(service, folder).glob("*.json"))
    assert DASHBOARD in visible, f"provider path {folder} does not hold {DASHBOARD.name} ({visible})"
    home = _env(service).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home and _host_path(service, home) == DASHBOARD
    assert 3000 in _container_port(compose, "grafana")
