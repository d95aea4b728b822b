"""``driftline reference accept`` over the embedded broker: summaries and a firing alert on the topics, the
accepted profile published on the references topic and put in force by a running worker."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from conftest import wait_for
from driftline.cli.main import main
from driftline.contract.columns import LocatedEvent
from driftline.contract.event import InferenceEvent
from driftline.detection.monitor import ModelMonitor
from driftline.detection.published import alert_key
from driftline.detection.settings import MonitorSettings
from driftline.detection.timefmt import rfc3339
from driftline.reference.builder import ProfileBuilder
from driftline.transport.references import profile_in_force, publish_profiles

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def _events(n, seed, *, shift, start=0):
    rng = np.random.default_rng(seed)
    amount, channel = rng.normal(size=n) + shift, rng.choice(["web", "app"], n, p=[0.3, 0.7] if shift else [0.7, 0.3])
    return [LocatedEvent(start + i, InferenceEvent("fraud", "v3", None, T0 + (start + i) * 100,
                                                   {"amount": float(amount[i]), "channel": str(channel[i])},
                                                   {"prediction": 0.5})) for i in range(n)]


def _summaries(events):
    """The window summaries a worker would publish for these events (1,000-event windows)."""
    settings = MonitorSettings.calibrated(false_alarm_rate=2e-7, warmup=500, window_events=1000, window_seconds=None)
    monitor = ModelMonitor(topic="in", partition=0, model="fraud", model_version="v3", settings=settings)
    return monitor.process(events).summaries


def _flags(kenv):
    return ["--bootstrap-servers", kenv.broker.bootstrap_servers, "--alerts-topic", kenv.alerts,
            "--metrics-topic", kenv.metrics_topic, "--references-topic", kenv.references, "--group-id", kenv.group,
            "--topic-replication-factor", "1", "--broker-timeout-seconds", "10", "--timeout", "20"]


def test_accept_publishes_the_new_normal_and_a_worker_puts_it_in_force(kenv, capsys):
    # the profile in force: the old normal (amount ~ N(0, 1), channel 70 % web), with an output the stream keeps
    builder = ProfileBuilder()
    builder.add(e.event for e in _events(5000, 1, shift=0.0))
    (old,) = builder.result()
    settings = kenv.settings()
    publish_profiles(settings, [old])
    worker = kenv.start_worker()
    wait_for(lambda: ("fraud", "v3") in worker.pipeline.references, 30, "old profile in force")

    # 12,000 events: the old normal for 4,000, then amount +2 sd and the channel mix flipped (the new normal)
    events = _events(4000, 2, shift=0.0) + _events(8000, 3, shift=2.0, start=4000)
    summaries = _summaries(events)
    opened_ms = T0 + 4100 * 100  # the drift found 100 events in (the window of events 4000-4999 is left out)
    firing = {"schema_version": 2, "alert_id": "a" * 32, "status": "firing", "model": "fraud", "model_version": "v3",
              "feature": "amount", "source": "features", "kind": "data_drift", "detector": "page_hinkley",
              "incident_id": "b" * 32, "opened_event_time": rfc3339(opened_ms), "event_time": rfc3339(opened_ms)}
    resolved_elsewhere = {**firing, "alert_id": "c" * 32, "feature": "channel", "status": "resolved"}
    kenv.produce([(b"fraud/v3/amount", orjson.dumps(s)) for s in summaries], topic=kenv.metrics_topic)
    kenv.produce([(alert_key(firing).encode(), orjson.dumps(firing)),
                  (alert_key(resolved_elsewhere).encode(), orjson.dumps({**resolved_elsewhere, "status": "firing",
                                                                        "alert_id": "d" * 32})),
                  (alert_key(resolved_elsewhere).encode(), orjson.dumps(resolved_elsewhere))], topic=kenv.alerts)

    # a dry run publishes nothing
    assert main(["reference", "accept", "--model", "fraud", "--model-version", "v3", "--dry-run", "--json", *_flags(kenv)]) == 0
    dry = orjson.loads(capsys.readouterr().out)
    assert dry["published"] is False and dry["previous"] == old.name
    assert profile_in_force(settings, "fraud", "v3", timeout=10)[0].id == old.id

    assert main(["reference", "accept", "--model", "fraud", "--model-version", "v3", "--json", *_flags(kenv)]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["id"] == dry["id"]  # the same windows: the same profile
    assert report["since"] == rfc3339(opened_ms) and report["since_from"] == "open incidents"
    assert [i["alert_key"] for i in report["incidents"]] == [alert_key(firing)]
    assert report["windows"] == 7 and report["events"] == 7000  # windows 5,000-11,999
    assert {(f["name"], f["windows"], f["values"]) for f in report["features"]} == {
        ("amount", 7, 7000), ("channel", 7, 7000), ("prediction", 7, 7000)}
    assert report["kept"] == []

    profile, complete = profile_in_force(settings, "fraud", "v3", timeout=10)
    assert complete and profile is not None and profile.name == report["profile"] != old.name
    amount = profile.features[("features", "amount")]
    new = np.array([e.event.features["amount"] for e in events[5000:]])
    assert amount.count == 7000 and amount.moments.mean == pytest.approx(new.mean())
    assert abs(amount.sketch.get_quantile(0.5) - np.median(new)) < 0.05
    channel = profile.features[("features", "channel")].categories
    assert sum(channel.values()) == 7000 and channel["app"] > channel["web"]

    # the running worker puts it in force
    wait_for(lambda: worker.pipeline.references[("fraud", "v3")].id == profile.id, 30, "accepted profile in force")
    assert worker.metrics.registry.get_sample_value(
        "driftline_reference_info", {"model": "fraud", "model_version": "v3", "reference": profile.name}) == 1.0

    # and once the incident is resolved, nothing is open: --since is required, and unknown versions are named
    kenv.produce([(alert_key(firing).encode(), orjson.dumps({**firing, "alert_id": "e" * 32, "status": "resolved",
                                                             "resolution": "reference_changed"}))], topic=kenv.alerts)
    assert main(["reference", "accept", "--model", "fraud", "--model-version", "v3", "--dry-run", *_flags(kenv)]) == 1
    assert "no open incident of fraud/v3" in capsys.readouterr().err
    assert main(["reference", "accept", "--model", "fraud", "--model-version", "v9", "--dry-run", *_flags(kenv)]) == 1
    assert "unknown model version fraud/v9" in capsys.readouterr().err
    assert main(["reference", "accept", "--model", "fraud", "--model-version", "v3", "--dry-run", "--since",
                 rfc3339(T0 + 8000 * 100), "--feature", "amount", *_flags(kenv)]) == 0
    out = capsys.readouterr()
    assert "accepted 1 feature(s) from 4 window(s)" in out.out and "2 feature(s) kept from it" in out.out
