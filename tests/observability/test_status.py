"""The folds behind ``driftline status``: active alerts, monitored features and models, lag."""

import itertools

from hypothesis import given, settings, strategies as st

from driftline.observability.status import active_alerts, monitored_features, monitored_models, partition_lag

_ids = itertools.count()


def alert(status, feature="amount", detector="psi", severity="warning", alert_id=None, event_time=None, **kw):
    return {"alert_id": alert_id or f"id{next(_ids)}", "status": status, "model": "fraud", "model_version": "v3",
            "feature": feature, "detector": detector, "kind": "data_drift", "severity": severity,
            "event_time": event_time, "detected_at": "2026-11-26T10:00:00.000Z", "summary": f"{status} {feature}", **kw}


def test_a_key_is_active_until_resolved_and_reopens_on_a_new_firing():
    first = alert("firing", event_time="2026-11-26T10:00:00.000Z")
    reminder = alert("firing", event_time="2026-11-26T10:06:00.000Z", summary="still drifting")
    resolved = alert("resolved")
    again = alert("firing", event_time="2026-11-26T11:00:00.000Z")
    [a] = active_alerts([first, reminder])
    assert a["alert_key"] == "fraud/v3/amount/data_drift" and a["firing_records"] == 2
    assert a["firing_since"] == "2026-11-26T10:00:00.000Z" and a["summary"] == "still drifting"  # newest record, first time
    assert active_alerts([first, reminder, resolved]) == []
    [b] = active_alerts([first, resolved, again])
    assert b["firing_since"] == "2026-11-26T11:00:00.000Z" and b["firing_records"] == 1


def test_a_duplicate_firing_after_its_resolution_does_not_reopen_the_key():
    firing, resolved = alert("firing"), alert("resolved")
    assert active_alerts([firing, resolved, dict(firing), dict(resolved)]) == []
    assert active_alerts([firing, resolved, dict(firing)]) == []  # redelivered, not a new alert


def test_keys_are_independent_and_critical_ones_come_first():
    records = [alert("firing", feature="amount"), alert("firing", feature="age", severity="critical"),
               alert("firing", feature="country", detector="chi_square"), alert("resolved", feature="amount")]
    assert [a["alert_key"] for a in active_alerts(records)] == ["fraud/v3/age/data_drift", "fraud/v3/country/data_drift"]
    # the same feature with two drift detectors is one incident key; two data-quality checks are two
    one = active_alerts([alert("firing", detector="psi"), alert("firing", detector="page_hinkley")])
    assert len(one) == 1
    two = active_alerts([alert("firing", detector="non_finite", kind="data_quality"),
                         alert("firing", detector="type_change", kind="data_quality")])
    assert {a["detector"] for a in two} == {"non_finite", "type_change"}


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["firing", "resolved"])), max_size=30))
def test_active_keys_are_those_whose_last_record_fires(events):
    records = [alert(status, feature=feature) for feature, status in events]
    last = {}
    for feature, status in events:
        last[feature] = status
    assert {a["feature"] for a in active_alerts(records)} == {f for f, s in last.items() if s == "firing"}


def summary(partition, feature="amount", *, drift, last_event_time="2026-11-26T10:00:00.000Z", records=500, missing=0,
            reference="warmup", feature_type="numeric", source="features", version="v3", **kw):
    return {"type": "window_summary", "model": "fraud", "model_version": version, "feature": feature, "source": source,
            "feature_type": feature_type, "reference": reference, "records": records, "missing": missing,
            "warmed_up": True, "drift": drift,
            "window": {"topic": "in", "partition": partition, "last_event_time": last_event_time}, **kw}


def test_the_newest_window_of_each_partition_is_combined_at_its_worst():
    rows = monitored_features([
        summary(0, drift={"psi": 0.9, "ks_p_value": 1e-9, "mean_shift_sd": -1.2}, last_event_time="2026-11-26T10:00:00.000Z"),
        summary(0, drift={"psi": 0.02, "ks_p_value": 0.4, "mean_shift_sd": 0.1, "spread_ratio": 1.1},
                last_event_time="2026-11-26T10:05:00.000Z"),  # partition 0 recovered: its older window no longer counts
        summary(1, drift={"psi": 0.05, "ks_p_value": 0.01, "mean_shift_sd": -0.3, "spread_ratio": 0.4, "adwin_width": 900},
                records=400, missing=40, last_event_time="2026-11-26T10:04:00.000Z"),
    ])
    [row] = rows
    assert row["partitions"] == ["in[0]", "in[1]"] and row["records"] == 900
    assert row["missing_ratio"] == 40 / 900
    assert row["drift"] == {"psi": 0.05, "ks_p_value": 0.01, "mean_shift_sd": -0.3, "spread_ratio": 0.4}
    assert row["last_event_time"] == "2026-11-26T10:05:00.000Z"


