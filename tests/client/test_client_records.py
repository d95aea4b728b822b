"""The client's encoders: every record they return decodes cleanly; everything the worker would dead-letter raises."""

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

import driftline.client as client
from driftline.client import RecordError, encode_inference, encode_label
from driftline.client.records import timestamp_ms
from driftline.contract.decode import DecodeError, decode_event
from driftline.contract.event import MAX_EVENT_MS, InferenceEvent
from driftline.contract.label import LabelEvent, decode_label

MAX = 1_000_000


def decode(value: bytes) -> InferenceEvent:
    event = decode_event(value, max_bytes=MAX, record_timestamp_ms=42)
    assert isinstance(event, InferenceEvent), event
    return event


def test_public_api_is_exactly_all():
    public = {n for n in dir(client) if not n.startswith("_") and n not in {"logger", "records", "metrics"}}
    assert public == set(client.__all__)


names = st.text(min_size=1, max_size=20)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=10))
outputs = st.one_of(st.booleans(), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                    st.dictionaries(names, scalars, min_size=1, max_size=4))


@settings(max_examples=300, deadline=None)
@given(model=st.text(min_size=1, max_size=256), version=st.one_of(st.none(), st.text(min_size=1, max_size=256)),
       event_id=st.one_of(st.none(), st.text(max_size=40)), ts=st.one_of(st.none(), st.integers(0, MAX_EVENT_MS)),
       features=st.one_of(st.none(), st.dictionaries(names, scalars, max_size=6)), prediction=st.one_of(st.none(), outputs))
def test_what_the_encoder_accepts_decodes_to_the_same_event(model, version, event_id, ts, features, prediction):
    kw = dict(model=model, model_version=version, event_id=event_id, timestamp=ts, features=features, prediction=prediction)
    if features is None and prediction is None:
        with pytest.raises(RecordError, match="needs 'features' or 'prediction'"):
            encode_inference(**kw)
        return
    event = decode(encode_inference(**kw))
    assert event.model == model
    assert event.model_version == (version or "unversioned")
    assert event.event_id == event_id
    assert event.timestamp_ms == (42 if ts is None else ts)
    assert event.features == features
    if prediction is None:
        assert event.outputs is None
    elif isinstance(prediction, dict):
        assert event.outputs == {f"prediction.{k}": v for k, v in prediction.items()}
    else:
        assert event.outputs == {"prediction": prediction}


@pytest.mark.parametrize("kw, message", [
    (dict(model=None), "'model' is required"),
    (dict(model=""), "'model' must be a non-empty string"),
    (dict(model="m" * 257), "'model' must be"),
    (dict(model=3), "'model' must be"),
    (dict(model_version=""), "'model_version' must be"),
    (dict(model_version=2), "'model_version' must be"),
    (dict(event_id=17), "'event_id' must be a string"),
    (dict(features=[1, 2]), "'features' must be a mapping"),
    (dict(features={1: 2.0}), "not JSON-serializable"),
    (dict(features={"a": object()}), "not JSON-serializable"),
    (dict(prediction={}), "empty mapping"),
    (dict(prediction=[0.1, 0.9]), "'prediction' must be a number"),
    (dict(prediction=np.array([0.1, 0.9])), "'prediction' must be a number"),
    (dict(timestamp=-1), "from 0 to 253402300799999"),
    (dict(timestamp=MAX_EVENT_MS + 1), "from 0 to 253402300799999"),
    (dict(timestamp=float("nan")), "from 0 to 253402300799999"),
    (dict(timestamp=datetime(1969, 12, 31, tzinfo=timezone.utc)), "from 1970 to 9999"),
    (dict(model="\ud800"), "UTF-8"),
    (dict(timestamp=True), "epoch milliseconds or an aware datetime"),
    (dict(timestamp="2025-11-26T10:00:00Z"), "epoch milliseconds or an aware datetime"),
    (dict(timestamp=datetime(2025, 11, 26)), "needs a time zone"),
    (dict(features={"text": "x" * 2000}, max_bytes=1000), "above the limit of 1000"),
])
def test_what_the_worker_would_dead_letter_raises_a_named_error(kw, message):
    args = dict(model="m", features={"a": 1.0}) | kw
    with pytest.raises(RecordError, match=message):
        encode_inference(**args)


