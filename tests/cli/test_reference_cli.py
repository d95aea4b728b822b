"""``driftline reference build | merge | show`` from files."""

import math

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from driftline.cli.main import main
from driftline.reference.profile import ReferenceProfile


def table(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return pa.table({"amount": rng.lognormal(size=n) + shift, "age": rng.integers(18, 90, n),
                     "channel": rng.choice(["web", "app", "store"], n), "prediction": rng.random(n)})


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_build_from_a_table(tmp_path, capsys, fmt):
    t = table(5000, 1)
    path = tmp_path / f"train.{fmt}"
    (pq.write_table if fmt == "parquet" else pa_csv.write_csv)(t, path)
    out = tmp_path / "p.json"
    assert main(["reference", "build", str(path), "--model", "fraud", "--model-version", "v3", "-o", str(out)]) == 0
    p = ReferenceProfile.from_bytes(out.read_bytes())
    assert (p.model, p.model_version, p.records) == ("fraud", "v3", 5000)
    amount = p.features[("features", "amount")]
    assert (amount.kind, amount.count) == ("numeric", 5000)
    assert amount.moments.mean == pytest.approx(float(np.mean(t["amount"])))
    assert p.features[("features", "age")].kind == "numeric"
    assert set(p.features[("features", "channel")].categories) == {"web", "app", "store"}
    assert p.features[("prediction", "prediction")].count == 5000
    assert p.name in capsys.readouterr().err


def test_shards_build_the_profile_of_the_whole(tmp_path):
    t = table(9000, 2)
    paths = []
    for i, part in enumerate([t.slice(0, 3000), t.slice(3000, 3000), t.slice(6000, 3000)]):
        paths.append(tmp_path / f"part{i}.parquet")
        pq.write_table(part, paths[-1])
    pq.write_table(t, tmp_path / "whole.parquet")
    common = ["--model", "m", "--model-version", "v1"]
    assert main(["reference", "build", *map(str, paths), *common, "-o", str(tmp_path / "shards.json")]) == 0
    assert main(["reference", "build", str(tmp_path / "whole.parquet"), *common, "-o", str(tmp_path / "whole.json")]) == 0
    shards = ReferenceProfile.from_bytes((tmp_path / "shards.json").read_bytes())
    whole = ReferenceProfile.from_bytes((tmp_path / "whole.json").read_bytes())
    for key, f in whole.features.items():
        g = shards.features[key]
        assert (g.records, g.count, g.categories) == (f.records, f.count, f.categories)
        assert g.moments.mean == pytest.approx(f.moments.mean) and g.moments.sd == pytest.approx(f.moments.sd)
    # merging profile files gives the same again
    one = tmp_path / "one.json"
    parts = []
    for i, p in enumerate(paths):
        parts.append(tmp_path / f"p{i}.json")
        assert main(["reference", "build", str(p), *common, "-o", str(parts[-1])]) == 0
    assert main(["reference", "merge", *map(str, parts), "-o", str(one)]) == 0
    merged = ReferenceProfile.from_bytes(one.read_bytes())
    assert merged.features[("features", "channel")].categories == whole.features[("features", "channel")].categories
    assert merged.records == whole.records == 9000


def test_the_same_parquet_gives_the_same_id_built_twice_or_in_shards(tmp_path):
    """The issue's case: one Parquet of 20,000 rows built twice gave profile@40ff05329746 and profile@95a3ec95e0d7."""
    t = table(20_000, 8)
    pq.write_table(t, tmp_path / "train.parquet")
    pq.write_table(t.take(np.random.default_rng(1).permutation(20_000)), tmp_path / "shuffled.parquet")
    for i, (a, b) in enumerate([(0, 5000), (5000, 11000), (11000, 20000)]):
        pq.write_table(t.slice(a, b - a), tmp_path / f"part{i}.parquet")
    common = ["--model", "m", "--model-version", "v1"]
    ids = []
    for name, files in [("a", ["train"]), ("b", ["train"]), ("c", ["shuffled"]), ("d", ["part2", "part0", "part1"])]:
        out = tmp_path / f"{name}.json"
        assert main(["reference", "build", *[str(tmp_path / f"{f}.parquet") for f in files], *common, "-o", str(out)]) == 0
        ids.append(orjson.loads(out.read_bytes())["id"])
    assert main(["reference", "merge", str(tmp_path / "d.json"), str(tmp_path / "a.json"), "-o", str(tmp_path / "e.json")]) == 0
    assert len(set(ids)) == 1
    assert orjson.loads((tmp_path / "e.json").read_bytes())["id"] != ids[0]  # twice the data is other data


def test_jsonl_with_several_models_needs_a_choice_or_a_directory(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    lines = [orjson.dumps({"model": m, "model_version": "v1", "features": {"x": float(i)}, "prediction": 0.5})
             for i in range(100) for m in ("a", "b")] + [b"{not json"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["reference", "build", str(path), "-o", str(tmp_path / "p.json")]) == 2
    assert "2 model versions (a/v1, b/v1)" in capsys.readouterr().err
    assert main(["reference", "build", str(path), "--model", "b", "-o", str(tmp_path / "b.json")]) == 0
    err = capsys.readouterr().err
    assert "1 record(s) not profiled (1 invalid_json)" in err
    assert ReferenceProfile.from_bytes((tmp_path / "b.json").read_bytes()).records == 100
    out_dir = tmp_path / "all"
    out_dir.mkdir()
    assert main(["reference", "build", str(path), "-o", str(out_dir)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a@v1.profile.json", "b@v1.profile.json"]


def test_clear_errors(tmp_path, capsys):
    assert main(["reference", "build", str(tmp_path / "missing.parquet"), "-o", "x.json"]) == 2
    assert "does not exist" in capsys.readouterr().err
    t = tmp_path / "t.parquet"
    pq.write_table(table(10, 3), t)
    assert main(["reference", "build", str(t), "--model", "m"]) == 2
    assert "--output" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"format": "something-else"}')
    assert main(["reference", "show", str(bad)]) == 1
    assert "unsupported reference profile format" in capsys.readouterr().err
    assert main(["replay", str(t), "--model", "m", "--reference-files", str(bad)]) == 2
    assert "reference_files" in capsys.readouterr().err


def test_show_prints_every_feature(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    t = tmp_path / "t.parquet"
    pq.write_table(table(500, 4), t)
    assert main(["reference", "build", str(t), "--model", "m", "-o", str(tmp_path / "p.json")]) == 0
    capsys.readouterr()
    assert main(["reference", "show", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    for name in ("amount", "age", "channel", "prediction"):
        assert name in out


def test_replay_with_a_file_reference_catches_drift_present_from_the_start(tmp_path, capsys):
    pq.write_table(table(20_000, 5), tmp_path / "train.parquet")
    pq.write_table(table(10_000, 6, shift=1.0), tmp_path / "prod.parquet")  # amount shifted from row 0
    profile = tmp_path / "p.json"
    assert main(["reference", "build", str(tmp_path / "train.parquet"), "--model", "m", "-o", str(profile)]) == 0
    name = ReferenceProfile.from_bytes(profile.read_bytes()).name
    capsys.readouterr()
    common = ["replay", str(tmp_path / "prod.parquet"), "--model", "m", "--json", "--window-seconds", "0"]
    assert main([*common, "--reference-files", str(profile)]) == 0
    alerts = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alerts and {a["feature"] for a in alerts} == {"amount"} and {a["reference"] for a in alerts} == {name}
    assert main(common) == 0
    assert [orjson.loads(line) for line in capsys.readouterr().out.splitlines()] == []
    # a profile of another version is reported as unused, not silently ignored
    assert main([*common, "--model-version", "v2", "--reference-files", str(profile)]) == 0
    assert f"reference {name} (m/unversioned) was not used: the file holds m/v2" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, outputs", [("parquet", None), ("csv", None), ("parquet", ["score,label", "proba"]),
                                          ("csv", ["score", "label", "proba"])])
def test_tables_read_column_by_column_give_the_profile_of_a_row_by_row_replay(tmp_path, fmt, outputs):
    """The fast path for tables equals decoding each row as the live worker would, with the scalar output
    or with named outputs (rows where every output is missing carry no prediction)."""
    from decimal import Decimal

    from driftline.contract.decode import decode_event
    from driftline.reference.builder import ProfileBuilder
    from driftline.transport.files import read_records, read_table_batches

    rng = np.random.default_rng(7)
    n = 3000
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    x[5] = np.inf
    pred = rng.random(n).tolist()
    for i in range(0, n, 17):
        pred[i] = None
    t = pa.table({
        "x": x,
        "ints": pa.array([None if i % 11 == 0 else int(v) for i, v in enumerate(rng.integers(0, 9, n))], pa.int64()),
        "flag": pa.array([None if i % 13 == 0 else bool(v) for i, v in enumerate(rng.random(n) < 0.3)]),
        "cat": pa.array([None if i % 7 == 0 else str(v) for i, v in enumerate(rng.choice(["a", "b"], n))]),
        "price": pa.array([Decimal(f"{v:.2f}") for v in rng.random(n) * 100], pa.decimal128(10, 2)),
        "empty": pa.array([None] * n, pa.float64()),
        "model_version": pa.array(["v7"] * n),
        "prediction": pa.array(pred, pa.float64()),
        "score": pa.array([None if i % 5 == 0 else float(v) for i, v in enumerate(rng.random(n))]),
        "label": pa.array([None if i % 10 == 0 else str(v) for i, v in enumerate(rng.choice(["yes", "no"], n))]),
        "proba": pa.array([math.nan if i % 3 == 0 else float(v) for i, v in enumerate(rng.random(n))]),
    })
    if outputs:
        t = t.drop_columns(["prediction"])
    if fmt == "csv":
        t = t.drop_columns(["price"])  # CSV reads decimals back as floats: nothing to compare
    path = tmp_path / f"t.{fmt}"
    (pq.write_table if fmt == "parquet" else pa_csv.write_csv)(t, path)

    fast = ProfileBuilder()
    batches = read_table_batches(path, model="m", batch_rows=1000, prediction_column=outputs)
    assert batches is not None
    for b in batches:
        fast.add_columns(b.model, b.model_version, b.rows, b.features, b.outputs, b.output_rows)
    slow = ProfileBuilder()
    slow.add(decode_event(r.value, max_bytes=10**6) for r in read_records(path, model="m", prediction_column=outputs))
    (a,), (b,) = fast.result(), slow.result()
    assert (a.key, a.records, a.source_records) == (b.key, b.records, b.source_records) == ("m/v7", n, a.source_records)
    if outputs:
        names = {("prediction", f"prediction.{c}") for c in ("score", "label", "proba")}
        assert {k for k in a.features if k[0] == "prediction"} == names
        if fmt == "parquet":  # (a CSV reads an empty text cell back as "", a value)
            assert a.source_records["prediction"] == sum(i % 30 != 0 for i in range(n))  # score, label, proba all missing
    else:
        assert {k for k in a.features if k[0] == "prediction"} == {("prediction", "prediction")}
        assert a.source_records["prediction"] == sum(v is not None for v in pred)
    assert set(a.features) == set(b.features)
    for key, f in a.features.items():
        g = b.features[key]
        assert (f.kind, f.records, f.count, f.non_finite, f.type_mismatch, f.categories) == \
               (g.kind, g.records, g.count, g.non_finite, g.type_mismatch, g.categories), key
        assert f.moments.n == g.moments.n and f.moments.mean == pytest.approx(g.moments.mean)


def test_tables_with_several_models_are_read_row_by_row(tmp_path):
    from driftline.transport.files import read_table_batches

    path = tmp_path / "two.parquet"
    pq.write_table(pa.table({"model": ["a", "b"], "x": [1.0, 2.0]}), path)
    assert read_table_batches(path) is None
    assert main(["reference", "build", str(path), "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.profile.json")) == ["a@unversioned.profile.json",
                                                                       "b@unversioned.profile.json"]


@pytest.mark.parametrize("flags, message", [
    (["--model", "m" * 300, "--model-version", "v1"], "invalid --model"),
    (["--model", "\udcff", "--model-version", "v1"], "invalid --model"),
    (["--model", "m", "--model-version", ""], "invalid --model-version"),
    (["--model", "m", "--model-version", "v1", "--feature", "\ud800"], "invalid --feature"),
    (["--model", "m", "--model-version", "v1", "--since", "yesterday\n\x1b[31m"], "invalid --since"),
    (["--model", "m", "--model-version", "v1", "--since", "2026-12-01T10:00:00+0000"], "invalid --since"),
])
def test_accept_refuses_names_and_times_no_record_could_carry(flags, message, capsys):
    """Checked before any broker is asked (none listens here): exit code 2, one escaped, bounded line."""
    assert main(["reference", "accept", *flags, "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err) < 400 and "\x1b" not in err and len(err.splitlines()) == 1


def test_named_outputs_of_a_table_are_profiled_as_the_decoder_names_them(tmp_path, capsys):
    """``--prediction-column score`` profiles the output a record's ``"prediction": {"score": ...}`` is monitored
    as (``prediction.score``); several columns, repeated or comma-separated, are several outputs."""
    rng = np.random.default_rng(3)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"amount": rng.random(200), "score": rng.random(200), "label": rng.choice(["a", "b"], 200),
                             "proba": rng.random(200)}), path)
    common = [str(path), "--model", "m", "--model-version", "v1"]
    assert main(["reference", "build", *common, "--prediction-column", "score", "-o", str(tmp_path / "one.json")]) == 0
    one = ReferenceProfile.from_bytes((tmp_path / "one.json").read_bytes())
    assert set(one.features) == {("features", "amount"), ("features", "label"), ("features", "proba"),
                                 ("prediction", "prediction.score")}
    assert one.features[("prediction", "prediction.score")].count == 200
    assert "warning" not in capsys.readouterr().err
    assert main(["reference", "build", *common, "--prediction-column", "score,label", "--prediction-column", "proba",
                 "-o", str(tmp_path / "three.json")]) == 0
    three = ReferenceProfile.from_bytes((tmp_path / "three.json").read_bytes())
    assert {k for k in three.features if k[0] == "prediction"} == {
        ("prediction", "prediction.score"), ("prediction", "prediction.label"), ("prediction", "prediction.proba")}
    assert three.features[("prediction", "prediction.label")].kind == "categorical"
    assert set(three.features) - {k for k in three.features if k[0] == "prediction"} == {("features", "amount")}


def test_a_table_without_the_default_prediction_column_is_warned_about(tmp_path, capsys):
    path = tmp_path / "t.csv"
    pa_csv.write_csv(pa.table({"amount": [1.0, 2.0], "score": [0.1, 0.9]}), path)
    assert main(["reference", "build", str(path), "--model", "m", "-o", str(tmp_path / "p.json")]) == 0
    err = capsys.readouterr().err
    assert "no prediction column 'prediction'" in err and "--prediction-column" in err
    p = ReferenceProfile.from_bytes((tmp_path / "p.json").read_bytes())
    assert set(p.features) == {("features", "amount"), ("features", "score")}


@pytest.mark.parametrize("columns, message", [
    (["nope"], "has no column 'nope'"),
    (["score,\ud800x" + "y" * 5000], "has no column"),
    (["prediction,score"], "cannot carry together with named outputs"),
    ([" , "], "name a column"),
    (["prediction."], "names no output"),
])
def test_prediction_columns_that_cannot_be_used_are_errors(tmp_path, capsys, columns, message):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"amount": [1.0, 2.0], "score": [0.1, 0.9], "prediction": [0.0, 1.0]}), path)
    flags = [f for c in columns for f in ("--prediction-column", c)]
    assert main(["reference", "build", str(path), "--model", "m", *flags, "-o", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err) < 2000
    assert not (tmp_path / "p.json").exists()


def test_prediction_columns_are_for_tables(tmp_path, capsys):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"model": "m", "features": {"x": 1.0}, "prediction": {"score": 0.5}}\n')
    assert main(["reference", "build", str(path), "--prediction-column", "score", "-o", str(tmp_path / "p.json")]) == 0
    assert "--prediction-column is for tables" in capsys.readouterr().err
    p = ReferenceProfile.from_bytes((tmp_path / "p.json").read_bytes())
    assert ("prediction", "prediction.score") in p.features
