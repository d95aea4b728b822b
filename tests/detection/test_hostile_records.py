"""Each poison record of issue 11, through the pipeline: a dead letter with a reason, or a finding; never an exception."""

from __future__ import annotations

import json

import orjson
import pytest

from driftline.contract.decode import DeadLetterReason as R
from driftline.contract.event import SourceRecord
from driftline.contract.names import bounded
from driftline.detection.alerts import FIRING, RESOLVED
from driftline.detection.keys import alert_key
from driftline.detection.monitor import Check
from driftline.detection.outcomes import LabelOutcome, OutcomeSettings, Rule
from driftline.detection.pipeline import OVERFLOW_MODEL, Pipeline, PipelineSettings
from driftline.detection.published import alert_record, dead_letter_record, summary_record
from driftline.detection.settings import MonitorSettings
from driftline.observability.metrics import WorkerMetrics

T0 = 1_700_000_000_000
HUGE = "1" + "0" * 400  # 401 digits: float() raises OverflowError
LAB = "lab"


def pipeline(*, labels=False, skew=3600.0, max_models=100, **kw) -> Pipeline:
    monitor = MonitorSettings.calibrated(false_alarm_rate=1e-3, warmup=kw.pop("warmup", 50),
                                         window_events=kw.pop("window_events", 50), window_seconds=None, **kw)
    outcomes = OutcomeSettings(labels_topic=LAB, join_window_ms=60_000.0, max_pending=1000, false_alarm_rate=1e-3,
                               window_events=50, window_seconds=None, label_warmup=20) if labels else None
    return Pipeline(PipelineSettings(monitor=monitor, outcomes=outcomes, max_models=max_models,
                                     cooldown_seconds=1.0, resolve_after_seconds=2.0,
                                     max_event_time_skew_seconds=skew))


def rec(text: str | bytes, offset: int = 0, topic: str = "in", ts: int | None = None) -> SourceRecord:
    value = text.encode() if isinstance(text, str) else text
    return SourceRecord(topic, 0, offset, ts, b"k", value)


def good(i: int, model: str = "m", **fields) -> SourceRecord:
    doc = {"model": model, "event_id": f"e{i}", "timestamp": T0 + i * 10, "features": {"x": float(i % 7), "c": "ab"[i % 2]},
           "prediction": 0.25 + (i % 2) / 2, **fields}
    return rec(orjson.dumps(doc), i)


def published(result) -> list[tuple[bytes, bytes]]:
    """Every alert and summary as the worker would produce it (asserting valid UTF-8 keys and JSON values)."""
    out = [alert_record(a) for a in result.alerts] + [summary_record(s) for s in result.summaries]
    for key, value in out:
        key.decode("utf-8")
        json.loads(value.decode("utf-8"))
    return out


def quality(result, check: str) -> int:
    return sum(n for (_, _, c), n in result.quality.items() if c == check)


# ------------------------------------------------------------------ huge integers
def test_a_401_digit_integer_in_a_feature_is_a_non_finite_finding():
    p = pipeline()
    records = [good(i) for i in range(60)]
    records.insert(10, rec(f'{{"model": "m", "timestamp": {T0}, "features": {{"x": {HUGE}, "c": "a"}}}}', 100))
    result = p.process(records)
    assert not result.dead_letters
    assert quality(result, Check.NON_FINITE) == 1
    assert any(a["detector"] == Check.NON_FINITE and a["feature"] == "x" for a in result.alerts)
    (x,) = [s for s in result.summaries if s["feature"] == "x"]
    assert x["non_finite"] == 1
    published(result)


@pytest.mark.parametrize("values, non_finite", [
    ([1.7e308, 1.7e308], 0),          # finite values whose sum overflows: no finding
    ([1.7e308, -1.7e308, 1.0], 0),
    ([1e308, float("inf")], 1),
    ([float("-inf"), float("inf")], 2),  # their sum is NaN
    ([float("nan"), 2.0, 3.0], 1),
])
def test_values_near_a_doubles_limits_are_non_finite_only_when_they_are(values, non_finite):
    p = pipeline()
    records = [good(i) for i in range(60)]
    text = [json.dumps({"model": "m", "timestamp": T0, "features": {"x": v, "c": "a"}}) for v in values]
    records[10:10] = [rec(t, 100 + k) for k, t in enumerate(text)]
    result = p.process(records)
    assert not result.dead_letters
    assert quality(result, Check.NON_FINITE) == non_finite
    (x,) = [s for s in result.summaries if s["feature"] == "x"]
    assert x["non_finite"] == non_finite
    published(result)


