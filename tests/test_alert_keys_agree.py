"""Every reader of the alerts topic derives an alert's key as the worker writes it.

The worker keys alert records with ``detection.published.alert_key``; the peers'
alert feed (shared cooldowns of hot models), notify (its cooldown gate and
``X-Driftline-Alert-Key``) and ``driftline status`` (active alerts) must agree
with it for every name, or a name with ``/`` would lose its cooldown.
"""

from __future__ import annotations

import orjson
import pytest

from driftline.detection.published import alert_key, alert_record
from driftline.notify.messages import alert_key as notify_key
from driftline.observability.status import alert_key as status_key
from driftline.transport.alert_feed import _firing

NAMES = [("fraud", "v3", "amount"), ("col/a", "v", "x"), ("col", "a/v", "x"), ("m%2F", "v..1", "prediction.score"),
         ("m\n", "\x1b", "\u2028"), ("m", "v", "performance")]


@pytest.mark.parametrize("model, version, feature", NAMES)
def test_alert_feed_notify_and_status_read_the_key_the_worker_writes(model, version, feature):
    alert = {"model": model, "model_version": version, "feature": feature, "source": "features", "kind": "data_drift",
             "detector": "psi",
             "status": "firing", "event_time": "2026-12-01T10:00:00Z"}
    key, value = alert_record(alert)
    expected = key.decode("utf-8")
    assert notify_key(alert) == status_key(alert) == alert_key(alert) == expected
    firing = _firing(value)
    assert firing is not None and firing.key == expected


def test_distinct_names_give_distinct_keys():
    keys = {alert_key({"model": m, "model_version": v, "feature": f, "source": "features", "detector": "psi"})
            for m, v, f in NAMES}
    assert len(keys) == len(NAMES)
    both = {alert_key({"model": "m", "model_version": "v", "feature": "prediction.score", "source": s, "detector": "psi"})
            for s in ("features", "prediction")}
    assert len(both) == 2
    assert orjson.loads(alert_record({"model": "m\ud800", "model_version": "v", "feature": "x", "detector": "d"})[1])
