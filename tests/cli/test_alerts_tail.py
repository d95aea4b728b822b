"""``driftline alerts tail``: filters and formatting, and following a real topic."""

import uuid

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.cli.alerts import format_alert, matches
from driftline.cli.main import main

ALERTS = [
    {"status": "firing", "severity": "critical", "model": "fraud", "model_version": "v3", "feature": "amount",
     "kind": "data_drift", "detector": "page_hinkley", "summary": "[fraud v3] Mean of feature 'amount' moved up",
     "event_time": "2026-11-26T10:00:00.000Z"},
    {"status": "resolved", "severity": "warning", "model": "fraud", "model_version": "v3", "feature": "amount",
     "kind": "data_drift", "detector": "page_hinkley", "summary": "Resolved", "event_time": "2026-11-26T10:20:00.000Z"},
    {"status": "firing", "severity": "warning", "model": "churn", "model_version": "v1", "feature": "prediction",
     "kind": "concept_drift", "detector": "adwin_error", "summary": "Error rate rose", "event_time": "2026-11-26T11:00:00.000Z"},
]


def test_filters():
    assert [a["model"] for a in ALERTS if matches(a, model="fraud")] == ["fraud", "fraud"]
    assert [a["status"] for a in ALERTS if matches(a, model="fraud", status="firing")] == ["firing"]
    assert [a["kind"] for a in ALERTS if matches(a, kind="concept_drift")] == ["concept_drift"]
    assert len([a for a in ALERTS if matches(a)]) == 3


def test_format_names_status_place_and_summary():
    text = format_alert(ALERTS[0]).plain
    assert "FIRING" in text and "fraud/v3 amount" in text and "data_drift/page_hinkley" in text and "moved up" in text


@pytest.mark.integration
def test_tail_from_the_beginning_with_a_filter(broker, capsys):
    topic = f"alerts-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for a in ALERTS:
        p.produce(topic, key=f"{a['model']}/{a['feature']}".encode(), value=orjson.dumps(a))
    p.produce(topic, value=b"not json")  # skipped, not a crash
    assert p.flush(10) == 0
    assert main(["alerts", "tail", "--bootstrap-servers", broker.bootstrap_servers, "--alerts-topic", topic,
                 "--from-beginning", "--model", "fraud", "--json", "--max", "2", "--timeout", "30"]) == 0
    got = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(a["status"] for a in got) == ["firing", "resolved"] and {a["model"] for a in got} == {"fraud"}
    assert main(["alerts", "tail", "--bootstrap-servers", broker.bootstrap_servers, "--alerts-topic", topic,
                 "--from-beginning", "--status", "firing", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "churn/v1 prediction" in out and "Resolved" not in out


@pytest.mark.parametrize("field", ["event_time", "severity", "status", "model", "summary", "detected_at", "kind"])
@pytest.mark.parametrize("value", [None, 0, 1e308, [], [1, ["\x1b[2J"]], {}, {"a": {"b": 1}}, True, "x" * 10_000])
def test_an_alert_of_any_shape_is_one_line(field, value):
    """Anyone can write the alerts topic: a severity or event_time that is not a string stopped ``alerts tail``."""
    line = format_alert({**ALERTS[0], field: value}).plain
    assert "\n" not in line and "\x1b" not in line
