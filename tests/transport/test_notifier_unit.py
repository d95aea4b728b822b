"""Notifier.handle without a broker: filters, records without detected_at, endpoints that refuse."""

import orjson

from driftline.config import load_settings
from driftline.notify.settings import load_notify_settings
from driftline.observability.notify_metrics import NotifyMetrics
from driftline.transport.notifier import Notifier
from webhook_server import WebhookServer


def _alert(alert_id, status="firing", model="fraud", **extra):
    return orjson.dumps({"alert_id": alert_id, "status": status, "model": model, "model_version": "v1",
                         "feature": "x", "detector": "adwin", "kind": "data_drift", **extra})


def _notifier(server, clock=lambda: 0.0, **notify):
    metrics = NotifyMetrics(process_metrics=False)
    base = dict(webhooks=[server.url("/h")], max_retries=1, backoff_seconds=0.01, max_backoff_seconds=0.01)
    return Notifier(load_settings(metrics_port=0), load_notify_settings(**{**base, **notify}), metrics=metrics,
                    clock=clock), metrics


def _count(metrics, outcome):
    return metrics.registry.get_sample_value("driftline_notify_alerts_total", {"outcome": outcome})


def test_filters_skip_alerts_before_the_gate():
    with WebhookServer() as server:
        notifier, metrics = _notifier(server, model="fraud", status="firing")
        assert notifier.handle(_alert("c1", model="churn"))
        assert notifier.handle(_alert("f1", status="resolved"))
        assert notifier.handle(_alert("f2"))
    assert [orjson.loads(r.body)["alert_id"] for r in server.received] == ["f2"]
    assert _count(metrics, "filtered") == 2 and _count(metrics, "sent") == 1


def test_without_detected_at_the_cooldown_runs_on_the_local_clock():
    now = [1000.0]
    with WebhookServer() as server:
        notifier, metrics = _notifier(server, clock=lambda: now[0], cooldown_seconds=300)
        for alert_id, t in (("f1", 1000.0), ("f2", 1200.0), ("f3", 1300.0)):
            now[0] = t
            notifier.handle(_alert(alert_id))
    assert [orjson.loads(r.body)["alert_id"] for r in server.received] == ["f1", "f3"]
    assert _count(metrics, "suppressed") == 1


def test_an_endpoint_that_refuses_or_keeps_failing_is_given_up_and_counted_and_the_record_finished():
    with WebhookServer({"/h": [(404, {}), (500, {}), (500, {})]}) as server:
        notifier, metrics = _notifier(server, cooldown_seconds=0)
        assert notifier.handle(_alert("f1")) and notifier.handle(_alert("f2"))
    value = lambda o: metrics.registry.get_sample_value("driftline_notify_deliveries_total",  # noqa: E731
                                                        {"endpoint": "webhook#1", "outcome": o})
    assert value("rejected") == 1 and value("failed") == 1
    assert len(server.received) == 3  # 404 once; 500 twice (max_retries 1)


def test_bad_records_are_skipped_and_counted():
    with WebhookServer() as server:
        notifier, metrics = _notifier(server)
        for value in (None, b"", b"\xff\xfe", b"[]", b'{"status": "firing"}', b"null"):
            assert notifier.handle(value)
    assert server.received == [] and _count(metrics, "bad_record") == 6


def test_a_new_group_starts_at_the_end_unless_told_otherwise(monkeypatch):
    from driftline.transport.notifier import consumer_config

    monkeypatch.delenv("DRIFTLINE_AUTO_OFFSET_RESET", raising=False)
    notify = load_notify_settings(webhooks=["http://a.example"], group="pager")
    conf = consumer_config(load_settings(), notify, max_poll_interval_ms=400_000)
    assert conf["auto.offset.reset"] == "latest" and conf["group.id"] == "pager"
    assert conf["enable.auto.commit"] is False and conf["max.poll.interval.ms"] == 400_000
    assert consumer_config(load_settings(auto_offset_reset="earliest"), notify,
                           max_poll_interval_ms=1)["auto.offset.reset"] == "earliest"
    monkeypatch.setenv("DRIFTLINE_AUTO_OFFSET_RESET", "earliest")
    assert consumer_config(load_settings(), notify, max_poll_interval_ms=1)["auto.offset.reset"] == "earliest"


def test_keys_of_a_revoked_partition_are_forgotten():
    from confluent_kafka import TopicPartition

    with WebhookServer() as server:
        notifier, _ = _notifier(server, cooldown_seconds=300)
        notifier.handle(_alert("f1", detected_at="2026-11-26T10:00:00.000Z"), source=("alerts", 1, 7))
        assert notifier.gate.is_open("fraud/v1/x/data_drift")
        notifier._on_revoke(None, [TopicPartition("alerts", 0)])
        assert notifier.gate.is_open("fraud/v1/x/data_drift")
        notifier._on_revoke(None, [TopicPartition("alerts", 1)])
        assert not notifier.gate.is_open("fraud/v1/x/data_drift") and len(notifier.gate) == 0


