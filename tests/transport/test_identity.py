"""Worker identity: the default transactional id is unique per live process and stable across restarts."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from driftline.config import load_settings
from driftline.errors import ConfigError
from driftline.transport import identity
from driftline.transport.identity import SlotLock, default_transactional_id
from driftline.transport.worker import Worker, listen_error


def test_the_id_follows_the_bound_port_and_address():
    assert default_transactional_id("g", port=9188, hostname="h") == "driftline-g-h-9188"
    assert default_transactional_id("g", port=9188, host="::", hostname="h") == "driftline-g-h-9188"
    assert default_transactional_id("g", port=9188, host="127.0.0.1", hostname="h") == "driftline-g-h-127.0.0.1-9188"
    assert default_transactional_id("g", slot=3, hostname="h") == "driftline-g-h-slot3"


def test_slots_are_unique_while_held_and_the_lowest_comes_back(tmp_path):
    a, b = SlotLock("g", tmp_path), SlotLock("g", tmp_path)
    other = SlotLock("another group", tmp_path)
    assert (a.slot, b.slot, other.slot) == (0, 1, 0)
    a.close()
    with SlotLock("g", tmp_path) as c:
        assert c.slot == 0  # a restart in the same place gets the same id back
    b.close()
    other.close()


def test_a_slot_is_released_when_its_process_dies(tmp_path):
    # the module alone (stdlib only), without importing the package: a fast child process
    code = ("import importlib.util, pathlib, sys; spec = importlib.util.spec_from_file_location('identity', "
            f"{identity.__file__!r}); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            f"lock = m.SlotLock('g', pathlib.Path({str(tmp_path)!r})); print(lock.slot, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-S", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"
        with SlotLock("g", tmp_path) as held:
            assert held.slot == 1  # the other process holds slot 0
    finally:
        proc.kill()
        proc.wait(10)
    with SlotLock("g", tmp_path) as free:
        assert free.slot == 0


def test_a_taken_port_names_metrics_port_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = Worker(load_settings(metrics_port=port, metrics_host="127.0.0.1", bootstrap_servers="127.0.0.1:1"))
        with pytest.raises(ConfigError) as info:
            worker.run(install_signal_handlers=False)
    text = str(info.value)
    assert "\n" not in text and "metrics_port" in text and "DRIFTLINE_METRICS_PORT" in text and "--metrics-port" in text
    assert f"port {port}" in text and "taken" in text


def test_an_unresolvable_host_names_metrics_host():
    worker = Worker(load_settings(metrics_port=9, metrics_host="no-such-host.invalid", bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(ConfigError) as info:
        worker.run(install_signal_handlers=False)
    text = str(info.value)
    assert "\n" not in text and "metrics_host" in text and "DRIFTLINE_METRICS_HOST" in text
    assert "'no-such-host.invalid'" in text


def test_listen_error_escapes_the_host():
    text = listen_error("evil\nhost", 80, OSError(13, "Permission denied"))
    assert "\n" not in text and "metrics_port" in text and "below 1024" in text


def test_a_bad_consumer_property_is_reported_not_an_attribute_error():
    """session_timeout_ms=99999999 used to end in AttributeError: 'Worker' object has no attribute '_producer'."""
    with pytest.raises(ConfigError):
        settings = load_settings(session_timeout_ms=99_999_999, heartbeat_interval_ms=3000, metrics_port=0,
                                 bootstrap_servers="127.0.0.1:1")
        Worker(settings).run(install_signal_handlers=False)
