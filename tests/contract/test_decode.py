import orjson
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from driftline.contract.decode import DeadLetterReason as R
from driftline.contract.decode import DecodeError, decode_event, parse_timestamp
from driftline.contract.event import InferenceEvent
from driftline.contract.schema import InferenceRecord


def dec(value, **kw):
    return decode_event(value, max_bytes=kw.pop("max_bytes", 10_000), record_timestamp_ms=kw.pop("ts", 123))


@pytest.mark.parametrize("value, reason", [
    (None, R.EMPTY_VALUE),
    (b"", R.EMPTY_VALUE),
    (b"x" * 10_001, R.TOO_LARGE),
    (b"{not json", R.INVALID_JSON),
    (b"\xff\xfe", R.INVALID_JSON),
    (b"[1, 2]", R.NOT_AN_OBJECT),
    (b'"text"', R.NOT_AN_OBJECT),
    (b'{"features": {"a": 1}}', R.MISSING_MODEL),
    (b'{"model": 7, "features": {"a": 1}}', R.INVALID_MODEL),
    (b'{"model": "", "features": {"a": 1}}', R.INVALID_MODEL),
    (b'{"model": "m", "model_version": 2, "features": {}}', R.INVALID_MODEL_VERSION),
    (b'{"model": "m", "event_id": 5, "features": {}}', R.INVALID_EVENT_ID),
    (b'{"model": "m", "timestamp": "yesterday", "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": "2024-01-01T00:00:00", "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "features": [1, 2]}', R.INVALID_FEATURES),
    (b'{"model": "m", "prediction": [0.1, 0.9]}', R.INVALID_PREDICTION),
    (b'{"model": "m", "prediction": {}}', R.INVALID_PREDICTION),
    (b'{"model": "m"}', R.NO_PAYLOAD),
    # issue 11: other encodings than UTF-8, lone surrogates in names, event times outside 1970..9999
    ('{"model": "m", "features": {"a": 1}}'.encode("utf-16"), R.INVALID_JSON),
    ('{"model": "m", "features": {"a": 1}}'.encode("utf-16-le"), R.INVALID_JSON),
    ('{"model": "m", "features": {"a": 1}}'.encode("utf-32"), R.INVALID_JSON),
    ('{"model": "m", "features": {"a": 1}}'.encode("utf-8-sig"), R.INVALID_JSON),
    (b'{"model": "m", "features": {"a": 1' + b"0" * 5000 + b'}}', R.INVALID_JSON),
    (b"[" * 5000 + b"]" * 5000, R.INVALID_JSON),
    (b'{"model": "m\\ud800", "features": {"a": 1}}', R.INVALID_MODEL),
    (b'{"model": "m", "model_version": "\\udfff", "features": {"a": 1}}', R.INVALID_MODEL_VERSION),
    (b'{"model": "m", "timestamp": "0001-01-01T00:00:00Z", "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": "1969-12-31T23:59:59.999Z", "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": "9999-12-31T23:59:59-01:00", "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": -1, "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": 253402300800000, "features": {}}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "timestamp": 1e400, "features": {}}', R.INVALID_TIMESTAMP),
])
def test_each_structural_problem_has_its_reason(value, reason):
    result = dec(value)
    assert isinstance(result, DecodeError)
    assert result.reason == reason and result.detail


def test_every_reason_is_tested():
    from test_label import test_each_label_problem_has_its_reason as labels

    listed = {r for _, r in test_each_structural_problem_has_its_reason.pytestmark[0].args[1]}
    listed |= {r for _, r in labels.pytestmark[0].args[1]}
    assert listed == set(R.ALL) - {R.PROCESSING_ERROR}  # the worker's, not the decoder's


def test_valid_record_with_defaults_and_record_timestamp():
    ev = dec(b'{"model": "m", "features": {"a": 1.5, "b": "x", "c": null, "d": true}, "prediction": 0.3}')
    assert isinstance(ev, InferenceEvent)
    assert ev.model_version == "unversioned" and ev.timestamp_ms == 123
    assert ev.features == {"a": 1.5, "b": "x", "c": None, "d": True}
    assert ev.outputs == {"prediction": 0.3}


