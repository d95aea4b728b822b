"""Output size limits and the oversized_output record that replaces what Kafka would refuse."""

from __future__ import annotations

import hashlib

import orjson
from confluent_kafka import KafkaError
from hypothesis import given, settings, strategies as st

from driftline.contract.event import SourceRecord
from driftline.detection.published import OutputRecord, dead_letter_record, encode_json
from driftline.transport.delivery import (PRODUCER_MAX_BYTES, RECORD_MARGIN, OutputLimits, is_fenced, is_record_error,
                                          is_size_error, output_fields, oversized_output, producer_limit, record_size)

ALERT = {"schema_version": 1, "alert_id": "a" * 32, "status": "firing", "model": "m", "model_version": "v1",
         "feature": "f" * 900_000, "kind": "data_drift", "detector": "psi", "severity": "warning",
         "summary": "s" * 900_000, "window": {"topic": "in", "partition": 3, "first_offset": 10, "last_offset": 20},
         "event_time": "2025-01-01T00:00:00Z", "details": {"x": 1}}


def test_producer_limit_follows_the_kafka_setting():
    assert producer_limit({}) == PRODUCER_MAX_BYTES
    assert producer_limit({"message.max.bytes": "20000"}) == 20000
    assert producer_limit({"message.max.bytes": "nope"}) == PRODUCER_MAX_BYTES


def test_record_size_counts_key_value_and_headers():
    assert record_size(b"k", b"v" * 10, [("h", b"12")]) == 1 + 10 + 1 + 2 + 8
    assert record_size(None, None, None) == 0


def test_limits_per_topic_and_learned_from_refusals():
    limits = OutputLimits(1_000_000)
    small = OutputRecord(b"k", b"x" * 1000, [])
    big = OutputRecord(b"k", b"x" * (1_000_000 - RECORD_MARGIN), [])
    assert limits.fits("t", small) and not limits.fits("t", big)
    limits.set_topic("t", 50_000)
    assert limits.limit("t") == 50_000 and limits.limit("other") == 1_000_000
    # a broker refused a 30,000-byte record as too large: that size and larger are replaced from now on
    limits.refused("u", b"k", b"y" * 30_000, [], too_large=True)
    assert not limits.fits("u", OutputRecord(b"k", b"z" * 30_000, []))
    assert limits.fits("u", OutputRecord(b"k", b"z" * 20_000, []))
    # refused for what it is (not its size): that record is recognised, the others pass, until a commit
    limits.refused("t", b"key", b"v" * 10, [], too_large=False)
    assert not limits.fits("t", OutputRecord(b"key", b"w" * 10, []))
    assert limits.fits("t", OutputRecord(b"key2", b"w" * 10, []))
    limits.forget_refused()
    assert limits.fits("t", OutputRecord(b"key", b"w" * 10, []))


def test_an_oversized_alert_becomes_a_small_record_that_says_what_it_was():
    key = ("m/v1/" + ALERT["feature"] + "/data_drift").encode()
    value = encode_json(ALERT)
    out = oversized_output("alert", "driftline.alerts", OutputRecord(key, value, [("content-type", b"application/json"),
                                                                              ("driftline.worker", b"w1")]),
                           limit=1_000_000, reason="too large", fields=output_fields(ALERT))
    assert record_size(*out) < 8 * 1024
    doc = orjson.loads(out.value)
    assert doc["type"] == "oversized_output" and doc["output"] == "alert" and doc["topic"] == "driftline.alerts"
    assert doc["size"] == record_size(key, value, [("content-type", b"application/json"), ("driftline.worker", b"w1")])
    assert doc["sha256"] == hashlib.sha256(value).hexdigest() and doc["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert doc["key_bytes"] == len(key) and doc["value_bytes"] == len(value) and doc["limit"] == 1_000_000
    f = doc["fields"]
    assert (f["alert_id"], f["status"], f["model"], f["detector"]) == ("a" * 32, "firing", "m", "psi")
    assert f["window"]["partition"] == 3 and f["feature"].startswith("fff") and "900000 chars" in f["feature"]
    assert "status" not in doc  # alert readers (notify, the peers' feed, status) skip it
    assert len(out.key) <= 1024 and out.key.endswith(hashlib.sha256(key).hexdigest().encode())
    assert dict(out.headers)["driftline.worker"] == b"w1" and dict(out.headers)["driftline.oversized"] == b"true"


def test_short_keys_are_kept_and_distinct_long_fields_stay_distinct():
    a = oversized_output("window_summary", "m", OutputRecord(b"m/v/f", b"x", []), limit=10, reason="r",
                         fields={"feature": "q" * 1000 + "a"})
    b = oversized_output("window_summary", "m", OutputRecord(b"m/v/f", b"x", []), limit=10, reason="r",
                         fields={"feature": "q" * 1000 + "b"})
    assert a.key == b"m/v/f"
    assert orjson.loads(a.value)["fields"]["feature"] != orjson.loads(b.value)["fields"]["feature"]


def test_an_oversized_dead_letter_keeps_its_driftline_headers_and_drops_the_records_own():
    rec = SourceRecord("in", 1, 42, 5, b"k", b"x" * 2_000_000, (("trace", b"t" * 500_000),))
    dl = dead_letter_record(rec, "too_large", "2000000 bytes")
    out = oversized_output("dead_letter", "dead", dl, limit=1_000_000, reason="too large",
                           fields={"reason": "too_large", "source_offset": 42})
    headers = dict(out.headers)
    assert "trace" not in headers and headers["driftline.reason"] == b"too_large"
    assert headers["driftline.source.offset"] == b"42" and record_size(*out) < 8 * 1024


@settings(max_examples=25, deadline=None)
@given(key=st.one_of(st.none(), st.binary(max_size=50)),
       fields=st.dictionaries(st.text(max_size=20), st.one_of(
           st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(),
           st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5)), max_size=8),
       what=st.text(max_size=20), reason=st.text(max_size=20))
def test_the_replacement_is_always_small_and_valid_json(key, fields, what, reason):
    # hypothesis brings the odd characters and numbers; these bring the sizes
    key = (key or b"") * 200
    fields = {**fields, "surrogate": "\ud800" * 10, "huge": 10 ** 400, "long": "\u00e9" * 100_000,
              "nested": {str(i): "x" * 1000 for i in range(100)}, **{f"k{i}": i for i in range(50)}}
    reason = reason * 1000
    out = oversized_output(what, "t", OutputRecord(key, b"v" * 100, [("driftline.error", b"e" * 5000)]),
                           limit=1000, reason=reason, fields=fields)
    assert record_size(*out) < 32 * 1024
    assert orjson.loads(out.value)["type"] == "oversized_output"


def test_error_classes():
    assert is_size_error(KafkaError.MSG_SIZE_TOO_LARGE) and is_record_error(KafkaError.MSG_SIZE_TOO_LARGE)
    assert is_record_error(KafkaError.INVALID_RECORD) and not is_size_error(KafkaError.INVALID_RECORD)
    assert not is_record_error(KafkaError._TRANSPORT) and not is_record_error(KafkaError._MSG_TIMED_OUT)
    assert is_fenced(KafkaError(KafkaError._FENCED)) and is_fenced(KafkaError(KafkaError.PRODUCER_FENCED))
    assert not is_fenced(KafkaError(KafkaError._TIMED_OUT)) and not is_fenced("x")
