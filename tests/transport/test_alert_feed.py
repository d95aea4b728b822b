"""What the alert feed takes from the alerts topic: firings in the shape a worker writes, nothing else."""

from __future__ import annotations

import orjson
import pytest

from driftline.transport.alert_feed import _firing

GOOD = {"status": "firing", "model": "m", "model_version": "v", "feature": "x", "source": "features",
        "kind": "data_drift", "detector": "psi", "event_time": "2026-01-01T00:00:00.000Z"}


def test_a_worker_s_firing_is_taken():
    assert _firing(orjson.dumps(GOOD)) == ("m/v/x/data_drift", 1_767_225_600_000.0)


@pytest.mark.parametrize("change", [
    {"event_time": "9999-12-31T23:59:59-23:59"},   # after the last event time
    {"event_time": "0001-01-01T00:00:00+14:00"},   # before 1970
    {"event_time": "2026-01-01T00:00:00"},         # no offset: local time of whoever reads it
    {"event_time": "2026-01-01"},
    {"event_time": 1_767_225_600_000},
    {"event_time": "2" * 100_000},
    {"kind": None}, {"model": ["m"]}, {"model": None}, {"model": 10**18}, {"feature": {"a": 1}}, {"detector": 1},
    {"model_version": True}, {"status": ["firing"]},
])
def test_a_forged_firing_is_ignored(change):
    assert _firing(orjson.dumps({**GOOD, **change})) is None


@pytest.mark.parametrize("value", [None, b"", b"[]", b"null", b'"firing"', b"\xff\xfe", b"[" * 5_000, b"{" * 5_000])
def test_anything_else_is_ignored(value):
    assert _firing(value) is None