def test_a_401_digit_prediction_is_non_finite_for_the_monitor_and_the_output_rules():
    p = pipeline(labels=True)
    records = [good(i) for i in range(60)]
    records.insert(5, rec(f'{{"model": "m", "event_id": "big", "timestamp": {T0}, "prediction": {HUGE}}}', 100))
    result = p.process(records)
    assert not result.dead_letters
    assert result.violations[("m", Rule.NOT_FINITE)] == 1
    assert quality(result, Check.NON_FINITE) == 1
    published(result)


def test_a_401_digit_label_is_an_invalid_label():
    p = pipeline(labels=True)
    result = p.process([rec(f'{{"model": "m", "event_id": "e1", "label": {HUGE}}}', topic=LAB)])
    assert [d.reason for d in result.dead_letters] == [R.INVALID_LABEL]


# ---------------------------------------------------------------- lone surrogates
@pytest.mark.parametrize("field, reason", [("model", R.INVALID_MODEL), ("model_version", R.INVALID_MODEL_VERSION)])
def test_a_lone_surrogate_in_model_or_version_is_a_dead_letter(field, reason):
    doc = {"model": "m", "features": {"x": 1.0}}
    text = orjson.dumps(doc).decode().replace('"m"', '"m\\ud800"') if field == "model" else \
        '{"model": "m", "model_version": "v\\ud800", "features": {"x": 1.0}}'
    for topic in ("in", LAB):
        body = text if topic == "in" else text.replace('"features": {"x": 1.0}', '"event_id": "e", "label": 1')
        result = pipeline(labels=True).process([rec(body, topic=topic)])
        assert [d.reason for d in result.dead_letters] == [reason], body


def test_a_lone_surrogate_in_a_feature_name_is_an_invalid_name_finding_kept_apart_from_its_escape():
    p = pipeline()
    records = [good(i) for i in range(50)]
    for i in range(50):  # the surrogate name, and the literal text its escape reads as
        records.append(rec(f'{{"model": "m", "timestamp": {T0 + 500 + i}, "features": {{"\\ud800": {i}, "\\\\ud800": {i}}}}}',
                           50 + i))
    result = p.process(records)
    names = {s["feature"] for s in result.summaries}
    assert "\\ud800" in names and bounded("\ud800", 256) in names  # two features, both valid UTF-8
    assert quality(result, Check.INVALID_NAME) == 1
    published(result)
    assert len({summary_record(s)[0] for s in result.summaries}) == len(names)


def test_a_lone_surrogate_in_a_category_is_an_invalid_category_finding():
    p = pipeline()
    records = [good(i) for i in range(49)]
    records.append(rec(f'{{"model": "m", "timestamp": {T0 + 500}, "features": {{"x": 1.0, "c": "a\\ud800"}}}}', 49))
    result = p.process(records)
    assert quality(result, Check.INVALID_CATEGORY) == 1
    (c,) = [s for s in result.summaries if s["feature"] == "c"]
    assert bounded("a\ud800", 256) in c["categories"]
    published(result)


# ------------------------------------------------------------------ huge strings
def test_a_900_kb_feature_name_is_bounded_and_every_output_stays_small():
    p = pipeline()
    name = "n" * 900_000
    records = [good(i) for i in range(49)]
    records.append(rec(orjson.dumps({"model": "m", "timestamp": T0 + 500, "features": {"x": 1.0, name: 2.0}}), 49))
    result = p.process(records)
    assert quality(result, Check.INVALID_NAME) == 1
    assert max(len(v) for _, v in published(result)) < 16_000
    kept = [s["feature"] for s in result.summaries if s["feature"].startswith("n")]
    assert kept == [bounded(name, 256)] and len(kept[0]) == 256


