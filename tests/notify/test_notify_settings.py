"""Settings of driftline notify: flags over DRIFTLINE_NOTIFY_* variables, secret URLs, clear errors."""

import pytest

from driftline.cli.main import main
from driftline.errors import ConfigError
from driftline.notify.settings import load_notify_settings
from driftline.transport.webhooks import endpoints_from

SECRET = "https://hooks.slack.example/services/T000/B000/s3cr3tt0k3n"


def test_environment_lists_and_flags_override_it(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_NOTIFY_WEBHOOKS", "http://a.example/x, http://b.example/y")
    monkeypatch.setenv("DRIFTLINE_NOTIFY_SLACK_WEBHOOKS", SECRET)
    monkeypatch.setenv("DRIFTLINE_NOTIFY_COOLDOWN_SECONDS", "60")
    s = load_notify_settings()
    assert [e.name for e in endpoints_from(s)] == ["webhook#1", "webhook#2", "slack#1"]
    assert [e.kind for e in endpoints_from(s)] == ["webhook", "webhook", "slack"]
    assert s.cooldown_seconds == 60.0 and s.group == "driftline-notify"
    s = load_notify_settings(webhooks=["http://c.example/z"], cooldown_seconds=5.0, max_retries=None)
    assert [u.get_secret_value() for u in s.webhooks] == ["http://c.example/z"] and s.cooldown_seconds == 5.0
    assert s.max_retries == 5


def test_urls_never_appear_in_reprs_or_errors():
    s = load_notify_settings(slack_webhooks=[SECRET])
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(endpoints_from(s))
    with pytest.raises(ConfigError) as err:
        load_notify_settings(webhooks=["ftp://user:s3cr3t@host/x"])
    assert "s3cr3t" not in str(err.value)
    assert "DRIFTLINE_NOTIFY_WEBHOOKS" in str(err.value) and "--webhook" in str(err.value)


@pytest.mark.parametrize("overrides, names", [
    ({}, "--webhook"),
    ({"webhooks": ["http://a.example"], "cooldown_seconds": -1}, "--cooldown"),
    ({"webhooks": ["http://a.example"], "max_retries": -2}, "--max-retries"),
    ({"webhooks": ["http://a.example"], "timeout_seconds": 0}, "DRIFTLINE_NOTIFY_TIMEOUT_SECONDS"),
    ({"webhooks": ["http://a.example"], "backoff_seconds": 60, "max_backoff_seconds": 30}, "--max-backoff"),
    ({"webhooks": ["https://"]}, "no host"),
])
def test_bad_settings_name_the_setting(overrides, names):
    with pytest.raises(ConfigError, match=names):
        load_notify_settings(**overrides)


def test_cli_reports_a_missing_endpoint_as_a_configuration_error(capsys, monkeypatch):
    monkeypatch.delenv("DRIFTLINE_NOTIFY_WEBHOOKS", raising=False)
    monkeypatch.delenv("DRIFTLINE_NOTIFY_SLACK_WEBHOOKS", raising=False)
    assert main(["notify", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert "--slack-webhook" in capsys.readouterr().err
