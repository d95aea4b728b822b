"""The whole pure path under hostile records: decode → pipeline → every output as the worker publishes it.

Raw record bytes are generated from hostile JSON text (integers of any size,
lone surrogates written as ``\\ud800`` escapes, control characters, long
strings, deep nesting, duplicate keys, names of the contract's own fields and
of driftline's reserved names, UTF-16 / UTF-32 encodings, random bytes), as
inference records and label records, mixed into a stream of valid ones that
makes windows close, alerts fire, labels join and two versions be compared.
Whatever comes, nothing raises, every inference record is a dead letter or a
counted event, and every published key and value is valid UTF-8 (values JSON)
of bounded size.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from driftline.contract.decode import DeadLetterReason
from driftline.contract.event import SourceRecord
from driftline.detection.outcomes import OutcomeSettings
from driftline.detection.pipeline import Pipeline, PipelineSettings
from driftline.detection.published import alert_record, dead_letter_record, summary_record
from driftline.detection.settings import MonitorSettings
from driftline.observability.metrics import WorkerMetrics

IN, LAB = "in", "lab"
T0 = 1_700_000_000_000
#: with the default name and category limits an alert or summary stays far below this (see test_output_bounds)
OUTPUT_BOUND = 64 * 1024
DEAD_LETTER_BOUND = 64 * 1024 + 16 * 1024 + 64 * 1024 + 4 * 1024


def _settings() -> PipelineSettings:
    monitor = MonitorSettings.calibrated(false_alarm_rate=1e-3, warmup=30, window_events=40, window_seconds=5.0,
                                         max_features=20, max_categories=8)
    outcomes = OutcomeSettings(labels_topic=LAB, join_window_ms=2_000.0, max_pending=200, false_alarm_rate=1e-3,
                               window_events=40, window_seconds=5.0, label_warmup=20, block=4, min_window_values=5,
                               window_alpha=0.05)
    return PipelineSettings(monitor=monitor, max_models=1000, cooldown_seconds=0.5, resolve_after_seconds=1.0,
                            outcomes=outcomes, max_event_time_skew_seconds=60.0)


def _base_stream() -> list[tuple[str, bytes, int | None]]:
    """Valid traffic: two versions scoring the same events, a drift half-way, labels a little later."""
    rng = np.random.default_rng(3)
    out = []
    for i in range(240):
        t = T0 + i * 100
        x = float(rng.normal(0 if i < 120 else 3))
        for version in ("v1", "v2"):
            score = float(1 / (1 + np.exp(-x))) if version == "v1" else float(rng.random())
            doc = {"model": "m", "model_version": version, "event_id": f"e{i}", "timestamp": t,
                   "features": {"x": x, "c": "ab"[i % 2] if i < 120 else "z"}, "prediction": score}
            out.append((IN, orjson.dumps(doc), t))
        if i >= 5:
            out.append((LAB, orjson.dumps({"model": "m", "event_id": f"e{i - 5}", "label": int(rng.random() < 0.5),
                                           "timestamp": t}), t))
    return out


BASE = _base_stream()

# ------------------------------------------------------------ hostile JSON text
_PIECES = ["\\ud800", "\\udfff", "\\udbff\\udfff", "\\ud83d\\ude00", "\\u0000", "\\n", "\\r", "\\u001f", "\\u007f",
           "\\\\", '\\"', "/", "%", "%2F", "..", ".", "~0123456789ab", "__other__", "prediction", "prediction.",
           "performance", "comparison", "timestamp", "\u2028", "é", "𝄞", "|", " "]
piece = st.one_of(st.sampled_from(_PIECES),
                  st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\'), max_size=4))
short_string = st.lists(piece, max_size=6).map(lambda ps: '"' + "".join(ps) + '"')
long_string = st.tuples(st.sampled_from(["x", "\\u0001", "\\ud800", "é"]), st.sampled_from([257, 1025, 40_000, 150_000])
                        ).map(lambda t: '"' + t[0] * t[1] + '"')
string = st.one_of(short_string, short_string, short_string, long_string)
number = st.one_of(
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1" + "0" * 400, "-" + "9" * 401, "18446744073709551616", "-9223372036854775809",
                     "1" + "0" * 5000, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "0.0", "-0", "1e-400"]),
)
scalar = st.one_of(number, string, st.sampled_from(["true", "false", "null"]))
deep = st.integers(1, 1100).map(lambda d: "[" * d + "]" * d)


def _obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


json_value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(string, inner), max_size=3).map(_obj)), max_leaves=6)
value = st.one_of(scalar, scalar, scalar, json_value, deep)
features = st.lists(st.tuples(st.one_of(string, st.sampled_from(['"x"', '"c"', '"prediction"', '"prediction.score"'])),
                              value), max_size=5).map(_obj)
prediction = st.one_of(scalar, st.lists(st.tuples(string, value), max_size=3).map(_obj), json_value)
model = st.one_of(st.just('"m"'), st.just('"m2"'), string, number, st.just("null"))
timestamp = st.one_of(number, st.sampled_from(['"0001-01-01T00:00:00Z"', '"1969-12-31T23:59:59Z"', '"9999-12-31T23:59:59Z"',
                                               '"9999-12-31T23:59:59-12:00"', '"2023-11-14T22:13:20Z"', "253402300800000",
                                               "999999999999999", "-1", str(T0 + 10**9)]), string)
field = st.one_of(
    st.tuples(st.just('"model"'), model), st.tuples(st.just('"model_version"'), st.one_of(string, st.just('"v1"'))),
    st.tuples(st.just('"event_id"'), st.one_of(string, st.just('"e7"'), number)),
    st.tuples(st.just('"timestamp"'), timestamp), st.tuples(st.just('"features"'), features),
    st.tuples(st.just('"prediction"'), prediction), st.tuples(st.just('"label"'), value),
    st.tuples(string, value),
)
# mostly records that get past the structural checks (so their values reach the monitors), some that do not;
# duplicate keys and the contract's field names as feature names included
good_model = st.sampled_from(['"m"', '"m"', '"m2"', '"m/x"', '"m\\ud800"', '"m\\n"', '"' + "m" * 300 + '"'])
good_version = st.sampled_from(['"v1"', '"v2"', '"a..b"', '"v/1"', '"v\\udfff"', '"performance"', "null"])
document = st.one_of(
    st.tuples(st.tuples(st.just('"model"'), good_model), st.tuples(st.just('"model_version"'), good_version),
              st.tuples(st.just('"event_id"'), st.one_of(st.sampled_from(['"e7"', '"e8"', "null"]), string)),
              st.one_of(st.just(()), st.tuples(st.just('"timestamp"'), timestamp)),
              st.tuples(st.just('"features"'), features), st.tuples(st.just('"prediction"'), prediction),
              st.tuples(st.just('"label"'), value), st.lists(field, max_size=2),
              ).map(lambda t: _obj([p for p in t[:3] if p] + ([t[3]] if t[3] else []) + list(t[4:7]) + list(t[7]))),
    st.tuples(st.tuples(st.just('"model"'), model), st.lists(field, max_size=7)).map(lambda t: _obj([t[0], *t[1]])),
)
encoded = st.one_of(
    document.map(str.encode),
    document.map(str.encode),
    document.map(str.encode),
    document.map(str.encode),
    document.map(str.encode),
    st.tuples(document, st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-32-be", "utf-8-sig"])).map(
        lambda t: t[0].encode(t[1])),
    st.binary(max_size=64),
    st.sampled_from([b"", b"null", b"[]", b'"x"', b"{}", b"\xff\xfe{", b"{" * 2000]),
)
kafka_ts = st.one_of(st.none(), st.integers(-10**13, 10**16), st.just(T0), st.just(T0 + 10**10))
hostile = st.lists(st.tuples(st.sampled_from([IN, IN, LAB]), encoded, kafka_ts, st.integers(0, len(BASE))),
                   min_size=1, max_size=25)


def _stream(extra) -> list[SourceRecord]:
    items = [(topic, value, ts) for topic, value, ts in BASE]
    for topic, value, ts, at in sorted(extra, key=lambda e: -e[3]):
        items.insert(at, (topic, value, ts))
    offsets = {IN: 0, LAB: 0}
    records = []
    for topic, value, ts in items:
        records.append(SourceRecord(topic, 0, offsets[topic], ts, b"m", value))
        offsets[topic] += 1
    return records


def _utf8_json(data: bytes) -> object:
    return json.loads(data.decode("utf-8"))  # strict: no lone surrogates, no other encoding


def _check_state_text(obj, seen=None, depth=0) -> None:
    """Every string held in the pipeline's state is valid UTF-8 and bounded (a checkpoint can store it)."""
    seen = set() if seen is None else seen
    if depth > 40 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        obj.encode("utf-8")
        assert len(obj) <= 20_000, len(obj)
        return
    if isinstance(obj, (int, float, bool, bytes, type(None), np.ndarray, np.generic)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_state_text(k, seen, depth + 1)
            _check_state_text(v, seen, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_state_text(v, seen, depth + 1)
        return
    if type(obj).__module__.startswith("driftline."):
        slots = [n for c in type(obj).__mro__ for n in getattr(c, "__slots__", ())]
        attrs = list(getattr(obj, "__dict__", {}).values()) + [getattr(obj, n, None) for n in slots]
        for v in attrs:
            _check_state_text(v, seen, depth + 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile)
def test_hostile_records_never_raise_and_every_output_fits(extra):
    records = _stream(extra)
    pipeline = Pipeline(_settings(), clock=lambda: T0 / 1000.0)
    metrics = WorkerMetrics(process_metrics=False)
    alerts, summaries, dead, events = [], [], [], 0
    for part in (records[:200], records[200:450], records[450:]):
        result = pipeline.process(part)
        metrics.record_batch(result, models=pipeline.model_count, features=pipeline.feature_count)
        alerts += result.alerts
        summaries += result.summaries
        dead += result.dead_letters
        events += sum(result.events.values())
        assert not result.overflow.get("model")

    assert alerts and summaries  # the valid traffic keeps the whole path busy
    inference_records = sum(1 for r in records if r.topic == IN)
    assert events + sum(1 for d in dead if d.record.topic == IN) == inference_records
    for output, encode in [(a, alert_record) for a in alerts] + [(s, summary_record) for s in summaries]:
        key, value = encode(output)
        key.decode("utf-8")
        assert len(value) < OUTPUT_BOUND, (len(value), output.get("feature"))
        assert isinstance(_utf8_json(value), dict)
    for dl in dead:
        assert dl.reason in DeadLetterReason.ALL
        out = dead_letter_record(dl.record, dl.reason, dl.detail)
        size = len(out.key or b"") + len(out.value or b"") + sum(len(k) + len(v) for k, v in out.headers)
        assert size < DEAD_LETTER_BOUND
        for name, header in out.headers:
            name.encode("utf-8")
            assert isinstance(header, bytes)
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            for label in sample.labels.values():
                label.encode("utf-8")
                assert len(label) <= 4 * 256
    _check_state_text(pipeline.snapshot(IN, 0, 10**6))
    _check_state_text(pipeline.snapshot(LAB, 0, 10**6))