def test_two_600_kb_categories_in_one_window_stay_distinct_and_the_summary_small():
    p = pipeline()
    a, b = "a" * 600_000, "a" * 599_999 + "b"
    records = [good(i) for i in range(48)]
    records += [rec(orjson.dumps({"model": "m", "timestamp": T0 + 500 + i, "features": {"x": 1.0, "c": v}}), 48 + i)
                for i, v in enumerate((a, b))]
    result = p.process(records)
    (c,) = [s for s in result.summaries if s["feature"] == "c"]
    assert bounded(a, 256) in c["categories"] and bounded(b, 256) in c["categories"]
    assert quality(result, Check.INVALID_CATEGORY) == 2
    assert max(len(v) for _, v in published(result)) < 16_000


def test_long_event_ids_still_join_their_labels():
    p = pipeline(labels=True)
    long_id = "id-" + "x" * 5000
    records = [rec(orjson.dumps({"model": "m", "event_id": long_id, "timestamp": T0, "prediction": 0.9}), 0),
               rec(orjson.dumps({"model": "m", "event_id": long_id, "label": 1, "timestamp": T0 + 1}), 0, topic=LAB)]
    result = p.process(records)
    assert result.labels[("m", LabelOutcome.JOINED)] == 1
    (monitor,) = p.outcomes.values()
    assert all(len(k) <= 256 for k in monitor.done)


# ---------------------------------------------------------------- event times
def test_year_9999_record_of_another_model_resolves_nothing():
    p = pipeline(skew=0.0)
    firing = p.process([good(i) for i in range(49)] +
                       [rec(f'{{"model": "m", "timestamp": {T0 + 500}, "features": {{"x": "text"}}}}', 49)]).alerts
    assert any(a["status"] == FIRING and a["detector"] == Check.TYPE_CHANGE for a in firing)
    later = p.process([rec('{"model": "other", "timestamp": "9999-12-31T23:59:59Z", "features": {"x": 1.0}}', 50)])
    assert not [a for a in later.alerts if a["status"] == RESOLVED]
    # the model's own clock still resolves it
    resolved = p.process([good(i, timestamp=T0 + 10_000 + i) for i in range(60, 70)]).alerts
    assert any(a["status"] == RESOLVED and a["model"] == "m" for a in resolved)


def test_an_event_time_far_ahead_of_the_kafka_timestamp_is_a_finding_and_gets_that_timestamp():
    p = pipeline()
    result = p.process([rec('{"model": "m", "timestamp": "9999-12-31T23:59:59Z", "features": {"x": 1.0}}', ts=T0)])
    assert quality(result, Check.EVENT_TIME_SKEW) == 1
    (alert,) = [a for a in result.alerts if a["detector"] == Check.EVENT_TIME_SKEW]
    assert alert["source"] == "record" and alert["feature"] == "timestamp" and alert["event_time"] == "2023-11-14T22:13:20.000Z"
    assert p._clocks == {"m": T0}
    (monitor,) = p.monitors.values()
    assert monitor.newest_ms == T0
    published(result)


def test_a_record_dated_year_9999_in_both_its_field_and_its_kafka_timestamp_resolves_nothing_of_its_own_model():
    p = pipeline()
    firing = p.process([good(i) for i in range(49)] +
                       [rec(f'{{"model": "m", "timestamp": {T0 + 500}, "features": {{"x": "text"}}}}', 49)]).alerts
    assert any(a["status"] == FIRING and a["detector"] == Check.TYPE_CHANGE for a in firing)
    year_9999 = 253402300799000
    later = p.process([rec('{"model": "m", "timestamp": "9999-12-31T23:59:59Z", "features": {"x": 1.0}}', 50, ts=year_9999)])
    assert not [a for a in later.alerts if a["status"] == RESOLVED]
    assert quality(later, Check.EVENT_TIME_SKEW) == 1  # ahead of the worker's clock: a finding, not a clock jump
    assert p._clocks["m"] < year_9999


def test_a_kafka_timestamp_no_event_time_can_have_is_ignored():
    result = pipeline().process([rec('{"model": "m", "features": {"x": 1.0}}', ts=10**16)])  # year 318857
    assert not result.dead_letters and result.event_time_ms == {}


