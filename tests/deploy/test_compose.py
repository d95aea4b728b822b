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


# --- driftline service --------------------------------------------------------


def _driftline_env(compose: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in _env(_service(compose, "driftline")).items() if k.startswith(ENV_PREFIX)}


def test_driftline_env_names_real_settings(compose):
    env = _driftline_env(compose)
    assert env, "driftline service sets no DRIFTLINE_* variables"
    fields = Settings.model_fields
    for key in env:
        name = key[len(ENV_PREFIX):].lower()
        top = name.split("__", 1)[0]  # DRIFTLINE_KAFKA__SECURITY_PROTOCOL -> kafka
        assert name == "config" or top in fields, f"{key} is not a driftline setting"
        if "__" in name:
            assert top == "kafka", f"{key}: only the kafka setting takes nested keys"


def test_driftline_env_values_are_valid_settings(compose, monkeypatch):
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    env = _driftline_env(compose)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()  # raises ConfigError naming a bad value
    if "DRIFTLINE_METRICS_PORT" in env:
        assert settings.metrics_port == int(env["DRIFTLINE_METRICS_PORT"])


def test_driftline_bootstrap_is_a_kafka_plaintext_listener(compose):
    bootstrap = _env(_service(compose, "driftline")).get("DRIFTLINE_BOOTSTRAP_SERVERS")
    assert bootstrap, "driftline service does not set DRIFTLINE_BOOTSTRAP_SERVERS"
    endpoints = _kafka_client_endpoints(compose)
    assert endpoints, "kafka exposes no PLAINTEXT client listener advertised under its service name"
    for host_port in _host_ports(bootstrap):
        assert host_port in endpoints, f"{host_port} is not a PLAINTEXT listener of kafka ({sorted(endpoints)})"


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


def test_driftline_publishes_its_metrics_port(compose):
    service = _service(compose, "driftline")
    port = int(_env(service).get("DRIFTLINE_METRICS_PORT", _default("metrics_port")))
    published = _published(service)
    assert (port, port) in published, f"metrics port {port} is not published as {port}:{port} ({published})"
    health = " ".join(_as_argv(service.get("healthcheck", {}).get("test")))
    assert f":{port}/healthz" in health, f"driftline healthcheck does not probe :{port}/healthz: {health!r}"
    assert "urllib" in health, "the slim image has no curl/wget; the healthcheck must use Python"


def test_driftline_build_points_to_an_existing_dockerfile(compose):
    build = _service(compose, "driftline").get("build")
    assert build, "driftline service has no build"
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert context.is_dir(), f"build context {context} does not exist"
    assert dockerfile.is_file(), f"build dockerfile {dockerfile} does not exist"
    assert dockerfile.resolve() == DOCKERFILE.resolve(), f"driftline is built from {dockerfile}, not deploy/Dockerfile"


def test_driftline_waits_for_topics(compose):
    deps = _service(compose, "driftline").get("depends_on", {})
    assert deps.get("topics", {}).get("condition") == "service_completed_successfully"


def test_driftline_container_runs_driftline_run(compose):
    """Compose entrypoint/command combined with the image's ENTRYPOINT/CMD give ``driftline run``."""
    service = _service(compose, "driftline")
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
