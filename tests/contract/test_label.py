import pytest

from driftline.contract.decode import DeadLetterReason as R
from driftline.contract.decode import DecodeError
from driftline.contract.label import LabelEvent, decode_label, label_text


def dec(value):
    return decode_label(value, max_bytes=1000, record_timestamp_ms=77)


@pytest.mark.parametrize("value, reason", [
    (None, R.EMPTY_VALUE),
    (b"x" * 1001, R.TOO_LARGE),
    (b"{nope", R.INVALID_JSON),
    (b"[]", R.NOT_AN_OBJECT),
    (b'{"event_id": "e", "label": 1}', R.MISSING_MODEL),
    (b'{"model": 3, "event_id": "e", "label": 1}', R.INVALID_MODEL),
    (b'{"model": "m", "model_version": "", "event_id": "e", "label": 1}', R.INVALID_MODEL_VERSION),
    (b'{"model": "m", "label": 1}', R.MISSING_EVENT_ID),
    (b'{"model": "m", "event_id": 4, "label": 1}', R.INVALID_EVENT_ID),
    (b'{"model": "m", "event_id": "e"}', R.INVALID_LABEL),
    (b'{"model": "m", "event_id": "e", "label": [1]}', R.INVALID_LABEL),
    (b'{"model": "m", "event_id": "e", "label": NaN}', R.INVALID_LABEL),
    (b'{"model": "m", "event_id": "e", "label": 1, "timestamp": "soon"}', R.INVALID_TIMESTAMP),
    (b'{"model": "m", "event_id": "e", "label": 1' + b"0" * 400 + b'}', R.INVALID_LABEL),
    (b'{"model": "m", "event_id": "e", "label": -1e400}', R.INVALID_LABEL),
    (b'{"model": "m\\ud800", "event_id": "e", "label": 1}', R.INVALID_MODEL),
    (b'{"model": "m", "event_id": "e", "label": 1, "timestamp": "0001-01-01T00:00:00Z"}', R.INVALID_TIMESTAMP),
    ('{"model": "m", "event_id": "e", "label": 1}'.encode("utf-32"), R.INVALID_JSON),
])
def test_each_label_problem_has_its_reason(value, reason):
    result = dec(value)
    assert isinstance(result, DecodeError) and result.reason == reason and result.detail


def test_valid_labels():
    assert dec(b'{"model": "m", "event_id": "e1", "label": 1}') == LabelEvent("m", None, "e1", 1.0, 77)
    assert dec(b'{"model": "m", "model_version": "v2", "event_id": "e1", "label": true, "timestamp": 5}') == \
        LabelEvent("m", "v2", "e1", "true", 5)
    assert dec(b'{"model": "m", "event_id": "e1", "label": "fraud"}').label == "fraud"


def test_label_and_class_names_agree():
    assert label_text(1.0) == label_text(1) == label_text("1") == "1"
    assert label_text(True) == "true" and label_text(0.25) == "0.25"


def test_string_labels_and_event_ids_are_kept_bounded_and_valid_utf8():
    label = dec(b'{"model": "m", "event_id": "' + b"e" * 300 + b'", "label": "a\\ud800"}')
    assert len(label.event_id) == 256 and label.label.startswith("a\\ud800~")
    label.label.encode("utf-8")
