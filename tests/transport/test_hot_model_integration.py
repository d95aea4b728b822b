"""A hot model over two partitions owned by two workers: the second worker learns of the
first one's firing from the alerts topic and does not fire again (real broker)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def _events(n: int, drift_at: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [orjson.dumps({"model": "hot", "model_version": "v1", "timestamp": T0 + i * 50,
                          "features": {"x": float(rng.normal(1.5 if i >= drift_at else 0.0, 1))}}) for i in range(n)]


def test_one_firing_alert_per_key_for_a_model_spread_over_two_workers(kenv):
    from confluent_kafka import Producer

    one = kenv.start_worker(labels_topic="")
    two = kenv.start_worker(labels_topic="")
    wait_for(lambda: len(one._assigned) == 1 and len(two._assigned) == 1, 60, "one partition each")
    producer = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers, "linger.ms": 5})

    def send(partition: int, values: list[bytes]) -> None:
        for v in values:
            producer.produce(kenv.input, key=b"hot", value=v, partition=partition)
        assert producer.flush(30) == 0

    drift_at = 2_000
    send(0, _events(4_000, drift_at, seed=1))
    alerts = wait_for(lambda: [m for m in kenv.read_all(kenv.alerts, 1, timeout=5)], 60, "the first worker's alerts")
    first = {orjson.loads(m.value())["alert_id"] for m in alerts}
    assert first
    owner = one if (kenv.input, 1) in one._assigned else two
    # the other worker has read the firing from the alerts topic (its alert feed), not merely had time to
    wait_for(lambda: owner.pipeline.alerts._remote, 30, "the other worker holding the first one's firing")
    # the same drift, slightly later in event time, on the partition of the other worker
    send(1, _events(4_000, drift_at + 100, seed=2))
    wait_for(lambda: owner.metrics.registry.get_sample_value("driftline_records_total", {"topic": kenv.input}) == 4_000,
             60, "the second partition processed")
    # every alert either worker published (counted with the batch that made it), not merely those that
    # showed up within a few seconds
    published = lambda: sum(s.value for w in (one, two) for f in w.metrics.registry.collect()  # noqa: E731
                            for s in f.samples if s.name == "driftline_alerts_total")
    records = [orjson.loads(m.value()) for m in kenv.read_all(kenv.alerts, int(published()), timeout=20)]
    assert len(records) == published()
    firing: dict[str, int] = {}
    for a in records:
        if a["status"] == "firing":
            key = f"{a['feature']}/{a['kind']}"
            firing[key] = firing.get(key, 0) + 1
    assert firing.get("x/data_drift") == 1, firing
    assert all(n == 1 for n in firing.values()), firing
    assert {a["window"]["partition"] for a in records} == {0}, "the second worker published no alert of its own"
