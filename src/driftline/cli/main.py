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
from typing import Any, NoReturn, Sequence

import orjson

from driftline import __version__
from driftline.config import NO_FLAG, Settings, load_settings
from driftline.errors import BrokerUnreachableError, ConfigError, DriftlineError, ProducerFencedError
from driftline.redact import bounded, escape, is_secret_property, scrub_known

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_BROKER = 3
EXIT_FAILURE = 1
#: another worker took over this worker's transactional id (driftline.transport.worker.EXIT_FENCED)
EXIT_FENCED = 4


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per setting (values are validated by the settings model)."""
    group = parser.add_argument_group("settings (each also DRIFTLINE_<NAME> in the environment)")
    for name, field in Settings.model_fields.items():
        if name in NO_FLAG:  # mappings: TOML or the environment (kafka also -X)
            continue
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, dest=f"setting_{name}", metavar=name.upper(), default=None,
                           help=(field.description or "") + f" [default: {field.default!r}]".replace("%", "%%"))
    parser.add_argument("-X", dest="kafka_props", action="append", default=[], metavar="PROP=VALUE",
                        help="librdkafka property passed through (repeatable), e.g. -X security.protocol=SASL_SSL")
    parser.add_argument("--config", dest="config_file", default=None,
                        help="TOML file of settings (env DRIFTLINE_CONFIG); flags and env override it")


def _settings_from(args: argparse.Namespace, **defaults: Any) -> Settings:
    overrides: dict[str, Any] = dict(defaults)
    for key, value in vars(args).items():
        if key.startswith("setting_") and value is not None:
            overrides[key[len("setting_"):]] = value
    if args.kafka_props:
        props = {}
        for i, item in enumerate(args.kafka_props, 1):
            k, sep, v = item.partition("=")
            k = k.strip()
            if not sep or not k:
                # the argument may be a secret without its "=": name it only when it looks like a property name
                what = (f"-X {k}" if re.fullmatch(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+", k) and len(k) <= 80
                        and not is_secret_property(k) else f"the -X argument number {i}")
                raise ConfigError(f"invalid setting kafka: {what} is not PROPERTY=VALUE (value hidden; set it with "
                                  "-X PROPERTY=VALUE, env DRIFTLINE_KAFKA__<PROPERTY> or the TOML table [kafka])")
            props[k] = v
        overrides["kafka"] = props
    return load_settings(config_file=args.config_file, overrides_from="flags", **overrides)


def _number(kind: type, low: float, high: float, *, low_open: bool = False):
    """An argparse ``type`` for a command's own numeric flag: finite, within [low, high] (a bad value is a
    usage error, exit code 2, one line; librdkafka takes timeouts up to an hour, partitions up to 100000)."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: "
                                             f"{escape(bounded(repr(text), 40))}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError("must be a finite number")
        if value < low or (low_open and value == low) or value > high:
            bound = f"above {low}" if low_open else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound} and at most {high} (got {value:g})" if isinstance(value, float)
                                             else f"must be {bound} and at most {high} (got {value})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_INT32 = 2_147_483_647
_TIMEOUT = _number(float, 0, 3600, low_open=True)


def tune_gc() -> None:
    """Run CPython's cycle collector less often in a worker process.

    Decoding makes a few dicts per event, all freed by reference counting;
    the default young-generation threshold (700 allocations) still walked
    them, which cost about a third of the pipeline's time (in-memory
    batches of 80,000 events: 2.8 s with the default, 1.8 s without
    collections).  (``gc.freeze`` would save more but keeps the native
    sketches alive past exit, where nanobind reports them as leaks.)
    """
    import gc

    gc.set_threshold(50_000, 20, 20)


