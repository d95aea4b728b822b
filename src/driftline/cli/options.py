"""The command line's options: which settings each command takes, and how their help reads.

Every setting of :class:`driftline.config.Settings` is also ``DRIFTLINE_<NAME>`` in the
environment and a TOML key of ``--config``; on the command line, a command takes only the
settings it uses (:data:`CONNECTION` for every command that talks to Kafka, the topics it
reads or writes, :data:`DETECTION` for the commands that run the detection pipeline).
``driftline run`` takes them all.  Help shows each setting's default as it would be written
on the command line, its allowed values (from the field's type), its environment variable
and TOML key.
"""

from __future__ import annotations

import argparse
import math
import re
import types
import typing
from typing import Any, Iterable, Mapping

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from driftline.config import ENV_PREFIX, NO_FLAG, Settings, load_settings
from driftline.errors import ConfigError
from driftline.redact import bounded, escape, is_secret_property

__all__ = ["CONNECTION", "TOPICS", "DETECTION", "WORKER_ONLY", "ALL", "HelpFormatter", "add_settings", "settings_from",
           "setting_flag", "setting_help", "with_note", "number", "shown", "choices_of", "INT32"]

INT32 = 2_147_483_647

#: How a command reaches Kafka: on every command that talks to it (with ``-X`` and ``--config``).
CONNECTION = ("bootstrap_servers", "sasl_password", "ssl_key_password", "broker_timeout_seconds")

#: Topic and group names; a command takes those it reads or writes.
TOPICS = ("input_topics", "group_id", "labels_topic", "alerts_topic", "metrics_topic", "deadletter_topic",
          "references_topic", "state_topic")

#: What the detection pipeline is told: ``run``, ``replay`` and ``report FILE`` (which replays it).
DETECTION = (
    "max_record_bytes", "max_name_chars", "max_category_chars", "max_event_time_skew_seconds",
    "warmup", "window_events", "window_seconds", "false_alarm_rate", "design_shift", "detector_block",
    "cooldown_seconds", "resolve_after_seconds", "incident_group_seconds", "reminder_seconds", "max_models",
    "max_features_per_model", "max_categories", "join_window_seconds", "join_max_pending", "label_warmup",
    "reference_files", "numeric_window_test", "categorical_window_test", "psi_threshold", "ks_threshold",
    "wasserstein_threshold", "jensen_shannon_threshold", "batch_size", "labels_topic",
)

#: Every setting with a flag (mappings have none: ``kafka`` has ``-X``, ``models`` only TOML and the environment).
ALL = tuple(name for name in Settings.model_fields if name not in NO_FLAG)

#: Settings of the worker itself (a group member that commits, checkpoints and serves /metrics): only ``run``.
WORKER_ONLY = tuple(n for n in ALL if n not in CONNECTION + TOPICS + DETECTION + (
    "auto_offset_reset", "topic_partitions", "topic_replication_factor", "session_timeout_ms",
    "heartbeat_interval_ms", "poll_timeout_seconds", "log_level", "log_format"))

#: Help sections of the settings, in order (a setting not named here is a worker setting).
_SECTIONS = (
    ("Kafka connection", CONNECTION),
    ("topics", TOPICS + ("topic_partitions", "topic_replication_factor", "create_topics")),
    ("consumer", ("auto_offset_reset", "session_timeout_ms", "heartbeat_interval_ms", "poll_timeout_seconds")),
    ("detection", DETECTION),
    ("logging", ("log_level", "log_format")),
)

_HELP_DEFAULT = re.compile(r"\[default[:\]]|%\(default\)")


# ------------------------------------------------------------------------------------ rendering
def shown(value: Any) -> str:
    """A default as it would be typed on the command line (not a Python repr).

    >>> [shown(v) for v in (True, None, ["ml.inferences", "b"], [], 60.0, 2e-7, "", "x", 5000)]
    ['true', 'unset', 'ml.inferences,b', 'none', '60', '2e-07', '""', 'x', '5000']
    """
    if value is None or value is PydanticUndefined or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(shown(v) for v in value) if value else "none"
    if isinstance(value, float):
        return format(value, ".15g") if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def choices_of(annotation: Any) -> tuple[str, ...] | None:
    """The allowed values of a ``Literal`` (or ``bool``) field, optional or not; None for free values.

    >>> choices_of(typing.Literal["a", "b"] | None), choices_of(bool), choices_of(int)
    (('a', 'b'), ('true', 'false'), None)
    """
    if annotation is bool:
        return ("true", "false")
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and (found := choices_of(arg)) is not None:
                return found
    return None


def _metavar(name: str, annotation: Any) -> str:
    choices = choices_of(annotation)
    if choices is not None:
        return "{" + ",".join(choices) + "}"
    if typing.get_origin(annotation) is list:
        return "A,B,..."
    if name.endswith("_seconds"):
        return "SECONDS"
    if name.endswith("_ms"):
        return "MS"
    if "SecretStr" in str(annotation):
        return "SECRET"
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    if name.endswith("_topic"):
        return "TOPIC"
    return "TEXT"


def setting_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def with_note(text: str, note: str | None) -> str:
    """``text`` with ``(note)`` before its final full stop."""
    if not note:
        return text
    return f"{text[:-1]} ({note})." if text.endswith(".") else f"{text} ({note})"


