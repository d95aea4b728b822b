"""decode_batch gives every record exactly decode_event's answer, whatever the batch mixes."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from driftline.contract.decode import DecodeError, decode_batch, decode_event, flatten_prediction
from driftline.contract.event import MAX_EVENT_MS

_names = st.sampled_from(["m", "n", "", "x" * 300, "\ud800", "a~0123456789ab", "é"])
_text = st.one_of(_names, st.text(max_size=20), st.just("y" * 400), st.just("id~0123456789ab"))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True), _text)
_any = st.one_of(_scalar, st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from("ab"), _scalar, max_size=2))
_stamp = st.one_of(st.none(), st.integers(min_value=-5, max_value=MAX_EVENT_MS + 5), st.sampled_from(
    [MAX_EVENT_MS, 0, 1.5, True, "2023-11-14T22:13:20.123Z", "2023-11-14", "x"]))
_features = st.one_of(st.none(), st.just([1]), st.dictionaries(st.sampled_from(["a", "b", "c", "\ud800"]), _scalar, max_size=3))
_prediction = st.one_of(st.none(), _scalar, st.just({}), st.just([1]),
                        st.dictionaries(st.sampled_from(["p", "q"]), _scalar, min_size=1, max_size=2))


@st.composite
def _record(draw) -> bytes | None:
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.sampled_from([None, b"", b"{", b"[1,2]", b"null", b'"x"', b"\xff\xfe", b'{"model": NaN}',
                                     b'{"model":"m","features":{"a":NaN}}', b"{}" + b" " * 300]))
    doc: dict = {}
    for field, strategy in (("model", st.one_of(_names, _any)), ("model_version", st.one_of(_names, _any)),
                            ("event_id", st.one_of(_text, _any)), ("timestamp", _stamp),
                            ("features", _features), ("prediction", _prediction)):
        if draw(st.booleans()) or (field == "model" and shape > 2):
            doc[field] = draw(strategy)
    # json.dumps writes lone surrogates as \\ud800 escapes and NaN as a literal, as Python producers do
    return json.dumps(doc).encode()


def _expected(value, ts, max_bytes, max_text):
    got = decode_event(value, max_bytes=max_bytes, record_timestamp_ms=ts, max_text_chars=max_text)
    return got if type(got) is DecodeError else tuple(got)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_record(), st.one_of(st.none(), st.integers(0, MAX_EVENT_MS))), max_size=12),
       st.sampled_from([(1_000_000, 256), (200, 20)]))
def test_each_record_gets_what_decode_event_gives_it(batch, limits):
    max_bytes, max_text = limits
    values = [v for v, _ in batch]
    stamps = [t for _, t in batch]
    decoded, dead = decode_batch(values, stamps, max_bytes=max_bytes, max_text_chars=max_text)
    got = {i: e for i, e in dead}
    for k, i in enumerate(decoded.index):
        got[i] = (decoded.models[k], decoded.versions[k], decoded.event_ids[k], decoded.times[k],
                  decoded.features[k], flatten_prediction(decoded.predictions[k]))
    assert sorted(got) == list(range(len(values)))
    assert decoded.index == sorted(decoded.index) and [i for i, _ in dead] == sorted(i for i, _ in dead)
    for i, (value, ts) in enumerate(batch):
        assert got[i] == _expected(value, ts, max_bytes, max_text), value


def test_a_batch_of_ordinary_records_is_decoded_without_odd_ones():
    values = [json.dumps({"model": "m", "event_id": str(i), "timestamp": 1_700_000_000_000 + i,
                          "features": {"a": i, "b": "x"}, "prediction": {"score": 0.5}}).encode() for i in range(50)]
    decoded, dead = decode_batch(values, [None] * 50, max_bytes=1000)
    assert dead == [] and decoded.index == list(range(50))
    assert decoded.event_ids[7] == "7" and decoded.times[3] == 1_700_000_000_003
    assert decoded.predictions[0] == {"score": 0.5} and decoded.features[49] == {"a": 49, "b": "x"}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=-3, max_value=MAX_EVENT_MS + 3) | st.sampled_from([0, MAX_EVENT_MS]),
                          st.one_of(st.none(), _text), st.sampled_from(["m", "n"]), st.sampled_from([None, "v1"])),
                min_size=1, max_size=8))
def test_batches_that_differ_only_in_one_field_are_checked_per_record(rows):
    """Ordinary batches take the whole-batch checks: an out-of-range timestamp or an id needing its
    bounded form must still be found among many good ones."""
    values = [json.dumps({"model": m, "model_version": v, "event_id": e, "timestamp": t, "features": {"a": 1}}).encode()
              for t, e, m, v in rows]
    decoded, dead = decode_batch(values, [None] * len(values), max_bytes=10_000, max_text_chars=20)
    got = {i: e for i, e in dead}
    for k, i in enumerate(decoded.index):
        got[i] = (decoded.models[k], decoded.versions[k], decoded.event_ids[k], decoded.times[k],
                  decoded.features[k], flatten_prediction(decoded.predictions[k]))
    for i, value in enumerate(values):
        assert got[i] == _expected(value, None, 10_000, 20)