def test_spread_ratio_is_worst_farthest_from_one_on_a_log_scale():
    [row] = monitored_features([summary(0, drift={"spread_ratio": 1.8}), summary(1, drift={"spread_ratio": 0.5})])
    assert row["drift"]["spread_ratio"] == 0.5  # halved is farther than 1.8 times


def test_features_and_outputs_group_into_model_versions_with_their_references():
    records = [
        summary(0, "amount", drift={}, reference="profile@ab12"),
        summary(0, "country", drift={"jensen_shannon": 0.1, "p_value": 0.2}, feature_type="categorical", reference="profile@ab12"),
        summary(0, "prediction", drift={}, source="prediction", reference="profile@ab12"),
        summary(0, "amount", drift={}, version="v4", last_event_time="2026-11-26T11:00:00.000Z"),
        summary(1, "amount", drift={}, version="v4", reference="profile@cd34"),  # a profile arrived on one partition
        {"type": "performance_summary", "model": "fraud", "model_version": "v3", "window": {"partition": 0}},
        {"type": "version_comparison", "model": "fraud", "champion": "v3", "challenger": "v4"},
    ]
    features = monitored_features(records)
    assert [(f["model_version"], f["feature"]) for f in features] == [("v3", "amount"), ("v3", "country"),
                                                                      ("v3", "prediction"), ("v4", "amount")]
    assert features[1]["feature_type"] == "categorical" and features[1]["drift"] == {"jensen_shannon": 0.1, "p_value": 0.2}
    assert features[3]["references"] == ["profile@cd34", "warmup"]
    models = monitored_models(features)
    assert [(m["model_version"], m["references"], m["features"], m["outputs"]) for m in models] == [
        ("v3", ["profile@ab12"], ["amount", "country"], ["prediction"]),
        ("v4", ["profile@cd34", "warmup"], ["amount"], [])]
    assert models[1]["last_event_time"] == "2026-11-26T11:00:00.000Z"


def test_non_finite_and_non_numeric_statistics_are_left_out():
    [row] = monitored_features([summary(0, drift={"ks": None, "psi": float("nan"), "chi_square": True, "page_hinkley": 2.0})])
    assert row["drift"] == {"page_hinkley": 2.0}


def test_lag_is_log_end_minus_committed_never_negative():
    rows = partition_lag([("in", 0), ("in", 1), ("in", 2), ("in", 3)],
                         committed={("in", 0): 1000, ("in", 1): 500, ("in", 3): -1001},
                         log_end={("in", 0): 1200, ("in", 1): 450, ("in", 2): 80, ("in", 3): 70},
                         log_start={("in", 2): 30, ("in", 3): 0}, owners={("in", 0): "worker-a", ("in", 1): "worker-b"})
    assert [(r["partition"], r["member"], r["committed"], r["log_end"], r["lag"]) for r in rows] == [
        (0, "worker-a", 1000, 1200, 200),
        (1, "worker-b", 500, 500, 0),      # a stale log end below the commit is no lag
        (2, None, None, 80, 50),           # nothing committed: auto_offset_reset earliest reads from the log start
        (3, None, None, 70, 70),           # -1001 is librdkafka's "no offset"
    ]
    latest = partition_lag([("in", 2)], committed={}, log_end={("in", 2): 80}, log_start={("in", 2): 30},
                           reset_to_earliest=False)
    assert latest[0]["lag"] is None  # auto_offset_reset latest: the group would skip what is there
    unknown = partition_lag([("in", 0)], committed={("in", 0): 5}, log_end={})
    assert unknown[0]["lag"] is None and unknown[0]["committed"] == 5


# ------------------------------------------------- records of any shape (the topics are inputs too)
_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False),
                               st.text(max_size=5)),
                     lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=3), inner, max_size=2)),
                     max_leaves=4)
_SUMMARY = {"type": "window_summary", "model": "m", "model_version": "v", "feature": "x", "source": "features",
            "feature_type": "numeric", "reference": "warmup", "records": 10, "missing": 1, "warmed_up": True,
            "window": {"topic": "in", "partition": 0, "last_event_time": "2026-01-01T00:00:00.000Z"}, "drift": {"psi": 0.3}}