# ------------------------------------------------------------------ collisions
def test_col_a_v_and_col_a_v_never_share_a_key():
    p = pipeline()
    records = [rec(orjson.dumps({"model": model, "model_version": version, "timestamp": T0 + i, "features": {"x": "t" if i else 1.0}}), i)
               for model, version in (("col/a", "v"), ("col", "a/v")) for i in range(2)]
    result = p.process(records)
    firing = [a for a in result.alerts if a["detector"] == Check.TYPE_CHANGE]
    assert len(firing) == 2
    assert len({alert_record(a)[0] for a in firing}) == 2 and len({a["alert_id"] for a in firing}) == 2


def test_a_feature_and_an_output_of_one_name_have_their_own_keys_and_gauges():
    p = pipeline()
    records = [rec(orjson.dumps({"model": "m", "timestamp": T0 + i, "features": {"prediction.score": float(i % 3)},
                                 "prediction": {"score": float(i % 5)}}), i) for i in range(50)]
    result = p.process(records)
    keys = sorted(summary_record(s)[0] for s in result.summaries)
    assert keys == [b"m/unversioned/%70rediction.score", b"m/unversioned/prediction.score"]
    metrics = WorkerMetrics(process_metrics=False)
    metrics.record_batch(result, models=1, features=2)
    labels = {s.labels["feature"] for m in metrics.registry.collect() if m.name == "driftline_feature_missing_ratio"
              for s in m.samples}
    assert labels == {"%70rediction.score", "prediction.score"}


def test_summary_keys_of_a_feature_named_performance_and_of_versions_with_dots_do_not_collide():
    from driftline.detection.published import summary_key

    keys = {
        summary_key({"type": "window_summary", "model": "m", "model_version": "v", "source": "features", "feature": "performance"}),
        summary_key({"type": "performance_summary", "model": "m", "model_version": "v"}),
        summary_key({"type": "version_comparison", "model": "m", "champion": "a..b", "challenger": "c"}),
        summary_key({"type": "version_comparison", "model": "m", "champion": "a", "challenger": "b..c"}),
        summary_key({"type": "window_summary", "model": "m", "model_version": "a..b", "source": "features", "feature": "comparison"}),
    }
    assert len(keys) == 5
    assert alert_key("fraud", "v3", "features", "amount", "psi") == "fraud/v3/amount/psi"  # ordinary names unchanged


# -------------------------------------------------------------------- caps
def test_100000_label_model_names_count_under_max_models():
    p = pipeline(labels=True, max_models=10)
    records = [rec(b'{"model": "m%d", "event_id": "e", "label": 1}' % i, i, topic=LAB) for i in range(100_000)]
    result = p.process(records)
    assert len(p.outcomes) == 10 and p._label_models == {f"m{i}" for i in range(10)}
    assert result.overflow[OVERFLOW_MODEL] == 100_000 - 10
    assert len({m for m, _ in result.labels}) <= 10
    # an inference model of its own still fits only while slots are left
    assert p.process([good(0, model="late")]).overflow[OVERFLOW_MODEL] == 1


def test_versions_beyond_max_models_do_not_reach_the_outcome_monitors():
    p = pipeline(labels=True, max_models=2)
    records = [rec(orjson.dumps({"model": "m", "model_version": f"v{i}", "event_id": f"e{i}", "prediction": 0.5}), i)
               for i in range(50)]
    p.process(records)
    (monitor,) = p.outcomes.values()
    assert set(monitor.versions) == {"v0", "v1"}


# ------------------------------------------------------------------ dead letters
def test_a_dead_letter_bounds_its_key_value_and_headers():
    record = SourceRecord("in", 0, 7, None, b"k" * 900_000, b"v" * 2_000_000,
                          tuple((f"h{i}", b"x" * 10_000) for i in range(20)) + (("h\ud800", None),))
    out = dead_letter_record(record, R.TOO_LARGE, "too large")
    headers = dict(out.headers)
    assert len(out.value) == 64 * 1024 and headers["driftline.value.size"] == b"2000000"
    assert len(out.key) == 16 * 1024 and headers["driftline.key.size"] == b"900000"
    assert sum(len(k) + len(v) for k, v in out.headers) < 70 * 1024
    assert headers["driftline.headers.dropped"] == b"14"
    for name, _ in out.headers:
        name.encode("utf-8")
