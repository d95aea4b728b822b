"""Configuration errors: one line per bad setting, naming it, its origin and only the ways it can be set.

Unit tests of driftline.config_errors through load_settings and the CLI's main (in process);
tests/cli/test_secrets.py runs the real command.
"""

from __future__ import annotations

import pytest

from driftline.cli.main import main
from driftline.config import load_settings
from driftline.errors import ConfigError
from driftline.redact import forget_secrets
from driftline.transport import kafka

SECRET = "c4n4ry-s3cr3t-v4lue"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.upper().startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    # the messages must leave secrets out by themselves, not thanks to the last-line-of-defence scrubbing
    monkeypatch.setattr("driftline.config.register_secrets", lambda values: None)
    forget_secrets()


def _error(**kw) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(**kw)
    return str(err.value)


def _toml(tmp_path, text: str):
    path = tmp_path / "d.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ names and ways
def test_a_toml_typo_is_unknown_with_the_near_miss_and_its_real_spellings(tmp_path):
    path = _toml(tmp_path, "warmpu = 300\n")
    text = _error(config_file=path)
    assert text.startswith("unknown setting warmpu") and str(path) in text
    assert "did you mean warmup (flag --warmup, env DRIFTLINE_WARMUP or TOML key warmup)?" in text
    assert "DRIFTLINE_WARMPU" not in text and "--warmpu" not in text and "300" not in text


def test_a_misspelt_secret_is_not_printed(tmp_path):
    text = _error(config_file=_toml(tmp_path, f'sasl_pasword = "{SECRET}"\n'))
    assert "did you mean sasl_password" in text and SECRET not in text


def test_a_librdkafka_property_at_top_level_points_to_the_kafka_table(tmp_path):
    text = _error(config_file=_toml(tmp_path, '"security.protocol" = "SSL"\n'))
    assert "[kafka]" in text and "unknown setting security.protocol" in text


def test_a_bad_model_rule_names_its_toml_key_and_a_working_env_spelling(tmp_path):
    text = _error(config_file=_toml(tmp_path, "[models.fraud]\nvalid_range = 3\n"))
    assert text.startswith("invalid setting [models.fraud] valid_range:")
    assert "TOML key valid_range in [models.fraud] or env DRIFTLINE_MODELS__FRAUD__VALID_RANGE" in text
    assert "--models" not in text and "flag" not in text


@pytest.mark.parametrize("model", ["Fraud", "a.b", "x__y", "z_"])
def test_model_names_the_environment_cannot_spell_get_only_their_toml_key(tmp_path, model):
    text = _error(config_file=_toml(tmp_path, f'[models."{model}"]\ntask = "nope"\n'))
    assert "TOML key task in [models." in text and "DRIFTLINE_MODELS" not in text


def test_an_unknown_model_rule_gets_the_near_miss(tmp_path):
    text = _error(config_file=_toml(tmp_path, "[models.fraud]\nvalid_rang = [0, 1]\n"))
    assert text.startswith("unknown rule valid_rang in [models.fraud]") and "did you mean valid_range" in text


def test_a_model_rule_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_MODELS__FRAUD__TASK", "bogus")
    text = _error()
    assert "got 'bogus' from env DRIFTLINE_MODELS__FRAUD__TASK" in text and "--models" not in text


def test_toml_syntax_errors_name_the_file_line_and_column_and_quote_nothing(tmp_path):
    path = _toml(tmp_path, f'warmup = 500\nsasl_password = {SECRET}\n')
    text = _error(config_file=path)
    assert text == f"config file {path}, line 2, column 17: invalid TOML: Invalid value (--config)"
    path = _toml(tmp_path, f'sasl_password = "{SECRET}\n')
    text = _error(config_file=path)
    assert f"config file {path}, line 1" in text and SECRET not in text


def test_unreadable_config_files_are_named(tmp_path, monkeypatch):
    (tmp_path / "bin.toml").write_bytes(b"warmup = 1\n\xff\n")
    assert "bin.toml, line 2, column 1: not UTF-8" in _error(config_file=tmp_path / "bin.toml")
    monkeypatch.setenv("DRIFTLINE_CONFIG", str(tmp_path / "nope.toml"))
    assert _error() == f"config file {tmp_path / 'nope.toml'} (env DRIFTLINE_CONFIG) does not exist"


# ------------------------------------------------------------------ ranges
def test_32_bit_limits_are_checked_before_librdkafka_wraps_them():
    text = _error(transaction_timeout_ms="2147483648")
    assert text.startswith("invalid setting transaction_timeout_ms: Input should be less than or equal to 2147483647")
    assert "-2147483648" not in text
    assert "must be a 32-bit integer" in _error(warmup=2 ** 40)
    assert "must be a 32-bit integer" in _error(max_models=10 ** 400)


@pytest.mark.parametrize("overrides, setting", [
    ({"session_timeout_ms": 99_999_999}, "session_timeout_ms"),
    ({"heartbeat_interval_ms": 0}, "heartbeat_interval_ms"),
    ({"session_timeout_ms": 400_000}, "session_timeout_ms"),  # above librdkafka's default max.poll.interval.ms
    ({"broker_timeout_seconds": 3601}, "broker_timeout_seconds"),
    ({"topic_partitions": 100_001}, "topic_partitions"),
    ({"topic_replication_factor": 0}, "topic_replication_factor"),
    ({"window_seconds": "inf"}, "window_seconds"),
    ({"false_alarm_rate": "nan"}, "false_alarm_rate"),
])
def test_settings_librdkafka_or_kafka_would_refuse_are_refused_here(overrides, setting):
    assert _error(**overrides).startswith(f"invalid setting {setting}")


