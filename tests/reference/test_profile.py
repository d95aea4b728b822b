"""Reference profiles: merging shards equals one pass; serialisation round-trips; bad input is refused."""

import base64

import numpy as np
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from driftline.contract.event import InferenceEvent
from driftline.errors import ProfileError
from driftline.reference.builder import ProfileBuilder
from driftline.reference.profile import (
    MAX_PROFILE_CATEGORIES, OTHER, PROFILE_KLL_K, FeatureProfile, ReferenceProfile, fold_categories,
)

numbers = st.one_of(st.none(), st.floats(-1e12, 1e12), st.integers(-10**6, 10**6),
                    st.sampled_from([float("nan"), float("inf"), -float("inf")]))
labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]), st.booleans())
# Each feature keeps one type (shards of one table agree on it); wrong-type
# values are covered by test_values_are_classified_like_the_monitor.
feature_rows = st.fixed_dictionaries({}, optional={"x": numbers, "y": numbers, "z": numbers, "c": labels})
rows = st.lists(st.tuples(feature_rows, st.one_of(st.none(), st.floats(0, 1))), min_size=1, max_size=120)


def _events(items):
    return [InferenceEvent("m", "v1", None, None, feats, None if pred is None else {"prediction": pred})
            for feats, pred in items]


def _profile(items):
    b = ProfileBuilder()
    b.add(_events(items))
    (p,) = b.result()
    return p


