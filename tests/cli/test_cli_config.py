import subprocess
import sys

import pytest

from driftline.cli.main import main
from driftline.config import load_settings
from driftline.errors import ConfigError


def run_cli(*args, env=None):
    import os
    e = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "driftline.cli.main", *args], capture_output=True, text=True, env=e, timeout=60)


def test_bad_flag_value_stops_startup_naming_the_setting():
    r = run_cli("run", "--warmup", "-3")
    assert r.returncode == 2
    assert "warmup" in r.stderr and "DRIFTLINE_WARMUP" in r.stderr


def test_bad_env_value_names_the_env_var():
    r = run_cli("run", env={"DRIFTLINE_METRICS_PORT": "http"})
    assert r.returncode == 2 and "DRIFTLINE_METRICS_PORT" in r.stderr


def test_unknown_kafka_property_is_a_config_error(tmp_path):
    r = run_cli("run", "-X", "no.such.property=1", "--broker-timeout-seconds", "1")
    assert r.returncode == 2 and "no.such.property" in r.stderr


def test_missing_config_file_is_named():
    r = run_cli("run", "--config", "/nonexistent/driftline.toml")
    assert r.returncode == 2 and "/nonexistent/driftline.toml" in r.stderr


def test_precedence_flags_over_env_over_toml(tmp_path, monkeypatch):
    toml = tmp_path / "d.toml"
    toml.write_text('warmup = 300\nwindow_events = 700\ngroup_id = "from-toml"\n[kafka]\n"security.protocol" = "SSL"\n')
    monkeypatch.setenv("DRIFTLINE_WINDOW_EVENTS", "800")
    monkeypatch.setenv("DRIFTLINE_INPUT_TOPICS", "a,b")
    s = load_settings(config_file=toml, group_id="from-flag")
    assert (s.warmup, s.window_events, s.group_id, s.input_topics) == (300, 800, "from-flag", ["a", "b"])
    assert s.kafka_properties()["security.protocol"] == "SSL"


def test_secrets_do_not_leak_into_repr(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_SASL_PASSWORD", "hunter2")
    s = load_settings()
    assert "hunter2" not in repr(s) and s.kafka_properties()["sasl.password"] == "hunter2"


def test_output_topic_clash_is_rejected():
    with pytest.raises(ConfigError, match="input_topics"):
        load_settings(input_topics="driftline.alerts")


def test_schema_command_prints_the_contract(capsys):
    assert main(["schema"]) == 0
    assert '"model"' in capsys.readouterr().out


def test_kafka_properties_follow_source_priority(tmp_path, monkeypatch):
    toml = tmp_path / "d.toml"
    toml.write_text('[kafka]\n"security.protocol" = "SSL"\n"client.rack" = "toml"\nsasl_mechanism = "PLAIN"\n')
    monkeypatch.setenv("DRIFTLINE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DRIFTLINE_KAFKA__CLIENT_RACK", "env")
    s = load_settings(config_file=toml, kafka={"security.protocol": "SASL_PLAINTEXT"})
    props = s.kafka_properties()
    assert props["security.protocol"] == "SASL_PLAINTEXT"  # flag beats env and TOML
    assert props["client.rack"] == "env"  # env beats TOML
    assert props["sasl.mechanism"] == "PLAIN"  # TOML underscores become dots too


def test_mappings_have_no_flag():
    from driftline.cli.main import build_parser

    text = build_parser().parse_args(["run"]) and build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--models" not in text and "--kafka " not in text and "--labels-topic" in text
