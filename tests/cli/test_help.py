"""Every command's ``--help``: real defaults, allowed values, env var and TOML key, and only the command's own options."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from driftline.cli.main import build_parser, main
from driftline.cli.options import ALL, DETECTION, TOPICS, WORKER_ONLY, choices_of, setting_flag
from driftline.config import Settings


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for action in subs:
        for name, sub in action.choices.items():
            yield from _leaves(sub, path + (name,))


COMMANDS = dict(_leaves(build_parser()))

#: commands that run the detection pipeline, and the settings each read-only command may take besides the
#: connection and topics: notify is a consumer-group member with its own /metrics; report replays a FILE
WORKERS = {"run", "replay", "demo"}
EXTRA = {"notify": {"session_timeout_ms", "heartbeat_interval_ms", "poll_timeout_seconds", "metrics_host",
                    "metrics_port", "log_level", "log_format", "cooldown_seconds"},
         "report": set(DETECTION), "reference build": {"max_record_bytes"}, "reference accept": {"warmup"}}


def _flags(parser: argparse.ArgumentParser, *, listed: bool = True) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings if not listed or a.help != argparse.SUPPRESS}


def test_the_command_list_is_the_real_one():
    assert set(COMMANDS) == {"run", "demo", "replay", "reference build", "reference merge", "reference show",
                             "reference withdraw", "reference accept", "compare", "alerts tail", "topics create",
                             "status", "notify", "report", "schema"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_renders_defaults_and_choices(command):
    parser = COMMANDS[command]
    text = parser.format_help()
    for bad in ("PydanticUndefined", "[default: None]", "[default: True]", "[default: False]", "['", "[]",
                "default: '", "%(default)", "[default: topic_partitions]"):
        assert bad not in text, f"driftline {command} --help shows {bad!r}"
    assert not re.search(r"default: \d+\.0\b", text), f"driftline {command} --help shows a float repr"
    for flag, action in _flags(parser).items():
        name = action.dest[len("setting_"):] if action.dest.startswith("setting_") else None
        if name is None:
            continue
        # a setting: its default, env var and TOML key in its help; its allowed values in its metavar
        help_text = " ".join(action.help.split())
        assert f"env DRIFTLINE_{name.upper()}" in help_text and f"TOML {name}]" in help_text, (command, flag)
        assert "[default: " in help_text, (command, flag)
        choices = choices_of(Settings.model_fields[name].annotation)
        if choices:
            assert action.metavar == "{" + ",".join(choices) + "}", (command, flag)
            assert action.metavar in text


def test_no_worker_setting_leaks_into_read_only_commands():
    for command, parser in COMMANDS.items():
        if command in WORKERS:
            continue
        flags = _flags(parser, listed=False)
        leaked = [setting_flag(n) for n in WORKER_ONLY + DETECTION
                  if setting_flag(n) in flags and n not in EXTRA.get(command, ()) and n not in TOPICS]
        assert not leaked, f"driftline {command} takes worker settings {leaked}"
    assert len(COMMANDS["reference show"].format_help().splitlines()) < 20
    # run takes them all
    assert all(setting_flag(n) in _flags(COMMANDS["run"]) for n in ALL)


def test_one_meaning_per_flag_name():
    for command, parser in COMMANDS.items():
        # --timeout is only ever the former name of a distinctly named flag, never listed on its own
        for action in parser._actions:
            if "--timeout" in action.option_strings and action.help != argparse.SUPPRESS:
                assert action.option_strings[0] in ("--read-timeout", "--http-timeout"), command
    notify = " ".join(COMMANDS["notify"].format_help().split())
    for flag in ("--group-id", "--cooldown-seconds"):
        assert flag not in notify.replace("--group-wait", "")
    assert "--auto-offset-reset {earliest,latest,error} Where a new group starts reading. [default: latest" in notify
    assert "--http-timeout SECONDS, --timeout SECONDS" in notify


@pytest.mark.parametrize("argv, expected", [
    (["run", "--windw-events", "100"], "--windw-events (did you mean --window-events?)"),
    (["run", "--window-event", "100"], "--window-event (did you mean --window-events?)"),  # no prefix matching
    (["status", "--warmup", "100"], "--warmup (an option of driftline run, driftline replay, "),
    (["reference", "accept", "--modle", "m", "--model-version", "v"], "--modle (did you mean --model?)"),
])
def test_mistakes_get_the_subcommand_usage(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err
    prog = "driftline " + " ".join(argv[:2] if argv[0] == "reference" else argv[:1])
    assert len(err.splitlines()) == 1 and expected in err
    assert f"(usage: {prog} " in err and "100" not in err


def test_old_spellings_keep_working():
    parser = build_parser()
    assert parser.parse_args(["status", "--timeout", "7"]).timeout == 7
    assert parser.parse_args(["status", "--read-timeout", "7"]).timeout == 7
    assert parser.parse_args(["alerts", "tail", "--timeout", "3"]).duration == 3
    args = parser.parse_args(["notify", "--timeout", "4", "--group-id", "g", "--cooldown-seconds", "9"])
    assert (args.notify_timeout_seconds, args.setting_group_id, args.setting_cooldown_seconds) == (4, "g", "9")
    assert parser.parse_args(["reference", "accept", "--model", "m", "--model-version", "v", "--group-id", "g",
                              "--timeout", "5"]).timeout == 5


def test_the_installed_command_prints_the_subcommand_help():
    out = subprocess.run([sys.executable, "-m", "driftline.cli.main", "topics", "create", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: driftline topics create [options]")
    assert "--topic-partitions N" in out.stdout and "--warmup" not in out.stdout


def test_a_misspelt_command_gets_the_nearest_one(capsys):
    assert main(["stauts"]) == 2
    assert "unknown command 'stauts' (did you mean status?)" in capsys.readouterr().err
    assert main(["reference", "shwo", "p.json"]) == 2
    assert "(did you mean show?)" in capsys.readouterr().err
    assert main(["replay", "x.jsonl", "--format", "jsnl"]) == 2  # a bad value of a flag is not a command
    assert "argument --format: invalid choice: 'jsnl'" in capsys.readouterr().err