def setting_help(name: str, *, default: str | None = None, note: str | None = None) -> str:
    """A setting's help: its description, then default, environment variable and TOML key."""
    field = Settings.model_fields[name]
    text = with_note(field.description or "", note)
    value = default if default is not None else shown(field.get_default(call_default_factory=True))
    bounds = _bounds(field.metadata)
    return f"{text} [default: {value}{'; ' + bounds if bounds else ''}; env {ENV_PREFIX}{name.upper()}; TOML {name}]"


def _bounds(metadata: list[Any]) -> str:
    """The numeric range of a field, from its ``ge`` / ``gt`` / ``le`` / ``lt`` constraints (e.g. ``at least 50``).

    >>> import annotated_types as at
    >>> _bounds([at.Ge(0), at.Le(65535)]), _bounds([at.Gt(0)]), _bounds([])
    ('0 to 65535', 'above 0', '')
    """
    low = high = None
    for m in metadata:
        for attr, kind in (("ge", "low"), ("gt", "low_open"), ("le", "high"), ("lt", "high_open")):
            if getattr(m, attr, None) is not None:
                if kind.startswith("low"):
                    low = (shown(getattr(m, attr)), kind == "low_open")
                else:
                    high = (shown(getattr(m, attr)), kind == "high_open")
    if low and high and not low[1] and not high[1]:
        return f"{low[0]} to {high[0]}"
    parts = ([f"above {low[0]}" if low[1] else f"at least {low[0]}"] if low else []) + \
            ([f"below {high[0]}" if high[1] else f"at most {high[0]}"] if high else [])
    return ", ".join(parts)


class HelpFormatter(argparse.HelpFormatter):
    """Wider help, and the default of a command's own flag shown as it would be typed.

    (Settings say their default in their help, see :func:`setting_help`; flags whose default
    is None, False or empty say nothing, or say it in their help.)"""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=min(120, max(80, _columns())))

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        quiet = default is None or default is False or default is argparse.SUPPRESS or default in ([], ())
        if action.option_strings and not quiet and not _HELP_DEFAULT.search(text) and action.nargs != 0:
            text += f" [default: {shown(default)}]"
        return text.replace("%", "%%") if "%(" not in text else text


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


# ------------------------------------------------------------------------------------ adding flags
def add_settings(parser: argparse.ArgumentParser, names: Iterable[str], *, kafka: bool = True,
                 defaults: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None,
                 hidden: Iterable[str] = ()) -> None:
    """Add the flags of the settings ``names`` (with ``-X`` when ``kafka``, and ``--config``), grouped by section.

    ``defaults`` replaces the default shown for a setting (a command that uses another one),
    ``notes`` adds a sentence to its help; ``hidden`` settings are accepted but not listed.  A command that
    talks to Kafka (``kafka``) also accepts, unlisted, the topic and group names it does not use, so one set
    of connection flags serves every such command."""
    hidden = set(hidden) | ({n for n in TOPICS if n not in set(names)} if kafka else set())
    names = [n for n in ALL if n in set(names) | hidden]
    defaults, notes = dict(defaults or {}), dict(notes or {})
    groups: dict[str, argparse._ArgumentGroup] = {}

    def group(title: str) -> argparse._ArgumentGroup:
        if title not in groups:
            groups[title] = parser.add_argument_group(f"settings: {title}" if title != "configuration" else title)
        return groups[title]

    config = group("configuration")
    config.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                        help=f"TOML file of settings (also env {ENV_PREFIX}CONFIG); flags, then the environment, "
                             "override it. Every setting is also DRIFTLINE_<NAME> in the environment and a TOML key")
    if kafka:
        group("Kafka connection").add_argument(
            "-X", dest="kafka_props", action="append", default=[], metavar="PROP=VALUE",
            help="librdkafka property passed through (repeatable), e.g. -X security.protocol=SASL_SSL "
                 f"[env {ENV_PREFIX}KAFKA__<PROPERTY>; TOML table [kafka]]")
    section = {name: next((t for t, members in _SECTIONS if name in members), "worker") for name in names}
    for title in [t for t, _ in _SECTIONS] + ["worker"]:
        for name in (n for n in names if section[n] == title):
            field = Settings.model_fields[name]
            help_text = argparse.SUPPRESS if name in hidden else setting_help(
                name, default=defaults.get(name), note=notes.get(name))
            group(title).add_argument(setting_flag(name), dest=f"setting_{name}", default=None,
                                      metavar=_metavar(name, field.annotation), help=help_text)


def settings_from(args: argparse.Namespace, **defaults: Any) -> Settings:
    """The settings of a command: its setting flags and ``-X`` over the environment, the TOML file and the defaults."""
    overrides: dict[str, Any] = dict(defaults)
    for key, value in vars(args).items():
        if key.startswith("setting_") and value is not None:
            overrides[key[len("setting_"):]] = value
    props_given = getattr(args, "kafka_props", None) or []
    if props_given:
        props = {}
        for i, item in enumerate(props_given, 1):
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
    return load_settings(config_file=getattr(args, "config_file", None), overrides_from="flags", **overrides)


def number(kind: type, low: float, high: float, *, low_open: bool = False):
    """An argparse ``type`` for a command's own numeric flag: finite, within [low, high] (a bad value is a
    usage error, exit code 2, one line; librdkafka takes timeouts up to an hour, partitions up to 100000)."""

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
