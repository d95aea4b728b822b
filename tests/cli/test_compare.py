"""``driftline compare`` from a file of window summaries."""

import io

import orjson
from rich.console import Console

from driftline.cli.compare import latest_comparisons, print_comparisons
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


def test_the_table_is_readable_at_80_columns_and_complete_at_full_width(tmp_path, capsys, monkeypatch):
    """At 80 columns a block per pair (no cut figure, no line longer than 80); at full width the one-row table.
    Hostile names (markup, control characters) are shown as text."""
    rows = [comparison(2, 0.25), comparison(1, 0.01, model="fraud-scoring-service-[red]eu\x1b[2J"),
            {**comparison(1, 0.5, model="nolabels"), "performance_difference": None}]
    path = tmp_path / "summaries.jsonl"
    junk = [[1, 2], "x", 3, {"type": "version_comparison", "pairs": "\x1b[31m", "performance_difference": [1]}]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows + junk) + b"\n")
    rows = rows + junk
    figures = ["25.0%", "1.0%", "50.0%", "+0.40", "accuracy", "0.810", "0.840", "+0.030 [-0.020, +0.080]", "nolabels",
               "fraud-scoring-service-[red]eu\\x1b[2J", "v1", "v2", "500"]
    buffer = io.StringIO()  # a terminal of 80 columns (how the width is chosen is main's business)
    print_comparisons(Console(file=buffer, width=80, force_terminal=True, color_system=None), latest_comparisons(rows))
    narrow = buffer.getvalue()
    assert max(map(len, narrow.splitlines())) <= 80 and "…" not in narrow and "\x1b" not in narrow
    assert all(f in narrow for f in figures), [f for f in figures if f not in narrow]
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["compare", "--file", str(path)]) == 0
    wide = capsys.readouterr().out
    assert "…" not in wide and "\x1b" not in wide and "difference (95 %)" in wide
    assert all(f in wide for f in figures), [f for f in figures if f not in wide]
    assert len([line for line in wide.splitlines() if "│ nolabels" in line]) == 1  # one row per comparison
