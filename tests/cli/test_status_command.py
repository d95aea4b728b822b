"""``driftline status``: the group description as data, the rendering, and a real worker group over tansu."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import ConsumerGroupState, Node, TopicPartition
from confluent_kafka.admin import ConsumerGroupDescription, MemberAssignment, MemberDescription
from rich.console import Console

from conftest import wait_for
from driftline.cli.main import main
from driftline.cli.status import group_description, render

T0 = 1_700_000_000_000


def test_group_description_lists_members_with_their_partitions():
    members = [MemberDescription("m-2", "driftline-worker", "/10.0.0.2",
                                 MemberAssignment([TopicPartition("ml.inferences", 1), TopicPartition("ml.labels", 1)])),
               MemberDescription("m-1", "driftline-worker", "/10.0.0.1",
                                 MemberAssignment([TopicPartition("ml.inferences", 0), TopicPartition("ml.labels", 0)]),
                                 group_instance_id="worker-0")]
    d = group_description(ConsumerGroupDescription("driftline", False, members, "range", ConsumerGroupState.STABLE,
                                                   Node(1, "kafka", 9092)))
    assert d["state"] == "stable" and d["assignor"] == "range" and d["coordinator"] == "kafka:9092"
    assert [m["member_id"] for m in d["members"]] == ["m-1", "m-2"]
    assert d["members"][0]["partitions"] == [["ml.inferences", 0], ["ml.labels", 0]]
    assert d["members"][0]["group_instance_id"] == "worker-0" and d["members"][1]["host"] == "/10.0.0.2"


def test_render_shows_members_lag_features_and_alerts():
    report = {
        "bootstrap_servers": "kafka:9092",
        "group": {"group_id": "driftline", "state": "stable", "assignor": "range", "coordinator": "kafka:9092",
                  "members": [{"member_id": "m-1", "client_id": "driftline-worker", "host": "/10.0.0.1",
                               "group_instance_id": None, "partitions": [["ml.inferences", 0]]}]},
        "partitions": [{"topic": "ml.inferences", "partition": 0, "member": "driftline-worker", "committed": 1000,
                        "log_end": 1250, "lag": 250}],
        "total_lag": 250,
        "models": [{"model": "fraud", "model_version": "v3", "references": ["profile@ab12"], "features": ["amount"],
                    "outputs": ["prediction"], "last_event_time": "2026-11-26T10:00:00.000Z"}],
        "features": [{"model": "fraud", "model_version": "v3", "feature": "amount", "feature_type": "numeric",
                      "references": ["profile@ab12"], "partitions": ["ml.inferences[0]"], "missing_ratio": 0.0,
                      "drift": {"mean_shift_sd": 1.04, "psi": 0.41}, "firing": ["psi"]}],
        "active_alerts": [{"severity": "critical", "alert_key": "fraud/v3/amount/psi", "kind": "data_drift",
                           "firing_since": "2026-11-26T09:58:00.000Z", "summary": "PSI of amount is 0.41"}],
        "open_incidents": [{"model": "fraud", "model_version": "v3", "incident_id": "5f1c" * 8, "severity": "critical",
                            "opened_event_time": "2026-11-26T09:58:00.000Z", "features": [f"f{i}" for i in range(14)],
                            "kinds": ["data_drift"], "detectors": ["cusum", "psi"], "members": []}],
        "notes": ["topic 'x' was not read to its end"],
    }
    console = Console(record=True, width=200)
    for part in render(report):
        console.print(part)
    text = console.export_text()
    for expected in ("group driftline on kafka:9092: stable, 1 member(s)", "ml.inferences[0]", "lag (total 250)",
                     "1,250", "profile@ab12", "+1.04", "0.410", "fraud/v3/amount/psi", "active alerts (1)",
                     "note: topic 'x'", "open incidents (1)", "5f1c" * 8, "14: f0, f1", "and 2 more", "cusum, psi"):
        assert expected in text, expected


def test_names_from_records_cannot_move_the_cursor_or_start_a_line():
    from driftline.cli.output import escaped

    bad = "fr\x1b[2Jaud\nFORGED\r"
    report = {"bootstrap_servers": "kafka:9092", "total_lag": 0, "partitions": [], "notes": [],
              "group": {"group_id": "g", "state": "empty", "members": []},
              "models": [{"model": bad, "model_version": "v\x9b1", "references": ["warmup"], "features": [bad],
                          "outputs": [], "last_event_time": None}],
              "features": [{"model": bad, "model_version": "v\x9b1", "feature": bad, "feature_type": "numeric",
                            "references": ["warmup"], "partitions": [], "missing_ratio": 0.0, "drift": {}, "firing": []}],
              "active_alerts": [{"severity": "critical", "alert_key": bad, "kind": "data_drift", "summary": bad}],
              "open_incidents": [{"model": bad, "model_version": bad, "incident_id": bad * 10, "severity": "warning",
                                  "opened_event_time": bad, "features": [bad], "kinds": [bad], "detectors": [bad],
                                  "members": []}]}
    console = Console(record=True, width=400)
    for part in render(escaped(report)):
        console.print(part)
    text = console.export_text()
    assert "\x1b" not in text and "\x9b" not in text and "\r" not in text and "FORGED" not in text.split("\n")[0]
    assert not any(line.startswith("FORGED") for line in text.splitlines())
    assert "fr\\x1b[2Jaud\\nFORGED\\r" in text


def stream(n, shift_at, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        doc = {"model": "fraud", "model_version": "v3", "event_id": f"e{i}", "timestamp": T0 + i * 10,
               "features": {"amount": float(rng.lognormal(3, 1) + (40.0 if i >= shift_at else 0.0)),
                            "country": str(rng.choice(["de", "fr", "it"]))},
               "prediction": float(rng.random())}
        yield b"fraud", orjson.dumps(doc)


def _status(kenv, capsys) -> dict:
    s = kenv.settings()
    rc = main(["status", "--json", "--timeout", "30", "--bootstrap-servers", s.bootstrap_servers, "--group-id", s.group_id,
               "--input-topics", kenv.input, "--labels-topic", kenv.labels, "--alerts-topic", kenv.alerts,
               "--metrics-topic", kenv.metrics_topic])
    assert rc == 0
    return orjson.loads(capsys.readouterr().out)


@pytest.mark.integration
def test_status_of_a_running_worker_group(kenv, capsys):
    worker = kenv.start_worker()
    kenv.produce(stream(3000, 1500))
    wait_for(lambda: sum(s.value for f in worker.metrics.registry.collect() for s in f.samples
                         if s.name == "driftline_records_total") >= 3000, 60, "all records processed")

    report = _status(kenv, capsys)
    # tansu describes a live classic group as stable but lists no members (Apache Kafka lists them with
    # their assignment, see test_group_description_lists_members_with_their_partitions), so the member
    # check is conditional: when members are listed, they own exactly the assigned partitions.
    group = report["group"]
    assert group["group_id"] == kenv.group and group["state"] == "stable"
    owned = {(t, p) for m in group["members"] for t, p in m["partitions"]}
    assert not group["members"] or owned == worker._assigned
    # committed offsets are exact on tansu: every record processed is committed
    rows = {(r["topic"], r["partition"]): r for r in report["partitions"]}
    assert {(kenv.input, 0), (kenv.input, 1), (kenv.labels, 0), (kenv.labels, 1)} <= set(rows)
    assert sum(r["committed"] or 0 for r in rows.values() if r["topic"] == kenv.input) == 3000
    # tansu's ListOffsets answers below the real log end (BROKER.md), so only what holds for any log end
    # is asserted here: lag = log end - committed, never negative; the exact numbers are unit-tested.
    for r in rows.values():
        assert r["lag"] is None or (r["lag"] >= 0 and r["lag"] == r["log_end"] - (r["committed"] or 0))

    [model] = report["models"]
    assert (model["model"], model["model_version"], model["references"]) == ("fraud", "v3", ["warmup"])
    assert model["features"] == ["amount", "country"] and model["outputs"] == ["prediction"]
    amount = next(f for f in report["features"] if f["feature"] == "amount")
    assert amount["feature_type"] == "numeric" and amount["partitions"] and "psi" in amount["drift"]
    assert report["active_alerts"], "the shifted feature fires"
    assert {a["feature"] for a in report["active_alerts"]} == {"amount"}
    assert all(a["status"] == "firing" and a["alert_key"].startswith("fraud/v3/amount/") for a in report["active_alerts"])
    assert amount["firing"] == sorted(a["detector"] for a in report["active_alerts"])
    assert report["read"]["alerts_topic"]["complete"] and report["read"]["metrics_topic"]["complete"]
    # docs/status.md names every field of the document
    doc = (Path(__file__).resolve().parents[2] / "docs" / "status.md").read_text()
    fields = set(report) | set(group) | set(report["partitions"][0]) | set(model) | set(amount) | set(report["read"]["alerts_topic"])
    fields |= {"alert_key", "firing_since", "firing_records"} | set(group["members"][0] if group["members"] else {})
    assert not [f for f in sorted(fields) if f"`{f}`" not in doc], "document these fields in docs/status.md"

    # the group stopped, and more records arrived: no members, the committed offsets stay, lag appears
    kenv.stop_workers()
    kenv.produce(stream(200, 0, seed=1))
    after = _status(kenv, capsys)
    assert after["group"]["state"] == "empty" and after["group"]["members"] == []
    again = {(r["topic"], r["partition"]): r for r in after["partitions"]}
    assert sum(r["committed"] or 0 for r in again.values() if r["topic"] == kenv.input) == 3000
    # at least one record of lag (the real lag, 200, on Kafka; tansu's log end is the last batch's first offset + 1)
    assert after["total_lag"] >= 1


@pytest.mark.integration
def test_status_renders_tables_and_names_missing_topics(kenv, capsys):
    s = kenv.settings()
    rc = main(["status", "--timeout", "20", "--bootstrap-servers", s.bootstrap_servers, "--group-id", s.group_id,
               "--input-topics", kenv.input, "--alerts-topic", kenv.alerts, "--metrics-topic", kenv.metrics_topic])
    out, err = capsys.readouterr()
    assert rc == 0
    # a group that never ran: unknown, and no lag claimed for it
    assert f"group {kenv.group}" in out and "unknown group" in out and "lag (unknown" in out and "no active alerts" in out
    assert f"unknown group '{kenv.group}': no members and no committed offsets" in " ".join((out + err).split())
    assert f"topic '{kenv.alerts}' does not exist yet (setting alerts_topic)" in err  # a note: stderr


def test_bad_flags_are_named(capsys):
    assert main(["status", "--timeout", "0"]) == 2
    assert "argument --read-timeout/--timeout: must be above 0 and at most 3600 (got 0)" in capsys.readouterr().err
    assert main(["status", "--since", "-5"]) == 2
    assert "argument --since: must be at least 0" in capsys.readouterr().err