def _same(a: ReferenceProfile, b: ReferenceProfile, *, exact_quantiles: bool) -> None:
    assert (a.records, a.source_records) == (b.records, b.source_records)
    assert set(a.features) == set(b.features)
    for key, fa in a.features.items():
        fb = b.features[key]
        assert (fa.kind, fa.records, fa.count, fa.non_finite, fa.type_mismatch) == \
               (fb.kind, fb.records, fb.count, fb.non_finite, fb.type_mismatch), key
        assert fa.categories == fb.categories
        ma, mb = fa.moments, fb.moments
        assert ma.n == mb.n
        if ma.n:
            scale = max(1.0, abs(ma.mean), ma.max - ma.min)
            assert ma.mean == pytest.approx(mb.mean, abs=1e-9 * scale)
            assert ma.m2 == pytest.approx(mb.m2, rel=1e-9, abs=1e-6 * scale * scale)
            assert (ma.min, ma.max) == (mb.min, mb.max)
        if fa.sketch is not None and not fa.sketch.is_empty():
            probs = [0.1, 0.5, 0.9]
            qa, qb = fa.sketch.get_quantiles(probs), fb.sketch.get_quantiles(probs)
            if exact_quantiles:  # fewer values than k: sketches are exact
                assert qa == qb


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 5))
def test_merging_shards_equals_one_pass(items, shards):
    cuts = np.linspace(0, len(items), shards + 1).astype(int)
    parts = [items[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    merged = _profile(parts[0])
    for part in parts[1:]:
        merged = merged.merge(_profile(part))
    _same(merged, _profile(items), exact_quantiles=True)
    assert merged.id == _profile(items).id == _profile(list(reversed(items))).id


@settings(max_examples=60, deadline=None)
@given(rows)
def test_serialisation_round_trips_byte_for_byte(items):
    p = _profile(items)
    data = p.to_bytes()
    q = ReferenceProfile.from_bytes(data)
    assert q.id == p.id and q.to_bytes() == data
    _same(p, q, exact_quantiles=True)


def test_large_shards_merge_within_rank_error():
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=300_000)
    one = ProfileBuilder()
    one.add(InferenceEvent("m", "v1", None, None, {"x": float(v)}, None) for v in x)
    shards = []
    for part in np.array_split(x, 3):
        b = ProfileBuilder()
        b.add(InferenceEvent("m", "v1", None, None, {"x": float(v)}, None) for v in part)
        shards.append(b.result()[0])
    merged = shards[0].merge(shards[1]).merge(shards[2])
    single = one.result()[0]
    _same(merged, single, exact_quantiles=False)
    eps = FeatureProfile.empty("x", "features", "numeric").sketch.normalized_rank_error(False)
    probs = np.linspace(0.01, 0.99, 99)
    for profile in (merged, single):
        q = np.asarray(profile.features[("features", "x")].sketch.get_quantiles(probs.tolist()))
        true_rank = np.searchsorted(np.sort(x), q, side="right") / x.size
        assert np.max(np.abs(true_rank - probs)) <= eps
    assert PROFILE_KLL_K == 400 and eps < 0.007


def test_feature_first_seen_late_counts_the_earlier_records_as_missing():
    p = _profile([({"x": 1.0}, None)] * 3 + [({"x": 2.0, "late": "a"}, None)] * 2)
    late = p.features[("features", "late")]
    assert (late.records, late.count, late.missing) == (5, 2, 3)


def test_values_are_classified_like_the_monitor():
    p = _profile([({"x": 1, "c": True}, 0.5), ({"x": float("nan"), "c": 3}, None),
                  ({"x": "oops", "c": "no"}, 0.25), ({}, None)])
    x, c, pred = p.features[("features", "x")], p.features[("features", "c")], p.features[("prediction", "prediction")]
    assert (x.kind, x.count, x.non_finite, x.type_mismatch, x.records) == ("numeric", 1, 1, 1, 4)
    assert (c.kind, c.categories, c.type_mismatch) == ("categorical", {"true": 1, "no": 1}, 1)
    assert (pred.records, pred.count, pred.moments.mean) == (2, 2, 0.375)
    assert p.source_records == {"features": 4, "prediction": 2}


def test_categories_beyond_the_cap_fold_into_other():
    counts = {f"k{i}": i + 1 for i in range(MAX_PROFILE_CATEGORIES + 10)}
    folded = fold_categories(counts, MAX_PROFILE_CATEGORIES)
    assert len(folded) == MAX_PROFILE_CATEGORIES
    assert sum(folded.values()) == sum(counts.values())
    assert folded[OTHER] == sum(range(1, 12))  # the eleven rarest


def test_merging_different_types_or_models_is_refused():
    a = _profile([({"x": 1.0}, None)])
    b = _profile([({"x": "text"}, None)])
    with pytest.raises(ProfileError, match="numeric in one profile and categorical"):
        a.merge(b)
    other = ProfileBuilder()
    other.add([InferenceEvent("other", "v1", None, None, {"x": 1.0}, None)])
    with pytest.raises(ProfileError, match="cannot merge"):
        a.merge(other.result()[0])


def test_the_id_depends_on_content_only():
    a = _profile([({"x": 1.0}, None)])
    b = _profile([({"x": 1.0}, None)])
    b.created_at, b.origin = "2020-01-01T00:00:00Z", ["elsewhere.csv"]
    assert a.id == b.id and a.name == f"profile@{a.id}"
    assert _profile([({"x": 2.0}, None)]).id != a.id


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="driftline.reference/0"), "unsupported reference profile format"),
    (lambda d: d.pop("model"), "missing or invalid"),
    (lambda d: d["features"][0].update(kll="not base64!"), "malformed feature"),
    (lambda d: d["features"][0].update(type="vector"), "unknown type"),
    (lambda d: d["features"][0].update(count=10**9), "not within"),
    (lambda d: d.update(records=12345), "does not match its content"),
])
def test_malformed_profiles_are_refused_with_a_reason(mutate, message):
    doc = orjson.loads(_profile([({"x": 1.5}, None)] * 4).to_bytes())
    mutate(doc)
    with pytest.raises(ProfileError, match=message):
        ReferenceProfile.from_bytes(orjson.dumps(doc))


def test_not_json_is_refused():
    with pytest.raises(ProfileError, match="not a JSON"):
        ReferenceProfile.from_bytes(b"\x00garbage")
    with pytest.raises(ProfileError, match="JSON object"):
        ReferenceProfile.from_bytes(b"[1, 2]")


def test_sketch_is_standard_datasketches_bytes():
    from datasketches import kll_doubles_sketch

    doc = orjson.loads(_profile([({"x": float(i)}, None) for i in range(100)]).to_bytes())
    sketch = kll_doubles_sketch.deserialize(base64.b64decode(doc["features"][0]["kll"]))
    assert (sketch.n, sketch.get_min_value(), sketch.get_max_value()) == (100, 0.0, 99.0)


def _columns_profile(t, shards=1):
    """The profile of a table as ``reference build`` makes it: each shard column by column, then merged."""
    from driftline.reference.builder import ColumnValues

    from collections import Counter

    out = None
    for part in np.array_split(np.arange(len(t["x"])), shards):
        b = ProfileBuilder()
        for start in range(0, part.size, 7_000):  # batches, as files are read
            rows = part[start:start + 7_000]
            x = t["x"][rows]
            b.add_columns("m", "v1", rows.size, {
                "x": ColumnValues(x[np.isfinite(x)], None, int(np.isfinite(x).sum())),
                "k": ColumnValues(t["k"][rows].astype(np.float64), None, rows.size),
                "c": ColumnValues(None, Counter(t["c"][rows].tolist()), rows.size)},
                ColumnValues(t["p"][rows], None, rows.size))
        (p,) = b.result()
        out = p if out is None else out.merge(p)
    return out