def test_named_outputs_and_rfc3339_timestamp():
    ev = dec(b'{"model": "m", "model_version": "v2", "timestamp": "2023-11-14T22:13:20.5+01:00", "prediction": {"p": 0.1, "label": "yes"}}')
    assert ev.timestamp_ms == 1_700_000_000_500 - 3_600_000
    assert ev.outputs == {"prediction.p": 0.1, "prediction.label": "yes"}
    assert ev.features is None


def test_nan_and_infinity_literals_are_accepted_for_data_quality():
    ev = dec(b'{"model": "m", "features": {"a": NaN, "b": Infinity}}')
    assert isinstance(ev, InferenceEvent)
    assert ev.features["a"] != ev.features["a"] and ev.features["b"] == float("inf")


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
names = st.text(min_size=1, max_size=8)
records = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.text(max_size=6), st.integers(-5, 5), st.none()),
        "model_version": st.one_of(st.text(max_size=4), st.integers(-5, 5)),
        "event_id": st.one_of(st.text(max_size=4), st.integers(-5, 5)),
        "timestamp": st.one_of(st.integers(0, 2 * 10**12), st.just("2024-05-01T10:00:00Z"), st.just("soon")),
        "features": st.one_of(st.dictionaries(names, scalars, max_size=4), st.lists(st.integers(-5, 5), max_size=2), st.integers(-5, 5)),
        "prediction": st.one_of(scalars, st.dictionaries(names, scalars, max_size=3), st.lists(st.integers(-5, 5), max_size=2)),
    },
)


@settings(max_examples=400, deadline=None)
@given(records)
def test_decoder_agrees_with_the_schema_model(doc):
    """What the published schema accepts, the decoder accepts, and vice versa."""
    raw = orjson.dumps(doc)
    decoded = decode_event(raw, max_bytes=100_000, record_timestamp_ms=1)
    try:
        InferenceRecord.model_validate_json(raw)
        schema_ok = True
    except ValidationError:
        schema_ok = False
    assert isinstance(decoded, InferenceEvent) == schema_ok, (doc, decoded)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw):
    assert isinstance(decode_event(raw, max_bytes=150), (InferenceEvent, DecodeError))


def test_huge_numbers_and_lone_surrogates_in_values_decode():
    ev = dec(b'{"model": "m", "event_id": "e\\ud800", "features": {"a": 1' + b"0" * 400 + b', "\\ud800": "x\\udfff"}}')
    assert isinstance(ev, InferenceEvent)
    assert ev.features["a"] == 10**400 and ev.features["\ud800"] == "x\udfff"  # the monitor bounds them
    assert ev.event_id.startswith("e\\ud800~") and ev.event_id.encode("utf-8")


def test_last_accepted_event_times():
    assert dec(b'{"model": "m", "timestamp": "9999-12-31T23:59:59.999Z", "features": {}}').timestamp_ms == 253402300799999
    assert dec(b'{"model": "m", "timestamp": "1970-01-01T00:00:00Z", "features": {}}').timestamp_ms == 0
    assert dec(b'{"model": "m", "features": {}}', ts=10**16).timestamp_ms is None  # a Kafka timestamp beyond 9999


@pytest.mark.parametrize("text", [" 2023-11-14T22:13:20Z", "2026-W01-1T00:00:00Z", "20260101T000000Z",
                                  "2023-11-14T22:13:20+0000", "2023-11-14T22:13:20", "\u0662\u0660\u0662\u0663-11-14T22:13:20Z",
                                  "2023-11-14T22:13:20\x00Z", "2023-11-14T22:13:20Z\n", "2023-11-14T23:59:60Z",
                                  "2023-11-14T22:13:20+24:00", "2023-11-14"])
def test_only_rfc_3339_date_times_are_timestamps(text):
    assert parse_timestamp(text) is None


@pytest.mark.parametrize("text, ms", [("2023-11-14T22:13:20.123Z", 1700000000123), ("2023-11-14t22:13:20z", 1700000000000),
                                      ("2023-11-14 22:13:20+05:30", 1699980200000),
                                      ("2023-11-14T22:13:20.123456789-00:00", 1700000000123)])
def test_rfc_3339_forms_are_timestamps(text, ms):
    assert parse_timestamp(text) == ms
