"""``driftline`` command line: ``run``, ``demo``, ``replay``, ``reference``, ``compare``, ``report``, ``schema``.

Errors become exit codes here: 2 for a configuration error (a :class:`ConfigError`, a bad
flag or argument), one line per problem on stderr, no traceback; 3 for an unreachable
broker; 1 for other failures.  A mistyped flag is reported with the nearest real one and
without the values that followed it (they may be secrets).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from contextvars import ContextVar
from typing import Any, NoReturn, Sequence

import orjson

from driftline import __version__, collector
from driftline.errors import BrokerUnreachableError, ConfigError, DriftlineError, ProducerFencedError
from driftline.cli.options import (ALL, CONNECTION, DETECTION, INT32, HelpFormatter, add_settings, number,
                                   settings_from)
from driftline.redact import bounded, escape, scrub_known

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_BROKER = 3
EXIT_FAILURE = 1
#: another worker took over this worker's transactional id (driftline.transport.worker.EXIT_FENCED)
EXIT_FENCED = 4


_INT32 = INT32
_TIMEOUT = number(float, 0, 3600, low_open=True)


# Each command loads its settings before importing its machinery (the pipeline pulls in scipy and
# river, about a second): a configuration error is reported at once.
def _cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.observability.logging import configure_logging
    from driftline.transport.worker import Worker

    collector.tune()  # the collector tuned for a process that decodes records
    configure_logging(settings.log_level, settings.log_format)
    Worker(settings).run(exit_on_stall=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from driftline.cli.demo import run_demo

    return run_demo(events=args.events, drift_at=args.drift_at, rate=args.rate, metrics_port=args.metrics_port,
                    live=False if args.no_live else None)


def _cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.replay import replay

    collector.tune()  # the collector tuned for a process that decodes records
    return replay(settings, args)


def _cmd_reference(args: argparse.Namespace) -> int:
    settings = settings_from(args) if args.reference_command != "show" else None  # show reads files only
    from driftline.cli import reference

    return int(getattr(reference, args.reference_command)(settings, args))


def _cmd_compare(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.compare import compare

    return compare(settings, args)


def _cmd_alerts(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.alerts import tail

    return tail(settings, args)


def _cmd_topics(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.topics import create

    return create(settings, args)


def _cmd_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.status import status

    return status(settings, args)


def _cmd_notify(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.notify import notify

    return notify(settings, args)


def _cmd_report(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from driftline.cli.report import report

    collector.tune()  # the collector tuned for a process that decodes records
    return report(settings, args)


def _cmd_schema(args: argparse.Namespace) -> int:
    from driftline.contract.schema import json_schema

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with errors of one line (exit code 2) that end with the command's usage, unknown flags named
    without their values, no prefix matching (``--window-event`` is not ``--window-events``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            # argparse checks the required flags first: a misspelt one is the likelier mistake, say that first
            known = {o for action in self._actions for o in action.option_strings}
            unknown = [t for t in _ARGV.get() if t.startswith("-") and len(t) > 1 and not t[1:2].isdigit()
                       and t.split("=", 1)[0] not in known]
            if unknown:
                message = f"{_unrecognized(self, unknown)}; {message}"
        choice = re.match(r"argument (?:COMMAND|\{[^}]*\}): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:  # a misspelt command
            guess = difflib.get_close_matches(choice[1], re.findall(r"'([^']*)'", choice[2]), n=1, cutoff=0.6)
            message = f"unknown command {choice[1]!r}" + (f" (did you mean {guess[0]}?)" if guess else "") + \
                f"; commands: {choice[2]}"
        usage = " ".join(self.format_usage().split())
        usage = usage[len("usage: "):] if usage.startswith("usage: ") else usage
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {escape(bounded(message, 300))} "
                               f"(usage: {bounded(usage, 200)}; see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        _ARGV.set(list(sys.argv[1:] if args is None else args))
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            leaf: argparse.ArgumentParser = getattr(parsed, "_parser", self)
            leaf.error(_unrecognized(leaf, extras))
        return parsed


#: flag -> the commands that take it (filled by _leaves), to say where a flag given to the wrong command belongs
_TAKEN_BY: dict[str, list[str]] = {}
#: the arguments being parsed (for the error of a missing required flag that was perhaps misspelt)
_ARGV: ContextVar[list[str]] = ContextVar("driftline_argv", default=[])


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """Name the unknown flags with the nearest real ones; values are only counted (they may be secrets)."""
    known = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    parts, values = [], 0
    for token in extras:
        if token.startswith("-") and len(token) > 1 and not token[1:2].isdigit():
            flag = token.split("=", 1)[0] if token.startswith("--") else token[:2]
            guess = difflib.get_close_matches(flag, known, n=1, cutoff=0.7)
            elsewhere = [p for p in _TAKEN_BY.get(flag, []) if p != parser.prog]
            if elsewhere:  # a real flag, of other commands
                others = ", ".join(elsewhere[:3]) + (", ..." if len(elsewhere) > 3 else "")
                parts.append(f"{flag} (an option of {others}, not of {parser.prog}" + (
                    "; settings are also DRIFTLINE_<NAME> in the environment and keys of the --config file)"
                    if flag[2:].replace("-", "_") in ALL else ")"))
            elif guess:
                parts.append(escape(bounded(flag, 60)) + f" (did you mean {guess[0]}?)")
            else:
                parts.append(escape(bounded(flag, 60)))
        else:
            values += 1
    text = "unrecognized argument" + ("s" if len(parts) != 1 else "") + " " + ", ".join(parts) if parts else ""
    if values:
        text += (" and " if text else "unrecognized ") + f"{values} value{'s' if values != 1 else ''} (not shown)"
    return text


# ------------------------------------------------------------------------------------------------ commands
# One function per command: its settings (add_settings: the flags of the Settings fields it uses, each also
# DRIFTLINE_<NAME> and a TOML key) and its own flags, declared together.  Worker settings belong to the
# commands that run the detection (run, replay, report FILE); the others take the Kafka connection, the topics
# they read or write and their own flags.  A flag name means one thing on every command.

#: the flags of the read timeout of the commands that read topics to their end (--timeout: the old spelling)
_READ_TIMEOUT = ("--read-timeout", "--timeout")


def _read_timeout(p: argparse.ArgumentParser, default: float, what: str) -> None:
    p.add_argument(*_READ_TIMEOUT, dest="timeout", type=_TIMEOUT, default=default, metavar="SECONDS",
                   help=f"seconds to {what} (--timeout: the same, its former name)")


def _run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a worker of the consumer group",
                       description="Consume inference events, publish alerts, window summaries and dead letters.")
    add_settings(p, ALL)
    p.set_defaults(func=_cmd_run)


def _demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="embedded broker + synthetic model server + worker, with a drift part-way")
    p.add_argument("--events", type=number(int, 0, _INT32), default=12_000, help="events the synthetic model server sends")
    p.add_argument("--drift-at", type=number(int, 0, _INT32), default=7_000, help="event at which the drift starts")
    p.add_argument("--rate", type=number(float, 0, 1e9), default=4_000.0, help="events per second sent (0 = as fast as possible)")
    p.add_argument("--metrics-port", type=number(int, 0, 65535), default=9188, help="port of the worker's /metrics (a free one if busy)")
    p.add_argument("--no-live", action="store_true",
                   help="plain lines instead of the live terminal view (the default when stdout is not a terminal)")
    p.set_defaults(func=_cmd_demo)


def _replay(sub: Any) -> None:
    p = sub.add_parser("replay", help="run the monitor over a file (JSONL, CSV, Parquet) without Kafka",
                       description="The same detection code as the live worker, over a file: the alerts on stdout "
                                   "(one line each, or --json), the totals and warnings on stderr.")
    p.add_argument("file", help="JSONL of input-contract records, or a CSV / Parquet table of feature columns")
    p.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="the file's format (default: from its name)")
    p.add_argument("--topic", default=None, help="topic name recorded in alert windows (default: the file name)")
    p.add_argument("--partition", type=number(int, 0, _INT32), default=0, metavar="N", help="partition recorded in alert windows")
    p.add_argument("--model", default=None, help="model name for tables without a 'model' column")
    p.add_argument("--model-version", default=None, help="model version for tables without a 'model_version' column")
    p.add_argument("--prediction-column", default="prediction", help="the output column of a table")
    p.add_argument("--alerts-out", default=None, metavar="FILE", help="write the alerts here (JSONL)")
    p.add_argument("--summaries-out", default=None, metavar="FILE", help="write the window summaries here (JSONL)")
    p.add_argument("--dead-letters-out", default=None, metavar="FILE",
                   help="write the dead letters here (JSONL: reason, detail, where, and the record's key and value, "
                        "as text or base64), to fix and replay them")
    p.add_argument("--json", action="store_true", help="print alerts as JSON lines on stdout")
    add_settings(p, DETECTION, kafka=False)
    p.set_defaults(func=_cmd_replay)


def _reference(sub: Any) -> None:
    ref = sub.add_parser("reference", help="build, merge, show, accept and withdraw reference profiles",
                         description="Reference profiles: what a model version's features looked like on known-good data.")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True, metavar="{build,merge,show,withdraw,accept}")
    publishing = CONNECTION + ("references_topic", "topic_replication_factor")
    output = dict(help="profile file to write (a directory: one file per model version)")
    publish = dict(action="store_true", help="publish to the compacted references topic, keyed model/model_version")

    build = ref_sub.add_parser("build", help="profile a training or evaluation set (JSONL, CSV, Parquet)",
                               description="Profile one or more files (shards are profiled one by one and merged); "
                                           "write the profile and/or publish it to the references topic.")
    build.add_argument("files", nargs="+", metavar="FILE", help="JSONL of input-contract records, or CSV / Parquet tables of feature columns")
    build.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="the files' format (default: from each file name)")
    build.add_argument("--model", default=None, help="model to profile (and the model of tables without a 'model' column)")
    build.add_argument("--model-version", default=None, help="model version to profile (and of tables without that column)")
    build.add_argument("--prediction-column", action="append", default=None, metavar="COLUMN",
                       help="the output column(s) of a table (repeatable, or comma-separated): the column 'prediction' "
                            "is the output 'prediction', any other column C the named output 'prediction.C' (a "
                            "record's \"prediction\": {\"C\": ...}) [default: prediction]")
    build.add_argument("--output", "-o", default=None, **output)
    build.add_argument("--publish", **publish)
    build.add_argument("--json", action="store_true", help="the profiles' summary as one JSON document on stdout")
    add_settings(build, publishing + ("max_record_bytes",))

    merge = ref_sub.add_parser("merge", help="merge profiles of one model version (e.g. built from shards)")
    merge.add_argument("files", nargs="+", metavar="FILE", help="profile files")
    merge.add_argument("--output", "-o", default=None, **output)
    merge.add_argument("--publish", **publish)
    merge.add_argument("--json", action="store_true", help="the profile's summary as one JSON document on stdout")
    add_settings(merge, publishing)

    show = ref_sub.add_parser("show", help="print profiles as tables (or --json)")
    show.add_argument("files", nargs="+", metavar="FILE", help="profile files")
    show.add_argument("--json", action="store_true", help="the profiles' summary as one JSON document on stdout")

    withdraw = ref_sub.add_parser("withdraw", help="withdraw a model version's profile (tombstone on the references topic)")
    withdraw.add_argument("--model", required=True, help="model name")
    withdraw.add_argument("--model-version", required=True, help="model version")
    add_settings(withdraw, publishing)

    acc = ref_sub.add_parser("accept", help="accept the new normal: publish a profile built from what the workers saw "
                                            "since the incident opened",
                             description="Rebuild a profile of a model version from its window summaries (metrics topic) "
                                         "since its open incident opened (alerts topic), or since --since, and publish it: "
                                         "it becomes the reference, and the open drift incidents resolve with "
                                         "\"reference_changed\". Other features keep the profile in force.")
    acc.add_argument("--model", required=True, help="model name")
    acc.add_argument("--model-version", required=True, help="model version")
    acc.add_argument("--feature", action="append", default=[], metavar="F",
                     help="accept only this feature or output (repeatable); the others keep the profile in force")
    acc.add_argument("--since", default=None, metavar="RFC3339",
                     help="event time from which the data is the new normal (default: when the open incident opened; "
                          "required when none is open)")
    acc.add_argument("--dry-run", action="store_true", help="show what would be accepted, publish nothing")
    acc.add_argument("--output", "-o", default=None, help="also write the profile to this file")
    acc.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    _read_timeout(acc, 30.0, "read the topics to their end")
    add_settings(acc, publishing + ("alerts_topic", "metrics_topic", "warmup"),
                 notes={"warmup": "accept: features with fewer values since then get a note"})
    for p in (build, merge, show, withdraw, acc):
        p.set_defaults(func=_cmd_reference)


def _compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="champion / challenger side by side (from the window summaries)",
                       description="The newest version_comparison summary of every pair of model versions that "
                                   "scored the same events: disagreement, mean difference, performance with a 95 % interval.")
    p.add_argument("--model", default=None, help="only this model")
    p.add_argument("--file", default=None, help="a JSONL of window summaries (e.g. replay --summaries-out) instead of the metrics topic")
    p.add_argument("--json", action="store_true", help="one JSON comparison per line")
    _read_timeout(p, 30.0, "read the metrics topic to its end")
    add_settings(p, CONNECTION + ("metrics_topic",))
    p.set_defaults(func=_cmd_compare)


def _alerts(sub: Any) -> None:
    alerts = sub.add_parser("alerts", help="read the alerts topic")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="{tail}")
    p = alerts_sub.add_parser("tail", help="follow alerts as they are published (pretty, or --json)",
                              description="Follow the alerts topic; filter by model, feature, status or kind.")
    p.add_argument("--model", default=None, help="only this model")
    p.add_argument("--feature", default=None, help="only this feature (or output)")
    p.add_argument("--status", choices=("firing", "resolved"), default=None, help="only firing or only resolved")
    p.add_argument("--kind", default=None, help="only this kind (data_drift, concept_drift, ...)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest alert kept, not at the newest")
    p.add_argument("--json", action="store_true", help="one JSON alert per line, for scripts")
    p.add_argument("--max", type=number(int, 0, _INT32), default=0, metavar="N", help="stop after this many alerts (0 = follow)")
    p.add_argument("--duration", type=number(float, 0, 1e9), default=0.0, metavar="SECONDS",
                   help="stop after this many seconds (0 = follow)")
    p.add_argument("--timeout", dest="duration", type=number(float, 0, 1e9), help=argparse.SUPPRESS)  # former name
    add_settings(p, CONNECTION + ("alerts_topic",))
    p.set_defaults(func=_cmd_alerts)


def _topics(sub: Any) -> None:
    topics = sub.add_parser("topics", help="manage driftline's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="{create}")
    p = topics_sub.add_parser("create", help="create every missing driftline topic with the right configs",
                              description="Input topics, the labels topic (with the input topics' partition count), "
                                          "alerts, window summaries and dead letters (delete policy), and the "
                                          "compacted references topic. Existing topics are left as they are.")
    p.add_argument("--partitions", type=number(int, 1, 100_000), default=None, metavar="N",
                   help="partitions of new input topics [default: the setting topic_partitions]")
    p.add_argument("--json", action="store_true", help="the topics as one JSON document on stdout, for scripts")
    add_settings(p, CONNECTION + tuple(t for t in _TOPIC_NAMES if t != "group_id")
                 + ("topic_partitions", "topic_replication_factor"))
    p.set_defaults(func=_cmd_topics)


def _status(sub: Any) -> None:
    p = sub.add_parser("status", help="what a worker group monitors: members, partitions, lag, models, active alerts",
                       description="The consumer group (group_id) with its members and their partitions, committed "
                                   "offsets against the log end (lag), the models / versions / features monitored with "
                                   "their reference (newest window summaries) and the active alerts.")
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    _read_timeout(p, 30.0, "query the group and read the topics to their end")
    p.add_argument("--since", type=number(float, 0, 1e12), default=86_400.0, metavar="SECONDS",
                   help="seconds of window summaries to read (0 = the whole metrics topic); alerts are always read whole")
    p.add_argument("--model", default=None, help="only this model, with its performance per window (accuracy or MAE, "
                                                  "label coverage) and its concept-drift alerts")
    add_settings(p, CONNECTION + ("group_id", "input_topics", "labels_topic", "metrics_topic", "alerts_topic",
                                  "deadletter_topic", "auto_offset_reset"),
                 notes={"group_id": "status: the group described",
                        "auto_offset_reset": "status: where the workers' group starts, for the lag of partitions "
                                             "without a committed offset"})
    p.set_defaults(func=_cmd_status)


def _notify(sub: Any) -> None:
    from driftline.cli.notify import add_notify_flags
    from driftline.transport.notifier import DEFAULT_START

    p = sub.add_parser("notify", help="post alerts to Slack and generic JSON webhooks",
                       description="Consume the alerts topic in a consumer group and post every alert, firing and "
                                   "resolved, to webhooks: retried with backoff, at most one firing message per "
                                   "alert key per cooldown, offsets committed after delivery (at-least-once: "
                                   "receivers de-duplicate on alert_id). See docs/notify.md.")
    add_notify_flags(p)
    # group_id and cooldown_seconds are the workers' settings, accepted as before but not listed: notify's own are
    # --group and --cooldown (the workers' cooldown_seconds only lengthens notify's look back on assignment; like
    # every unused topic or group name, group_id is accepted by add_settings unlisted)
    add_settings(p, CONNECTION + ("alerts_topic", "auto_offset_reset", "session_timeout_ms", "heartbeat_interval_ms",
                                  "poll_timeout_seconds", "metrics_host", "metrics_port", "log_level", "log_format"),
                 hidden=("cooldown_seconds",),
                 defaults={"auto_offset_reset": f"{DEFAULT_START} (notify's own: a new notify group posts new alerts "
                                                "only, unless this is given)"})
    p.set_defaults(func=_cmd_notify)


def _report(sub: Any) -> None:
    p = sub.add_parser("report", help="write a self-contained HTML drift report for a model",
                       description="Per feature: reference vs current distribution, drift statistics per window with "
                                   "alert markers, missing ratio, and the features that moved first. From a replayed "
                                   "FILE, from --summaries [--alerts] JSONL files, or from the metrics and alerts topics.")
    p.add_argument("file", nargs="?", default=None,
                   help="replay this file (JSONL of input-contract records, or a CSV / Parquet table) and report it")
    p.add_argument("--model", required=True, help="the model to report (and the model of tables without a 'model' column)")
    p.add_argument("--model-version", default=None, help="only this version (default: every version, one section each)")
    p.add_argument("--output", "-o", required=True, help="HTML file to write")
    p.add_argument("--summaries", default=None, metavar="FILE", help="JSONL of window summaries (replay --summaries-out) instead of FILE or the topics")
    p.add_argument("--alerts", default=None, metavar="FILE", help="with --summaries: JSONL of alerts (replay --alerts-out)")
    p.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="FILE's format (default: from its name)")
    p.add_argument("--topic", default=None, help="FILE: topic name recorded in windows (default: the file name)")
    p.add_argument("--partition", type=number(int, 0, _INT32), default=0, metavar="N", help="FILE: partition recorded in windows")
    p.add_argument("--prediction-column", default="prediction", help="FILE: the output column of a table")
    _read_timeout(p, 60.0, "read each topic to its end")
    # the detection settings: a FILE is replayed as a worker would run it, and the page names the windowed tests
    add_settings(p, CONNECTION + ("metrics_topic", "alerts_topic", "references_topic") + DETECTION)
    p.set_defaults(func=_cmd_report)


def _schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of the input contract")
    p.set_defaults(func=_cmd_schema)


_TOPIC_NAMES = ("input_topics", "group_id", "labels_topic", "alerts_topic", "metrics_topic", "deadletter_topic",
                "references_topic", "state_topic")

#: The commands, in the order of ``driftline --help``.
COMMANDS = (_run, _demo, _replay, _reference, _compare, _alerts, _topics, _status, _notify, _report, _schema)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftline", description="Streaming drift detection for ML models on Kafka.")
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command(sub)
    _leaves(parser)
    return parser


def _usage(parser: argparse.ArgumentParser) -> str:
    """A short usage line: the required flags, ``[options]`` and the positional arguments."""
    parts = ["%(prog)s"]
    for action in parser._actions:
        if action.option_strings and action.required:
            parts.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
    parts.append("[options]")
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            name = action.metavar or action.dest.upper()
            parts.append({"+": f"{name} [{name} ...]", "?": f"[{name}]", "*": f"[{name} ...]"}.get(action.nargs, name))
    return " ".join(parts)


def _leaves(parser: argparse.ArgumentParser) -> None:
    """Every sub-command's parser is a _Parser that knows itself (for the unknown-flag message), with a short usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(_parser=sub)
                if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    sub.usage = _usage(sub)
                    for a in sub._actions:
                        for option in a.option_strings:
                            if option not in ("-h", "--help") and sub.prog not in _TAKEN_BY.setdefault(option, []):
                                _TAKEN_BY[option].append(sub.prog)
                _leaves(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (2, its line already printed), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for line in str(exc).splitlines() or ["invalid configuration"]:
            _say(f"configuration error: {line}")
        return EXIT_CONFIG
    except BrokerUnreachableError as exc:
        _say(str(exc))
        return EXIT_BROKER
    except ProducerFencedError as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return EXIT_FENCED
    except DriftlineError as exc:
        _say(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback, without the secrets of the configuration it ran with
        import traceback

        sys.stderr.write(scrub_known(traceback.format_exc()))
        return EXIT_FAILURE


def _say(message: str) -> None:
    """One line on stderr: escaped, without any secret of a configuration loaded."""
    print(f"driftline: {scrub_known(escape(message))}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
