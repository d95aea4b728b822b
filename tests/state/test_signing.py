"""Signing must not look like protection when it is not: an empty state_secret is refused, and a
worker without a secret says at start that its checkpoints are not signed."""

from __future__ import annotations

import logging

import pytest

from driftline.config import load_settings
from driftline.errors import ConfigError
from driftline.transport.checkpoints import CheckpointStore


@pytest.mark.parametrize("secret", ["", "   ", "\t\n"])
def test_an_empty_state_secret_is_a_configuration_error_naming_the_setting(secret, monkeypatch):
    with pytest.raises(ConfigError, match=r"invalid setting state_secret: is empty.*value hidden.*flag --state-secret, env DRIFTLINE_STATE_SECRET"):
        load_settings(bootstrap_servers="x:1", state_secret=secret)
    monkeypatch.setenv("DRIFTLINE_STATE_SECRET", secret)
    with pytest.raises(ConfigError, match="state_secret"):
        load_settings(bootstrap_servers="x:1")


def test_without_a_secret_the_store_warns_once_that_anyone_who_can_write_the_topic_can_change_the_state(caplog):
    with caplog.at_level(logging.WARNING, logger="driftline.checkpoints"):
        CheckpointStore(load_settings(bootstrap_servers="x:1", state_topic="st"), 1)
    assert [r.getMessage() for r in caplog.records] == [
        "checkpoints are not signed: anyone who can write st can change this worker's state; set state_secret"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="driftline.checkpoints"):
        CheckpointStore(load_settings(bootstrap_servers="x:1", state_topic="st", state_secret="k"), 1)
    assert not caplog.records
