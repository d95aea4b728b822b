"""``driftline compare`` from a file of window summaries."""

import orjson

from driftline.cli.compare import latest_comparisons
from driftline.cli.main import main


def comparison(window, rate, model="fraud"):
    return {"type": "version_comparison", "model": model, "champion": "v1", "challenger": "v2", "window": {"n": window},
            "pairs": 500, "disagreement_rate": rate, "mean_difference_sd": 0.4,
            "champion_performance": {"labeled": 400, "accuracy": 0.81},
            "challenger_performance": {"labeled": 400, "accuracy": 0.84},
            "performance_difference": {"metric": "accuracy", "challenger_minus_champion": 0.03,
                                       "interval_95": [-0.02, 0.08]}}


def test_newest_comparison_per_pair_is_shown(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "summaries.jsonl"
    rows = [comparison(1, 0.10), {"type": "window_summary", "model": "fraud"}, comparison(2, 0.25),
            comparison(1, 0.01, model="other")]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    assert [c["disagreement_rate"] for c in latest_comparisons(rows, "fraud")] == [0.25]
    assert main(["compare", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "25.0%" in out and "+0.030 [-0.020, +0.080]" in out and "other" in out
    assert main(["compare", "--file", str(path), "--model", "fraud", "--json"]) == 0
    assert [orjson.loads(line)["window"] for line in capsys.readouterr().out.splitlines()] == [{"n": 2}]


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["compare", "--file", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