def _incident_record(alert_id, feature, status="firing", incident="9" * 32, **extra):
    return orjson.dumps({"alert_id": alert_id, "status": status, "model": "fraud", "model_version": "v3",
                         "feature": feature, "detector": "cusum", "detectors": ["cusum", "psi"], "kind": "data_drift",
                         "severity": "critical", "incident_id": incident, "summary": f"{feature} moved",
                         "detected_at": "2026-12-01T10:00:00.000Z", **extra})


def test_incident_records_wait_for_the_grouping_delay_and_hold_back_the_commit():
    now = [0.0]
    with WebhookServer() as server:
        metrics = NotifyMetrics(process_metrics=False)
        notifier = Notifier(load_settings(metrics_port=0),
                            load_notify_settings(webhooks=[server.url("/h")], slack_webhooks=[server.url("/s")],
                                                 group_wait_seconds=3, max_retries=0),
                            metrics=metrics, monotonic=lambda: now[0])
        for offset, feature in enumerate(["amount", "age", "country"]):
            assert notifier.handle(_incident_record(f"f{offset}", feature), source=("alerts", 0, offset))
            notifier._next[("alerts", 0)] = offset + 1
        notifier.handle(_alert("legacy"), source=("alerts", 1, 0))  # an older worker's record: posted at once
        notifier._next[("alerts", 1)] = 1
        assert [r.path for r in server.received] == ["/h", "/s"]
        assert notifier.positions() == {("alerts", 0): 0, ("alerts", 1): 1}
        now[0] = 2.9
        assert notifier.flush() and len(server.received) == 2
        now[0] = 3.0
        assert notifier.flush()
        assert notifier.positions() == {("alerts", 0): 3, ("alerts", 1): 1}
        generic = orjson.loads(server.ok("/h")[1].body)
        slack = orjson.loads(server.ok("/s")[1].body)
        headers = server.ok("/h")[1].headers
    assert generic["type"] == "incident" and generic["stage"] == "opened"
    assert generic["features"] == ["amount", "age", "country"] and generic["detectors"] == ["cusum", "psi"]
    assert [a["alert_id"] for a in generic["alerts"]] == ["f0", "f1", "f2"]
    assert headers["X-Driftline-Incident-Id"] == "9" * 32 and headers["Idempotency-Key"] == generic["message_id"]
    assert headers["X-Driftline-Incident-Stage"] == "opened"
    assert "3 features: amount, age, country" in slack["text"] and "data_drift" in slack["text"]
    fields = {f["title"]: f["value"] for f in slack["attachments"][0]["fields"]}
    assert fields["Incident"] == "9" * 32 and fields["Detectors"] == "cusum, psi"
    assert metrics.registry.get_sample_value("driftline_notify_incident_messages_total", {"stage": "opened"}) == 1
    assert _count(metrics, "grouped") == 3 and _count(metrics, "sent") == 1


def test_secrets_of_webhook_urls_stay_out_of_incident_messages():
    secret = "http://user:s3cr3t@127.0.0.1:{port}/h?token=t0k3n"
    with WebhookServer() as server:
        url = secret.format(port=server.url("").rsplit(":", 1)[1])
        notifier = Notifier(load_settings(metrics_port=0),
                            load_notify_settings(webhooks=[url], group_wait_seconds=0, max_retries=0),
                            metrics=NotifyMetrics(process_metrics=False))
        notifier.handle(_incident_record("f1", "amount"), source=("alerts", 0, 0))
        notifier.flush()
        [request] = server.received
    assert b"s3cr3t" not in request.body and b"t0k3n" not in request.body


def test_a_revoked_partition_drops_its_waiting_incident_messages_uncommitted():
    from confluent_kafka import TopicPartition

    with WebhookServer() as server:
        notifier = Notifier(load_settings(metrics_port=0),
                            load_notify_settings(webhooks=[server.url("/h")], group_wait_seconds=60),
                            metrics=NotifyMetrics(process_metrics=False), monotonic=lambda: 0.0)
        notifier.handle(_incident_record("f1", "amount"), source=("alerts", 1, 5))
        notifier._next[("alerts", 1)] = 6
        assert notifier.positions() == {("alerts", 1): 5}
        notifier._on_revoke(None, [TopicPartition("alerts", 1)])
        assert notifier.positions() == {} and notifier.book.next_due() is None and len(notifier.book) == 0
        assert notifier.flush() and server.received == []  # the partition's next owner posts it