def test_a_session_timeout_above_a_raised_poll_interval_is_fine_and_above_a_lowered_one_is_not():
    assert load_settings(session_timeout_ms=400_000, kafka={"max.poll.interval.ms": "600000"}).session_timeout_ms == 400_000
    text = _error(session_timeout_ms=60_000, kafka={"max.poll.interval.ms": "30000"}, overrides_from="flags")
    assert "max.poll.interval.ms from -X max.poll.interval.ms" in text


def test_kafka_properties_driftline_owns_name_the_setting_to_use():
    text = _error(kafka={"session.timeout.ms": "99999999"}, overrides_from="flags")
    assert text.startswith("invalid kafka property: property 'session.timeout.ms' is managed by driftline; "
                           "use the setting session_timeout_ms (flag --session-timeout-ms")
    assert "from -X session.timeout.ms" in text


def test_librdkafka_range_errors_name_the_property_and_where_it_came_from(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_KAFKA__SOCKET_TIMEOUT_MS", "1")
    with pytest.raises(ConfigError) as err:
        kafka.make_admin(load_settings(bootstrap_servers="127.0.0.1:1"))
    text = str(err.value)
    assert text.startswith("invalid kafka property socket.timeout.ms for the admin client: ")
    assert "outside allowed range 10..300000" in text and "from env DRIFTLINE_KAFKA__SOCKET_TIMEOUT_MS" in text
    assert "\n" not in text


def test_a_property_made_from_a_setting_is_blamed_on_the_setting():
    # what librdkafka says when a setting's value is out of its range (driftline refuses it earlier)
    settings = load_settings(session_timeout_ms=6000, heartbeat_interval_ms=500, overrides_from="flags")
    text = kafka.config_problem('Configuration property "session.timeout.ms" value 6000 is outside allowed range',
                                {"session.timeout.ms": 6000}, "consumer", settings)
    assert "session.timeout.ms comes from the setting session_timeout_ms (flag --session-timeout-ms;" in text


def test_librdkafka_never_shows_a_secret_property_value():
    settings = load_settings(kafka={"sasl.password": SECRET})
    text = kafka.config_problem(f'Invalid value "{SECRET}" for configuration property "sasl.password"',
                                settings.kafka_properties(), "producer", settings)
    assert SECRET not in text and "sasl.password" in text


# ------------------------------------------------------------------ what is never printed
def test_cross_field_errors_never_print_the_raw_input(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_SASL_PASSWORD", SECRET)
    path = _toml(tmp_path, f'state_secret = "{SECRET}"\n[kafka]\n"ssl.keystore.password" = "{SECRET}"\n')
    for kw in ({"heartbeat_interval_ms": 100_000}, {"input_topics": "driftline.alerts"},
               {"alerts_topic": "driftline.metrics"}, {"window_events": 0, "window_seconds": 0}):
        text = _error(config_file=path, ssl_key_password=SECRET, **kw)
        assert SECRET not in text and "{" not in text and len(text.splitlines()) == 1


def test_a_secret_of_the_wrong_type_is_not_printed(tmp_path):
    text = _error(config_file=_toml(tmp_path, 'state_secret = 12345678\n'))
    assert "invalid setting state_secret: Input should be a valid string (value hidden, from TOML key" in text
    assert "12345678" not in text


def test_values_are_shown_bounded_and_escaped():
    text = _error(auto_offset_reset="x\n\x1b[2J" * 1000)
    assert "\n" not in text and "\x1b" not in text and "\\n\\x1b[2J" in text
    assert len(text) < 800 and "(10002 characters)" in text


def test_settings_and_their_repr_hide_every_secret():
    s = load_settings(sasl_password=SECRET, state_secret=SECRET, kafka={
        "sasl.oauthbearer.client.secret": SECRET, "ssl.key.pem": SECRET, "ssl.keystore.password": SECRET,
        "sasl.jaas.config": SECRET, "client.rack": "r1"})
    assert SECRET not in repr(s) and SECRET not in str(s) and "'client.rack': 'r1'" in repr(s)
    assert s.kafka_properties()["sasl.password"] == SECRET  # librdkafka still gets it


# ------------------------------------------------------------------ the command line
def test_a_configuration_error_exits_2_with_one_line_per_problem(capsys):
    assert main(["run", "--warmup", "-3", "--batch-size", "0", "--sasl-password", SECRET]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("driftline: configuration error: invalid setting ") for line in lines)
    assert "got '-3' from flag --warmup" in err and SECRET not in err and "Traceback" not in err


def test_a_misspelt_flag_is_named_without_its_value(capsys):
    assert main(["status", "--sasl-pasword", SECRET]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "--sasl-pasword (did you mean --sasl-password?)" in err and SECRET not in err


def test_an_x_argument_without_a_value_is_not_echoed(capsys):
    assert main(["topics", "create", "-X", SECRET]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err and "-X argument number 1 is not PROPERTY=VALUE" in err


@pytest.mark.parametrize("argv", [["status", "--timeout", "1e12"], ["topics", "create", "--partitions", "0"],
                                  ["replay", "x.jsonl", "--partition", "99999999999"], ["status", "--since", "nan"]])
def test_command_flags_are_range_checked(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error: argument --" in err