# Each command loads its settings before importing its machinery (the pipeline pulls in scipy and
# river, about a second): a configuration error is reported at once.
def _cmd_run(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.observability.logging import configure_logging
    from driftline.transport.worker import Worker

    tune_gc()
    configure_logging(settings.log_level, settings.log_format)
    Worker(settings).run(exit_on_stall=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from driftline.cli.demo import run_demo

    return run_demo(events=args.events, drift_at=args.drift_at, rate=args.rate, metrics_port=args.metrics_port,
                    live=False if args.no_live else None)


def _cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.replay import replay

    tune_gc()
    return replay(settings, args)


def _cmd_reference(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli import reference

    return int(getattr(reference, args.reference_command)(settings, args))


def _cmd_compare(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.compare import compare

    return compare(settings, args)


def _cmd_alerts(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.alerts import tail

    return tail(settings, args)


def _cmd_topics(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.topics import create

    return create(settings, args)


def _cmd_status(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.status import status

    return status(settings, args)


def _cmd_notify(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.notify import notify

    return notify(settings, args)


def _cmd_report(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from driftline.cli.report import report

    tune_gc()
    return report(settings, args)


def _cmd_schema(args: argparse.Namespace) -> int:
    from driftline.contract.schema import json_schema

    sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with errors of one line (exit code 2), and unknown flags named without their values."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {escape(bounded(message, 300))} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            leaf: argparse.ArgumentParser = getattr(parsed, "_parser", self)
            leaf.error(_unrecognized(leaf, extras))
        return parsed


def _unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """Name the unknown flags with the nearest real ones; values are only counted (they may be secrets)."""
    known = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    parts, values = [], 0
    for token in extras:
        if token.startswith("-") and len(token) > 1 and not token[1:2].isdigit():
            flag = token.split("=", 1)[0]
            guess = difflib.get_close_matches(flag, known, n=1, cutoff=0.7)
            parts.append(escape(bounded(flag, 60)) + (f" (did you mean {guess[0]}?)" if guess else ""))
        else:
            values += 1
    text = "unrecognized argument" + ("s" if len(parts) != 1 else "") + " " + ", ".join(parts) if parts else ""
    if values:
        text += (" and " if text else "unrecognized ") + f"{values} value{'s' if values != 1 else ''} (not shown)"
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftline", description="Streaming drift detection for ML models on Kafka.")
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a worker of the consumer group",
                         description="Consume inference events, publish alerts, window summaries and dead letters.")
    _add_setting_flags(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="embedded broker + synthetic model server + worker, with a drift part-way")
    demo.add_argument("--events", type=_number(int, 0, _INT32), default=12_000, help="events the synthetic model server sends")
    demo.add_argument("--drift-at", type=_number(int, 0, _INT32), default=7_000, help="event at which the drift starts")
    demo.add_argument("--rate", type=_number(float, 0, 1e9), default=4_000.0, help="events per second sent (0 = as fast as possible)")
    demo.add_argument("--metrics-port", type=_number(int, 0, 65535), default=9188, help="port of the worker's /metrics (a free one if busy)")
    demo.add_argument("--no-live", action="store_true",
                      help="plain lines instead of the live terminal view (the default when stdout is not a terminal)")
    demo.set_defaults(func=_cmd_demo)

    rep = sub.add_parser("replay", help="run the monitor over a file (JSONL, CSV, Parquet) without Kafka",
                         description="The same detection code as the live worker, over a file; prints the alerts.")
    rep.add_argument("file", help="JSONL of input-contract records, or a CSV / Parquet table of feature columns")
    rep.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="default: from the file name")
    rep.add_argument("--topic", default=None, help="topic name recorded in alert windows (default: the file name)")
    rep.add_argument("--partition", type=_number(int, 0, _INT32), default=0, help="partition recorded in alert windows")
    rep.add_argument("--model", default=None, help="model name for tables without a 'model' column")
    rep.add_argument("--model-version", default=None, help="model version for tables without a 'model_version' column")
    rep.add_argument("--prediction-column", default="prediction", help="the output column of a table")
    rep.add_argument("--alerts-out", default=None, help="write the alerts here (JSONL)")
    rep.add_argument("--summaries-out", default=None, help="write the window summaries here (JSONL)")
    rep.add_argument("--dead-letters-out", default=None, metavar="PATH",
                     help="write the dead letters here (JSONL: reason, detail, where, and the record's key and value, "
                          "as text or base64), to fix and replay them")
    rep.add_argument("--json", action="store_true", help="print alerts as JSON lines on stdout")
    _add_setting_flags(rep)
    rep.set_defaults(func=_cmd_replay)

    ref = sub.add_parser("reference", help="build, merge, show, accept and withdraw reference profiles",
                         description="Reference profiles: what a model version's features looked like on known-good data.")
    ref_sub = ref.add_subparsers(dest="reference_command", required=True)
    build = ref_sub.add_parser("build", help="profile a training or evaluation set (JSONL, CSV, Parquet)",
                               description="Profile one or more files (shards are profiled one by one and merged); "
                                           "write the profile and/or publish it to the references topic.")
    build.add_argument("files", nargs="+", help="JSONL of input-contract records, or CSV / Parquet tables of feature columns")
    build.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="default: from each file name")
    build.add_argument("--model", default=None, help="model to profile (and the model of tables without a 'model' column)")
    build.add_argument("--model-version", default=None, help="model version to profile (and of tables without that column)")
    build.add_argument("--prediction-column", action="append", default=None, metavar="COLUMN",
                       help="the output column(s) of a table (repeatable, or comma-separated): the column 'prediction' "
                            "is the output 'prediction', any other column C the named output 'prediction.C' (a "
                            "record's \"prediction\": {\"C\": ...}) [default: prediction]")
    merge = ref_sub.add_parser("merge", help="merge profiles of one model version (e.g. built from shards)")
    merge.add_argument("files", nargs="+", help="profile files")
    show = ref_sub.add_parser("show", help="print profiles as tables")
    show.add_argument("files", nargs="+", help="profile files")
    withdraw = ref_sub.add_parser("withdraw", help="withdraw a model version's profile (tombstone on the references topic)")
    withdraw.add_argument("--model", required=True, help="model name")
    withdraw.add_argument("--model-version", required=True, help="model version")
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
    acc.add_argument("--timeout", type=_TIMEOUT, default=30.0, help="seconds to read the topics to their end")
    for p in (build, merge):
        p.add_argument("--output", "-o", default=None, help="profile file to write (a directory: one file per model version)")
        p.add_argument("--publish", action="store_true", help="publish to the compacted references topic, keyed model/model_version")
    for p in (build, merge, show, withdraw, acc):
        _add_setting_flags(p)
        p.set_defaults(func=_cmd_reference)

    cmp_ = sub.add_parser("compare", help="champion / challenger side by side (from the window summaries)",
                          description="The newest version_comparison summary of every pair of model versions that "
                                      "scored the same events: disagreement, mean difference, performance with a 95 % interval.")
    cmp_.add_argument("--model", default=None, help="only this model")
    cmp_.add_argument("--file", default=None, help="a JSONL of window summaries (e.g. replay --summaries-out) instead of the metrics topic")
    cmp_.add_argument("--json", action="store_true", help="one JSON comparison per line")
    cmp_.add_argument("--timeout", type=_TIMEOUT, default=30.0, help="seconds to read the metrics topic to its end")
    _add_setting_flags(cmp_)
    cmp_.set_defaults(func=_cmd_compare)

    alerts = sub.add_parser("alerts", help="read the alerts topic")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    atail = alerts_sub.add_parser("tail", help="follow alerts as they are published (pretty, or --json)",
                                  description="Follow the alerts topic; filter by model, feature, status or kind.")
    atail.add_argument("--model", default=None, help="only this model")
    atail.add_argument("--feature", default=None, help="only this feature (or output)")
    atail.add_argument("--status", choices=("firing", "resolved"), default=None, help="only firing or only resolved")
    atail.add_argument("--kind", default=None, help="only this kind (data_drift, concept_drift, ...)")
    atail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert kept, not at the newest")
    atail.add_argument("--json", action="store_true", help="one JSON alert per line, for scripts")
    atail.add_argument("--max", type=_number(int, 0, _INT32), default=0, help="stop after this many alerts (0 = follow)")
    atail.add_argument("--timeout", type=_number(float, 0, 1e9), default=0.0, help="stop after this many seconds (0 = follow)")
    _add_setting_flags(atail)
    atail.set_defaults(func=_cmd_alerts)

    topics = sub.add_parser("topics", help="manage driftline's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    tcreate = topics_sub.add_parser("create", help="create every missing driftline topic with the right configs",
                                    description="Input topics, the labels topic (with the input topics' partition count), "
                                                "alerts, window summaries and dead letters (delete policy), and the "
                                                "compacted references topic. Existing topics are left as they are.")
    tcreate.add_argument("--partitions", type=_number(int, 1, 100_000), default=None, help="partitions of new input topics [default: topic_partitions]")
    _add_setting_flags(tcreate)
    tcreate.set_defaults(func=_cmd_topics)

    st = sub.add_parser("status", help="what a worker group monitors: members, partitions, lag, models, active alerts",
                        description="The consumer group (group_id) with its members and their partitions, committed "
                                    "offsets against the log end (lag), the models / versions / features monitored with "
                                    "their reference (newest window summaries) and the active alerts.")
    st.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    st.add_argument("--timeout", type=_TIMEOUT, default=30.0, help="seconds to query the group and read the topics to their end")
    st.add_argument("--since", type=_number(float, 0, 1e12), default=86_400.0,
                    help="seconds of window summaries to read (0 = the whole metrics topic); alerts are always read whole")
    st.add_argument("--model", default=None, help="only this model, with its performance per window (accuracy or MAE, "
                                                  "label coverage) and its concept-drift alerts")
    _add_setting_flags(st)
    st.set_defaults(func=_cmd_status)

    from driftline.cli.notify import add_notify_flags

    notify = sub.add_parser("notify", help="post alerts to Slack and generic JSON webhooks",
                            description="Consume the alerts topic in a consumer group and post every alert, firing and "
                                        "resolved, to webhooks: retried with backoff, at most one firing message per "
                                        "alert key per cooldown, offsets committed after delivery (at-least-once: "
                                        "receivers de-duplicate on alert_id). See docs/notify.md.")
    add_notify_flags(notify)
    _add_setting_flags(notify)
    notify.set_defaults(func=_cmd_notify)

    rpt = sub.add_parser("report", help="write a self-contained HTML drift report for a model",
                         description="Per feature: reference vs current distribution, drift statistics per window with "
                                     "alert markers, missing ratio, and the features that moved first. From a replayed "
                                     "FILE, from --summaries [--alerts] JSONL files, or from the metrics and alerts topics.")
    rpt.add_argument("file", nargs="?", default=None,
                     help="replay this file (JSONL of input-contract records, or a CSV / Parquet table) and report it")
    rpt.add_argument("--model", required=True, help="the model to report (and the model of tables without a 'model' column)")
    rpt.add_argument("--model-version", default=None, help="only this version (default: every version, one section each)")
    rpt.add_argument("--output", "-o", required=True, help="HTML file to write")
    rpt.add_argument("--summaries", default=None, help="JSONL of window summaries (replay --summaries-out) instead of FILE or the topics")
    rpt.add_argument("--alerts", default=None, help="with --summaries: JSONL of alerts (replay --alerts-out)")
    rpt.add_argument("--format", choices=("jsonl", "csv", "parquet"), default=None, help="FILE's format (default: from its name)")
    rpt.add_argument("--topic", default=None, help="FILE: topic name recorded in windows (default: the file name)")
    rpt.add_argument("--partition", type=_number(int, 0, _INT32), default=0, help="FILE: partition recorded in windows")
    rpt.add_argument("--prediction-column", default="prediction", help="FILE: the output column of a table")
    rpt.add_argument("--timeout", type=_TIMEOUT, default=60.0, help="seconds to read the topics to their end")
    _add_setting_flags(rpt)
    rpt.set_defaults(func=_cmd_report)

    schema = sub.add_parser("schema", help="print the JSON Schema of the input contract")
    schema.set_defaults(func=_cmd_schema)
    return parser


def _leaves(parser: argparse.ArgumentParser) -> None:
    """Every sub-command's parser is a _Parser that knows itself (for the unknown-flag message)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(_parser=sub)
                _leaves(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _leaves(parser)
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