_ALERT = {"alert_id": "a", "status": "firing", "model": "m", "model_version": "v", "feature": "x", "detector": "psi",
          "severity": "warning", "event_time": "2026-01-01T00:00:00.000Z"}


def _forged(base: dict, changes: dict) -> dict:
    out = {**base, "window": dict(base.get("window", {}))}
    for field, value in changes.items():
        if field.startswith("window."):
            window = out.get("window")  # (the window itself may have been dropped or replaced)
            if isinstance(window, dict):
                if value is _DROP:
                    window.pop(field[7:], None)
                else:
                    window[field[7:]] = value
        elif value is _DROP:
            out.pop(field, None)
        else:
            out[field] = value
    return out


_DROP = object()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_SUMMARY) + ["window.partition", "window.topic", "window.last_event_time"]),
                       st.one_of(_json, st.just(_DROP)), max_size=4),
       st.dictionaries(st.sampled_from(sorted(_ALERT) + ["window", "kind", "summary"]), st.one_of(_json, st.just(_DROP)),
                       max_size=4))
def test_summaries_and_alerts_of_any_shape_never_stop_status(summary_changes, alert_changes):
    """A forged record on the metrics or alerts topic (``window.partition`` a string, ``records`` a list,
    no ``model``...) used to raise in ``driftline status``."""
    summaries = [_SUMMARY, _forged(_SUMMARY, summary_changes)]
    monitored_models(monitored_features(summaries))
    alerts = active_alerts([_ALERT, _forged(_ALERT, alert_changes)])
    from driftline.cli.status import firing_detectors

    firing_detectors(alerts)


# ------------------------------------------------- open incidents
from driftline.observability.status import open_incidents  # noqa: E402

INC = "5f1c" * 8


def test_open_incidents_group_the_active_keys_of_one_break_with_their_features_and_detectors():
    features = ["amount", "age", "country"]
    records = [alert("firing", feature=f, detector="cusum", incident_id=INC, detectors=["cusum"],
                     opened_event_time=f"2026-12-01T10:00:0{i}.000Z", kind="data_drift") for i, f in enumerate(features)]
    records[1]["severity"] = "critical"
    records.append(alert("resolved", feature="country", detector="cusum", incident_id=INC))  # country is back
    records.append(alert("firing", feature="tenure", detector="adwin"))  # an older worker's record: its own incident
    summaries = [summary(0, "amount", drift={}, incident={"incident_id": INC, "kind": "data_drift", "detectors": ["cusum", "psi"],
                                                          "detector": "psi", "findings": 4, "statistic": 0.31}),
                 summary(0, "age", drift={}, incident={"incident_id": "older", "detectors": ["ks"]})]
    incidents = open_incidents(active_alerts(records), monitored_features(summaries))
    assert [(i["incident_id"], i["features"], i["severity"]) for i in incidents] == [
        (INC, ["age", "amount"], "critical"), (None, ["tenure"], "warning")]
    [ours, old] = incidents
    assert ours["kinds"] == ["data_drift"] and ours["detectors"] == ["cusum", "psi"]
    assert ours["opened_event_time"] == "2026-12-01T10:00:00.000Z" and ours["model_version"] == "v3"
    amount = next(m for m in ours["members"] if m["feature"] == "amount")
    assert amount["findings"] == 4 and amount["statistic"] == 0.31 and amount["detectors"] == ["cusum", "psi"]
    assert next(m for m in ours["members"] if m["feature"] == "age")["detectors"] == ["cusum"]  # other incident's window
    assert old["detectors"] == ["adwin"] and [m["feature"] for m in old["members"]] == ["tenure"]


def test_every_feature_resolved_closes_the_incident():
    records = [alert("firing", feature=f, incident_id=INC) for f in "ab"]
    records += [alert("resolved", feature=f, incident_id=INC) for f in "ab"]
    assert open_incidents(active_alerts(records)) == []


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["incident_id", "detectors", "detector", "opened_event_time", "kind", "severity",
                                        "feature", "model"]), _json, max_size=4),
       st.one_of(_json, st.dictionaries(st.sampled_from(["incident_id", "detectors", "findings", "statistic", "kind"]),
                                        _json, max_size=4)))
def test_incidents_of_any_shape_never_stop_status(alert_changes, incident):
    alerts = active_alerts([{**_ALERT, "incident_id": "i"}, {**_ALERT, "alert_id": "b", **alert_changes}])
    rows = monitored_features([{**_SUMMARY, "incident": incident}])
    for found in open_incidents(alerts, rows):
        assert isinstance(found["features"], list) and isinstance(found["detectors"], list)