def test_non_finite_values_stay_non_finite_not_missing():
    value = encode_inference(model="m", features={"a": float("nan"), "b": float("inf"), "c": None, "d": np.float64("-inf")},
                             prediction=float("nan"))
    event = decode(value)
    assert math.isnan(event.features["a"]) and event.features["b"] == math.inf and event.features["d"] == -math.inf
    assert event.features["c"] is None
    assert math.isnan(event.outputs["prediction"])
    named = decode(encode_inference(model="m", prediction={"p": float("nan"), "label": "x"}))
    assert math.isnan(named.outputs["prediction.p"]) and named.outputs["prediction.label"] == "x"


def test_numpy_values_are_written_as_numbers():
    event = decode(encode_inference(model="m", features={"a": np.float32(1.5), "b": np.int64(3), "c": np.bool_(True)},
                                    prediction=np.float64(0.25)))
    assert event.features == {"a": 1.5, "b": 3, "c": True}
    assert event.outputs == {"prediction": 0.25}


def test_timestamps_from_aware_datetimes_and_float_milliseconds():
    cet = timezone(timedelta(hours=1))
    assert timestamp_ms(datetime(2025, 11, 26, 11, 0, 0, 250000, tzinfo=cet)) == 1764151200250
    assert decode(encode_inference(model="m", features={}, timestamp=1764151200250.9)).timestamp_ms == 1764151200250


def test_output_is_compact_orjson():
    value = encode_inference(model="m", features={"a": 1}, prediction="yes", event_id="e")
    assert value == orjson.dumps({"model": "m", "event_id": "e", "features": {"a": 1}, "prediction": "yes"})


@settings(max_examples=200, deadline=None)
@given(model=st.text(min_size=1, max_size=256), event_id=st.text(min_size=1, max_size=40),
       label=st.one_of(st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
                       st.text(min_size=1, max_size=10)),
       version=st.one_of(st.none(), st.text(min_size=1, max_size=30)), ts=st.one_of(st.none(), st.integers(0, MAX_EVENT_MS)))
def test_labels_decode_to_the_same_label(model, event_id, label, version, ts):
    event = decode_label(encode_label(model=model, event_id=event_id, label=label, model_version=version, timestamp=ts),
                         max_bytes=MAX, record_timestamp_ms=42)
    assert isinstance(event, LabelEvent), event
    assert (event.model, event.event_id, event.model_version) == (model, event_id, version)
    assert event.timestamp_ms == (42 if ts is None else ts)
    expected = ("true" if label else "false") if isinstance(label, bool) else label if isinstance(label, str) else float(label)
    assert event.label == expected


@pytest.mark.parametrize("kw, message", [
    (dict(event_id=""), "'event_id' must be a non-empty string"),
    (dict(event_id=None), "'event_id' must be a non-empty string"),
    (dict(label=None), "'label' must be a finite number"),
    (dict(label=""), "'label' must be a finite number"),
    (dict(label=float("inf")), "'label' must be finite"),
    (dict(label=[1]), "'label' must be a finite number"),
    (dict(model=""), "'model' must be"),
])
def test_invalid_labels_raise(kw, message):
    with pytest.raises(RecordError, match=message):
        encode_label(**(dict(model="m", event_id="e", label=1) | kw))


def test_numpy_labels_are_converted():
    event = decode_label(encode_label(model="m", event_id="e", label=np.int64(1)), max_bytes=MAX)
    assert event.label == 1.0
    assert not isinstance(decode_label(encode_label(model="m", event_id="e", label=np.bool_(False)), max_bytes=MAX),
                          DecodeError)