def _table(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.02] = np.nan
    return {"x": x, "k": rng.integers(0, 50, n), "c": rng.choice(["web", "app", "store"], n), "p": rng.random(n)}


def test_the_same_rows_give_the_same_id_built_twice_reordered_or_in_shards():
    """25,000 rows: two builds (KLL compaction is random), shuffled rows, 3 and 5 shards merged: one id."""
    t = _table(25_000, 3)
    first = _columns_profile(t)
    assert first.features[("features", "x")].sketch.is_estimation_mode()  # the sketch really is random
    again = _columns_profile(t)
    assert again.features[("features", "x")].sketch.serialize() != first.features[("features", "x")].sketch.serialize()
    order = np.random.default_rng(4).permutation(25_000)
    shuffled_t = {k: v[order] for k, v in t.items()}
    ids = {first.id, again.id, _columns_profile(shuffled_t).id, _columns_profile(t, 3).id, _columns_profile(shuffled_t, 5).id}
    assert ids == {first.id}, ids
    # and it survives serialisation: the id read back is the id written
    assert ReferenceProfile.from_bytes(first.to_bytes()).id == first.id == orjson.loads(first.to_bytes())["id"]
    # one value changed (by one ulp), one category swapped, one value dropped: three other ids
    for change in ("x", "c", "drop"):
        u = {k: v.copy() for k, v in shuffled_t.items()}
        if change == "x":
            i = int(np.flatnonzero(np.isfinite(u["x"]))[0])
            u["x"][i] = np.nextafter(u["x"][i], np.inf)
        elif change == "c":
            u["c"][0] = "store" if u["c"][0] != "store" else "web"
        else:
            u = {k: v[1:] for k, v in u.items()}
        assert _columns_profile(u).id not in ids, change


def test_minus_zero_and_zero_are_the_same_data():
    assert _profile([({"x": -0.0}, None), ({"x": 0.0}, None)]).id == _profile([({"x": 0.0}, None), ({"x": -0.0}, None)]).id


def test_a_profile_written_before_digests_keeps_its_id():
    """Profiles on the topic from an older driftline have no digest: their id still hashes the sketch bytes."""
    import hashlib

    doc = orjson.loads(_profile([({"x": float(i)}, None) for i in range(50)]).to_bytes())
    for key in ("id", "checksum", "created_at", "origin"):
        doc.pop(key)
    for f in doc["features"]:
        f.pop("digest", None)
    legacy_id = hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=6).hexdigest()
    p = ReferenceProfile.from_bytes(orjson.dumps({**doc, "id": legacy_id}))
    assert p.id == legacy_id and p.features[("features", "x")].digest is None
    assert ReferenceProfile.from_bytes(p.to_bytes()).id == legacy_id
    with pytest.raises(ProfileError, match="does not match its content"):
        ReferenceProfile.from_bytes(orjson.dumps({**doc, "records": 51, "id": legacy_id}))


@pytest.mark.parametrize("mutate", [
    lambda f: f["moments"].update(mean=f["moments"]["mean"] + 1.0),  # not in the id: the checksum sees it
    lambda f: f.update(kll=_other_sketch()),
])
def test_an_edited_sketch_or_moment_fails_the_checksum(mutate):
    doc = orjson.loads(_profile([({"x": float(i)}, None) for i in range(50)]).to_bytes())
    mutate(doc["features"][0])
    with pytest.raises(ProfileError, match="checksum does not match"):
        ReferenceProfile.from_bytes(orjson.dumps(doc))
    doc.pop("checksum")  # a forger need not state one: then only the checks of every field apply
    assert ReferenceProfile.from_bytes(orjson.dumps(doc)).id == doc["id"]


def _other_sketch() -> str:
    return orjson.loads(_profile([({"x": float(i)}, None) for i in range(49)]).to_bytes())["features"][0]["kll"]


def test_a_malformed_digest_is_refused():
    doc = orjson.loads(_profile([({"x": 1.5}, None)] * 4).to_bytes())
    for bad in ("zz" * 16, "ab", 12, None, "A" * 32):
        doc["features"][0]["digest"] = bad
        with pytest.raises(ProfileError, match="digest"):
            ReferenceProfile.from_bytes(orjson.dumps(doc))
