"""Output for people and for scripts: with stdout piped, tables are whole (no cell cut to 80 columns),
results go to stdout and diagnostics to stderr, and ``--json`` is valid JSON."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from driftline.cli.main import main

#: a feature name near the longest kept as it is (max_name_chars 256), and numbers wider than a column
LONG = "feature_" + "x" * 180 + "_end"
MODEL = "model-" + "m" * 90 + "-end"
BIG = 20_000_000_000
T0 = 1_700_000_000_000


def _events(n=600, shift_at=None):
    for i in range(n):
        x = float(BIG + i % 7) + (BIG if shift_at is not None and i >= shift_at else 0.0)
        yield orjson.dumps({"model": MODEL, "model_version": "v1", "timestamp": T0 + 10 * i,
                            "features": {LONG: x, "channel": ["web", "app"][i % 2]}, "prediction": i % 3 / 3})


def _piped(*argv: str) -> subprocess.Popen:
    """The command with stdout and stderr piped (not terminals), and no COLUMNS to lean on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_") and k != "COLUMNS"}
    return subprocess.Popen([sys.executable, "-m", "driftline.cli.main", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _whole(text: str, *expected: str) -> None:
    assert "…" not in text, f"a cell was cut:\n{text}"
    for e in expected:
        assert e in text, f"{e[:40]}... missing:\n{text}"


@pytest.fixture
def no_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # rich would take it as the width of a pipe


def test_profiles_and_comparisons_are_whole_without_a_terminal(tmp_path, capsys, no_columns):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(_events()) + b"\n")
    profile = tmp_path / "p.json"
    assert main(["reference", "build", str(events), "-o", str(profile)]) == 0
    out, err = capsys.readouterr()
    _whole(out, LONG, MODEL, "600", "2e+10")
    assert "wrote" in err and "wrote" not in out  # what it did: stderr; the profile's table: stdout
    assert main(["reference", "show", str(profile)]) == 0
    _whole(capsys.readouterr().out, LONG, MODEL, "600")
    assert main(["reference", "show", str(profile), "--json"]) == 0
    (shown,) = orjson.loads(capsys.readouterr().out)["profiles"]
    assert shown["model"] == MODEL and {f["feature"] for f in shown["features"]} >= {LONG, "channel", "prediction"}
    assert next(f for f in shown["features"] if f["feature"] == LONG)["p50"] >= BIG
    assert main(["reference", "merge", str(profile), "--json", "-o", str(tmp_path / "q.json")]) == 0
    assert orjson.loads(capsys.readouterr().out)["profiles"][0]["records"] == 600

    summaries = tmp_path / "summaries.jsonl"
    summaries.write_bytes(orjson.dumps({
        "type": "version_comparison", "model": MODEL, "champion": "v1-" + "c" * 60, "challenger": "v2-" + "d" * 60,
        "window": {"n": 1}, "pairs": BIG, "disagreement_rate": 0.25, "mean_difference_sd": 0.4,
        "champion_performance": {"labeled": 400, "accuracy": 0.81}, "challenger_performance": {"labeled": 400, "accuracy": 0.84},
        "performance_difference": {"metric": "accuracy", "challenger_minus_champion": 0.03, "interval_95": [-0.02, 0.08]},
    }) + b"\n")
    assert main(["compare", "--file", str(summaries)]) == 0
    _whole(capsys.readouterr().out, MODEL, "c" * 60, "d" * 60, f"{BIG:,}")  # (the table groups digits)
    assert main(["compare", "--file", str(summaries), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["pairs"] == BIG


def test_replay_through_a_pipe_prints_alert_lines_on_stdout_and_its_totals_on_stderr(tmp_path, capsys):
    drifting = tmp_path / "drifting.jsonl"
    drifting.write_bytes(b"\n".join(_events(1000, shift_at=500)) + b"\n")
    flags = ["--warmup", "200", "--window-events", "200"]
    proc = _piped("replay", str(drifting), *flags)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines and all(line.startswith(("FIRING", "RESOLVED")) for line in lines), out
    # one line per alert, whole, with the summary's [model version]
    assert all(f"[{MODEL} v1]" in line and LONG in line for line in lines if line.startswith("FIRING"))
    assert "replayed 1,000 records" in err and "replayed" not in out
    assert main(["replay", str(drifting), *flags, "--json"]) == 0
    alerts = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(alerts) == len(lines) and {a["feature"] for a in alerts} <= {LONG, "prediction"}


def test_status_without_a_terminal_is_whole_and_notes_go_to_stderr(monkeypatch, capsys, no_columns):
    from driftline.cli import status

    report = {
        "bootstrap_servers": "kafka:9092", "summaries_since_seconds": 86400, "read": {},
        "group": {"group_id": "driftline", "state": "stable", "assignor": "range", "coordinator": "kafka:9092",
                  "members": [{"member_id": "m-" + "1" * 60, "client_id": "driftline-worker", "host": "/10.0.0.1",
                               "group_instance_id": None, "partitions": [["ml.inferences", 0]]}]},
        "partitions": [{"topic": "ml.inferences", "partition": 0, "member": "driftline-worker", "committed": 1000,
                        "log_end": BIG, "lag": BIG - 1000}],
        "total_lag": BIG - 1000,
        "models": [{"model": MODEL, "model_version": "v3", "references": ["profile@ab12"], "features": [LONG],
                    "outputs": ["prediction"], "last_event_time": "2026-11-26T10:00:00.000Z"}],
        "features": [{"model": MODEL, "model_version": "v3", "feature": LONG, "feature_type": "numeric",
                      "references": ["profile@ab12"], "partitions": ["ml.inferences[0]"], "missing_ratio": 0.0,
                      "drift": {"mean_shift_sd": 1.04, "psi": 0.41}, "firing": []}],
        "active_alerts": [], "open_incidents": [], "notes": ["topic 'x' was not read to its end"],
    }
    monkeypatch.setattr(status, "collect", lambda settings, **kw: report)
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    _whole(out, LONG, MODEL, f"{BIG:,}", f"{BIG - 1000:,}", "m-" + "1" * 60)
    assert "note: topic 'x'" in err and "note:" not in out
    assert main(["status", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["total_lag"] == BIG - 1000


@pytest.mark.parametrize("argv", [["reference", "show"], ["topics", "create"], ["status"], ["compare"],
                                  ["alerts", "tail"], ["replay"], ["reference", "build"], ["reference", "merge"],
                                  ["reference", "accept"]])
def test_every_tabular_command_has_json(argv):
    from driftline.cli.main import build_parser

    parser = build_parser()
    for word in argv:
        parser = next(a for a in parser._actions if a.dest in ("command", "reference_command", "topics_command",
                                                                  "alerts_command")).choices[word]
    assert "--json" in {o for a in parser._actions for o in a.option_strings}


def test_compare_escapes_names_and_names_a_bad_line(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    row = {"type": "version_comparison", "model": "fr\x1b[2Jaud\nFORGED", "champion": "[bold]v1", "challenger": "v2",
           "pairs": 3}
    path.write_bytes(orjson.dumps(row) + b"\n[1, 2]\n")
    assert main(["compare", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\nFORGED" not in out and "[bold]v1" in out
    path.write_bytes(orjson.dumps(row) + b"\nnot json\n")
    assert main(["compare", "--file", str(path)]) == 2
    assert "line 2 of" in capsys.readouterr().err
