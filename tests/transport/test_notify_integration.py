"""driftline notify over the real broker: alerts topic → local webhook server, with failures and a restart."""

import threading
import uuid

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from conftest import wait_for
from driftline.notify.messages import COLOURS, alert_key
from driftline.notify.settings import load_notify_settings
from driftline.observability.notify_metrics import NotifyMetrics
from driftline.transport.notifier import Notifier
from webhook_server import WebhookServer

pytestmark = pytest.mark.integration


def _alert(alert_id, key, status, detected_at, severity="warning"):
    model, version, feature, detector = key.split("/")
    return {"schema_version": 1, "alert_id": alert_id, "status": status, "model": model, "model_version": version,
            "feature": feature, "kind": "data_drift", "detector": detector, "severity": severity,
            "statistic": 9.5, "threshold": 5.0, "summary": f"{status} {key}", "reference": "warmup",
            "window": {"topic": "ml.inferences", "partition": 0, "first_offset": 0, "last_offset": 10,
                       "first_event_time": None, "last_event_time": None},
            "event_time": None, "detected_at": detected_at, "details": {}}


A, B, C = "fraud/v3/amount/page_hinkley", "fraud/v3/country/chi_square", "churn/v1/age/adwin"
a1 = _alert("a1", A, "firing", "2026-11-26T10:00:00.000Z", "critical")
a2 = _alert("a2", A, "firing", "2026-11-26T10:01:00.000Z", "critical")  # a reminder within the cooldown
b1 = _alert("b1", B, "firing", "2026-11-26T10:00:30.000Z")
ra = {**_alert("ra", A, "resolved", "2026-11-26T10:11:40.000Z", "critical"), "firing_alert_id": "a2"}
b2 = _alert("b2", B, "firing", "2026-11-26T10:06:00.000Z")  # after the cooldown: sent again
c1 = _alert("c1", C, "firing", "2026-11-26T10:20:00.000Z")
b3 = _alert("b3", B, "firing", "2026-11-26T10:08:00.000Z")  # read after a restart, within the cooldown of b2


class Run:
    def __init__(self, kenv, topic, group, server, metrics):
        self.notifier = Notifier(
            kenv.settings(alerts_topic=topic, auto_offset_reset="earliest", metrics_port=0),
            load_notify_settings(webhooks=[server.url("/generic")], slack_webhooks=[server.url("/slack")],
                                 cooldown_seconds=300, max_retries=4, backoff_seconds=0.02, max_backoff_seconds=0.2,
                                 timeout_seconds=2, group=group),
            metrics=metrics)
        self.thread = threading.Thread(target=self.notifier.run, kwargs={"install_signal_handlers": False}, daemon=True)
        self.thread.start()

    def stop(self):
        self.notifier.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _produce(kenv, topic, alerts):
    kenv.produce([((alert_key(a) if isinstance(a, dict) else A).encode(),
                   orjson.dumps(a) if isinstance(a, dict) else a) for a in alerts], topic=topic)


def test_alerts_are_posted_retried_deduplicated_and_committed(kenv):
    topic, group = f"alerts-{uuid.uuid4().hex[:8]}", f"notify-{uuid.uuid4().hex[:8]}"
    for f in kenv.admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    _produce(kenv, topic, [a1, a2, a1, b"not json", b1, ra, b2])
    script = {"/generic": [(500, {}), (500, {}), (429, {"Retry-After": "0"})], "/slack": [(503, {})]}
    metrics = NotifyMetrics(process_metrics=False)
    value = lambda name, **labels: metrics.registry.get_sample_value(name, labels) or 0.0  # noqa: E731

    with WebhookServer(script) as server:
        run = Run(kenv, topic, group, server, metrics)
        try:
            wait_for(lambda: len(server.ok("/generic")) >= 4 and len(server.ok("/slack")) >= 4
                     and value("driftline_notify_alerts_total", outcome="sent") == 4, 60, "4 alerts posted to each endpoint")
        finally:
            run.stop()

        # Generic endpoint: the records as they are, each once, firing before its resolution.
        generic = [orjson.loads(r.body) for r in server.ok("/generic")]
        assert sorted(a["alert_id"] for a in generic) == ["a1", "b1", "b2", "ra"]
        assert {a["alert_id"]: a for a in generic} == {"a1": a1, "b1": b1, "b2": b2, "ra": ra}
        order = [a["alert_id"] for a in generic]
        assert order.index("a1") < order.index("ra") and order.index("b1") < order.index("b2")
        assert all(r.headers["Idempotency-Key"] == orjson.loads(r.body)["alert_id"] for r in server.ok("/generic"))

        # Slack endpoint: Slack's shape, coloured by status and severity.
        slack = {orjson.loads(r.body)["attachments"][0]["footer"].split()[3]: orjson.loads(r.body)
                 for r in server.ok("/slack")}
        assert set(slack) == {"a1", "b1", "b2", "ra"}
        for msg in slack.values():
            assert set(msg) == {"text", "attachments"} and len(msg["attachments"]) == 1
            assert {"color", "fallback", "title", "fields", "footer"} <= set(msg["attachments"][0])
        assert slack["a1"]["attachments"][0]["color"] == COLOURS[("firing", "critical")]
        assert slack["b1"]["attachments"][0]["color"] == COLOURS[("firing", "warning")]
        assert slack["ra"]["attachments"][0]["color"] == COLOURS[("resolved", None)] and "RESOLVED" in slack["ra"]["text"]

        # What was retried, suppressed and skipped was counted.
        assert value("driftline_notify_retries_total", endpoint="webhook#1") == 3
        assert value("driftline_notify_retries_total", endpoint="slack#1") == 1
        assert value("driftline_notify_deliveries_total", endpoint="webhook#1", outcome="delivered") == 4
        assert value("driftline_notify_alerts_total", outcome="suppressed") == 1
        assert value("driftline_notify_alerts_total", outcome="duplicate") == 1
        assert value("driftline_notify_alerts_total", outcome="bad_record") == 1

        # A second instance of the group resumes after the committed offsets: it re-reads the records
        # before them to rebuild the cooldowns, so b2's reminder is held back and only the new alert is posted.
        _produce(kenv, topic, [c1, b3])
        metrics = NotifyMetrics(process_metrics=False)
        run = Run(kenv, topic, group, server, metrics)
        try:
            wait_for(lambda: any(orjson.loads(r.body)["alert_id"] == "c1" for r in server.ok("/generic"))
                     and len(server.ok("/slack")) >= 5 and value("driftline_notify_alerts_total", outcome="suppressed") == 1,
                     60, "the new alert posted and the reminder suppressed after the restart")
        finally:
            run.stop()
        assert value("driftline_notify_replayed_records_total") == 7  # everything before the committed offsets
        assert value("driftline_notify_alerts_total", outcome="sent") == 1
        assert sorted(orjson.loads(r.body)["alert_id"] for r in server.ok("/generic")) == ["a1", "b1", "b2", "c1", "ra"]
        assert len(server.ok("/slack")) == 5


