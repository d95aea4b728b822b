"""Mistakes said out loud: filter values checked, unknown names reported with the nearest known one,
demo arguments validated, and the views of status rendered from plain data (no broker needed)."""

from __future__ import annotations

import orjson
import pytest
from rich.console import Console

from driftline.cli.alerts import KINDS, check_filters, starting_line
from driftline.cli.demo import check_arguments, checks
from driftline.cli.main import main
from driftline.cli.status import render
from driftline.cli.unknown import did_you_mean, unknown_value
from driftline.errors import ConfigError

HOSTILE = ["\ud800", "a\x1b[2Jb\nc", "x" * 1_000_000, "", "concept_drift\x00"]


def test_a_mistyped_kind_fails_before_any_broker_is_asked(capsys):
    # the port is closed: the check must come first
    assert main(["alerts", "tail", "--kind", "concpt_drift", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "invalid --kind 'concpt_drift': did you mean 'concept_drift'?" in err
    assert all(k in err for k in KINDS)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filter_values_give_one_bounded_escaped_line(value):
    with pytest.raises(ConfigError) as info:
        check_filters(kind=value, status=None)
    text = str(info.value)
    assert len(text) < 1000 and "\n" not in text and "\x1b" not in text and "\x00" not in text
    text.encode("utf-8")  # no lone surrogate left


def test_unknown_names_list_the_known_ones_and_bound_the_list():
    text = unknown_value("model", "frod", [f"m{i}" for i in range(50)] + ["fraud"])
    assert text.startswith("unknown model 'frod': did you mean 'fraud'?") and "and 31 more" in text
    assert did_you_mean("FRAUD", ["fraud"]) == "fraud" and did_you_mean("\ud800", ["fraud"]) is None


def test_starting_line_says_where_and_until_when():
    line = starting_line("al", 1, from_beginning=True, filters={"model": "m", "kind": None}, timeout=5, most=3)
    assert line == "following 'al' (1 partition) from the oldest alert kept; model=m; until 3 alert(s) or 5 s"


def test_demo_arguments_name_both_flags(capsys):
    assert main(["demo", "--events", "1000", "--drift-at", "5000"]) == 2
    err = capsys.readouterr().err
    assert "--drift-at 5000" in err and "--events 1000" in err
    with pytest.raises(ConfigError, match="warm-up"):
        check_arguments(12_000, 100)
    with pytest.raises(ConfigError, match="drifted event"):
        check_arguments(7_500, 7_000)
    check_arguments(12_000, 7_000)  # the defaults pass


def test_demo_checks_name_what_failed():
    from collections import Counter

    results = checks(processed=90, total=100, by_feature=Counter(income=1, age=2), expected={"income", "channel"},
                     unexpected=["age"])
    assert [ok for ok, _ in results] == [False, False, False]
    assert "90 of 100" in results[0][1] and "alerts on income" in results[1][1] and results[2][1].endswith("age")


def test_replay_writes_its_dead_letters_to_fix_and_replay(tmp_path, capsys):
    data = tmp_path / "events.jsonl"
    data.write_bytes(b'{"model": "m", "features": {"x": 1}}\nnot json\n\xff\xfe\n{"features": {"x": 2}}\n')
    out = tmp_path / "dead.jsonl"
    assert main(["replay", str(data), "--dead-letters-out", str(out)]) == 0
    assert "3 dead letter(s) (invalid_json 2, missing_model 1)" in " ".join(capsys.readouterr().err.split())
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [d["reason"] for d in lines] == ["invalid_json", "invalid_json", "missing_model"]
    assert lines[0]["value"] == "not json" and lines[1]["value_base64"] == "//4=" and "value" not in lines[1]
    assert [d["offset"] for d in lines] == [1, 2, 3] and all(d["detail"] for d in lines)
    # fixed, they replay
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_bytes(b"".join(orjson.dumps({"model": "m", "features": {"x": i}}) + b"\n" for i in range(3)))
    assert main(["replay", str(fixed)]) == 0 and "0 dead letter(s)" in capsys.readouterr().err


def _report(**extra):
    base = {"bootstrap_servers": "k:9092", "partitions": [], "total_lag": 0, "models": [], "features": [],
            "open_incidents": [], "active_alerts": [], "notes": [], "summaries_since_seconds": 86400.0,
            "group": {"group_id": "g", "state": "empty", "known": True, "members": [], "coordinator": None}}
    base.update(extra)
    return base


def _text(report) -> str:
    console = Console(width=200, record=True, markup=False, highlight=False)
    console.print(*render(report))
    return console.export_text()


def test_status_views_of_quality_dead_letters_and_an_unknown_group():
    perf = {"model": "fraud", "model_version": "v1", "task": "classification", "metric": "accuracy", "value": 0.8125,
            "cumulative": 0.79, "labeled": 900, "inferences": 1000, "label_coverage": 0.9, "label_coverage_total": 0.95,
            "partitions": [0], "last_event_time": "2026-01-01T00:00:00.000Z"}
    window = {"model_version": "v1", "partition": 0, "first_event_time": None, "last_event_time": "t1",
              "task": "regression", "metric": "mae", "value": 1.25, "inferences": 10, "labeled": 9,
              "label_coverage": 0.9, "label_coverage_total": 0.9}
    concept = {"model_version": "v1", "status": "firing", "severity": "critical", "detector": "adwin_error",
               "event_time": "t1", "statistic": 0.8, "summary": "Error rate rose", "alert_id": "a"}
    text = _text(_report(performance=[perf], dead_letters={"topic": "dl", "total": 3, "by_reason": {"invalid_json": 3},
                                                           "complete": True},
                         model_quality={"model": "fraud", "windows": [window], "concept_drift_alerts": [concept]}))
    assert "81.2%" in text and "900 of 1,000" in text and "95.0%" in text
    assert "fraud: performance per window" in text and "MAE" in text and "1.25" in text
    assert "fraud: concept-drift alerts (1)" in text and "Error rate rose" in text
    assert "dead letters on dl (last 86400 s): 3" in text and "invalid_json" in text
    unknown = _text(_report(total_lag=None, group={"group_id": "typo", "state": "empty", "known": False, "members": [],
                                                   "coordinator": None}))
    assert "unknown group" in unknown and "lag (unknown" in unknown


def test_compare_of_a_model_with_no_comparison_names_the_ones_there(tmp_path, capsys):
    summaries = tmp_path / "s.jsonl"
    summaries.write_bytes(orjson.dumps({"type": "version_comparison", "model": "fraud", "champion": "v1",
                                        "challenger": "v2", "pairs": 10}) + b"\n")
    assert main(["compare", "--file", str(summaries), "--model", "frod"]) == 2
    assert "unknown --model 'frod': did you mean 'fraud'?" in capsys.readouterr().err
    assert main(["compare", "--file", str(summaries), "--model", "fraud"]) == 0