def test_an_upstream_break_of_8_features_is_one_opening_and_one_resolution(kenv):
    """As the worker writes them: 8 firing records of one model version sharing an incident_id, keyed by their
    alert keys, all on the model version's partition, then their resolved records."""
    from confluent_kafka import Producer

    from driftline.detection.published import alert_key as worker_key

    topic, group = f"alerts-{uuid.uuid4().hex[:8]}", f"notify-{uuid.uuid4().hex[:8]}"
    for f in kenv.admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    incident = uuid.uuid4().hex
    features = [f"f{i}" for i in range(8)]

    def record(i, feature, status):
        base = _alert(f"{status[0]}{i}", f"fraud/v3/{feature}/cusum", status, f"2026-12-01T10:0{int(status == 'resolved')}:00.000Z")
        return {**base, "incident_id": incident, "detectors": ["cusum"], "source": "features",
                "opened_event_time": "2026-12-01T09:59:00.000Z"}

    def produce(records):
        p = Producer({"bootstrap.servers": kenv.broker.bootstrap_servers, "linger.ms": 5})
        for r in records:
            p.produce(topic, key=worker_key(r).encode(), value=orjson.dumps(r), partition=1)
        assert p.flush(30) == 0

    metrics = NotifyMetrics(process_metrics=False)
    value = lambda name, **labels: metrics.registry.get_sample_value(name, labels) or 0.0  # noqa: E731

    def start(metrics):
        notifier = Notifier(kenv.settings(alerts_topic=topic, auto_offset_reset="earliest", metrics_port=0),
                            load_notify_settings(webhooks=[server.url("/generic")], slack_webhooks=[server.url("/slack")],
                                                 group_wait_seconds=1.0, max_retries=1, backoff_seconds=0.02,
                                                 max_backoff_seconds=0.05, group=group),
                            metrics=metrics)
        thread = threading.Thread(target=notifier.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        wait_for(lambda: notifier._assigned, 30, "partitions assigned")
        return notifier, thread

    def stop(notifier, thread):
        notifier.stop()
        thread.join(30)
        assert not thread.is_alive()

    with WebhookServer() as server:
        notifier, thread = start(metrics)
        try:
            produce([record(i, f, "firing") for i, f in enumerate(features)])
            wait_for(lambda: len(server.ok("/generic")) >= 1 and len(server.ok("/slack")) >= 1, 30, "the opening")
            produce([record(i, f, "resolved") for i, f in enumerate(features)])
            wait_for(lambda: len(server.ok("/generic")) >= 2 and len(server.ok("/slack")) >= 2, 30, "the resolution")
            wait_for(lambda: notifier.positions().get((topic, 1)) == 16 and notifier._committed.get((topic, 1)) == 16,
                     30, "everything committed")
        finally:
            stop(notifier, thread)
        generic = [orjson.loads(r.body) for r in server.ok("/generic")]
        assert [(m["stage"], m["features"]) for m in generic] == [("opened", features), ("resolved", features)]
        assert {m["incident_id"] for m in generic} == {incident}
        assert [r.headers["X-Driftline-Incident-Id"] for r in server.ok("/slack")] == [incident, incident]
        slack = [orjson.loads(r.body) for r in server.ok("/slack")]
        assert "8 features: f0, f1" in slack[0]["text"] and "RESOLVED" in slack[1]["text"]
        assert value("driftline_notify_incident_messages_total", stage="opened") == 1
        assert value("driftline_notify_incident_messages_total", stage="resolved") == 1
        assert value("driftline_notify_alerts_total", outcome="grouped") == 16

        # A restart of the group re-reads the history without posting it: only a new incident is posted.
        other = {**record(99, "g", "firing"), "incident_id": uuid.uuid4().hex, "alert_id": "n99"}
        produce([other])
        metrics = NotifyMetrics(process_metrics=False)
        notifier, thread = start(metrics)
        try:
            wait_for(lambda: len(server.ok("/generic")) >= 3, 30, "the new incident's opening")
        finally:
            stop(notifier, thread)
        assert value("driftline_notify_replayed_records_total") == 16
        assert [orjson.loads(r.body)["features"] for r in server.ok("/generic")][2:] == [["g"]]
