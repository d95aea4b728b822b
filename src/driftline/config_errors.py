"""How configuration errors are told: one line per bad setting, nothing secret in it.

Every line names the setting, where its value came from (``flag --warmup``,
``env DRIFTLINE_WARMUP``, ``TOML key warmup in FILE``, ``-X PROPERTY``) and
only the ways it can really be set: settings have a flag, an environment
variable and a TOML key, except ``kafka`` (``-X``, ``DRIFTLINE_KAFKA__*``,
``[kafka]``) and ``models`` (``[models.<name>]`` in TOML, and
``DRIFTLINE_MODELS__<NAME>__<RULE>`` for model names the environment can
spell).  Unknown names get the nearest real one (difflib), TOML syntax errors
the file, line and column.

What is never printed: the value of a secret setting (``SecretStr`` fields)
or of a kafka property holding a credential (:func:`driftline.redact.is_secret_property`),
the value given under an unknown name (it may be a misspelt secret), whole
inputs (the dictionary a cross-field check saw, a whole ``[models.x]`` table
or ``kafka`` mapping).  Other values are shown bounded and escaped
(:func:`driftline.redact.shown`).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from driftline.errors import ConfigError
from driftline.redact import bounded, escape, is_secret_property, shown

__all__ = ["INT32_MAX", "SettingsConflict", "setting_ways", "kafka_property_ways", "read_toml", "source_origins",
           "describe_validation_error", "settings_error_line", "near_miss"]

#: Largest value of a 32-bit signed integer (librdkafka's and Kafka's integer properties).
INT32_MAX = 2_147_483_647


class SettingsConflict(ValueError):
    """A combination of settings that cannot work (raised by ``Settings._check``).

    ``fields`` are the settings involved, ``kafka_property`` a librdkafka property involved.
    The message must not contain secret values.
    """

    def __init__(self, fields: Iterable[str], message: str, *, kafka_property: str | None = None) -> None:
        super().__init__(message)
        self.fields = tuple(fields)
        self.message = message
        self.kafka_property = kafka_property


# ----------------------------------------------------------------- naming the ways to set a setting
def _prefix() -> str:
    from driftline.config import ENV_PREFIX

    return ENV_PREFIX


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def setting_ways(name: str) -> str:
    """The ways a setting of :class:`driftline.config.Settings` can be given, as a phrase.

    >>> setting_ways("warmup")
    'flag --warmup, env DRIFTLINE_WARMUP or TOML key warmup'
    """
    p = _prefix()
    if name == "kafka":
        return f"-X PROPERTY=VALUE, env {p}KAFKA__<PROPERTY> or the TOML table [kafka]"
    if name == "models":
        return f"the TOML table [models.<name>] or env {p}MODELS__<NAME>__<RULE> (lower-case model names)"
    return f"flag {_flag(name)}, env {p}{name.upper()} or TOML key {name}"


def _ways_of(fields: tuple[str, ...]) -> str:
    if len(fields) == 1:
        return setting_ways(fields[0])
    plain = [f for f in fields if f not in ("kafka", "models")]
    p = _prefix()
    text = (f"flags {' / '.join(_flag(f) for f in plain)}, env {' / '.join(p + f.upper() for f in plain)} "
            f"or TOML keys {' / '.join(plain)}")
    return "; ".join([text] + [setting_ways(f) for f in fields if f in ("kafka", "models")])


def _env_spelling(prop: str) -> str | None:
    """``DRIFTLINE_KAFKA__<PROP>`` when that variable really sets ``prop`` (every underscore becomes a dot)."""
    from driftline.config import _dotted

    if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", prop):
        return None
    env = prop.replace(".", "_").upper()
    return f"{_prefix()}KAFKA__{env}" if _dotted(env) == prop else None


def kafka_property_ways(prop: str) -> str:
    """How one librdkafka property can be given.

    >>> kafka_property_ways("socket.timeout.ms")
    '-X socket.timeout.ms=VALUE, env DRIFTLINE_KAFKA__SOCKET_TIMEOUT_MS or "socket.timeout.ms" in the TOML table [kafka]'
    """
    name = escape(bounded(prop, 80))
    env = _env_spelling(prop)
    return f"-X {name}=VALUE, " + (f"env {env} or " if env else "") + f'"{name}" in the TOML table [kafka]'


def _model_env_safe(model: str) -> bool:
    # The environment source lower-cases names and splits on "__": only such names survive.
    return bool(re.fullmatch(r"[a-z0-9_]+", model)) and "__" not in model and not model.endswith("_")


def _toml_model(model: str) -> str:
    key = model if re.fullmatch(r"[A-Za-z0-9_-]+", model) else '"' + escape(bounded(model, 60)).replace('"', '\\"') + '"'
    return f"[models.{key}]"


def _model_rule_ways(model: str, rule: str) -> str:
    ways = f"TOML key {rule} in {_toml_model(model)}"
    if _model_env_safe(model):
        ways += f" or env {_prefix()}MODELS__{model.upper()}__{rule.upper()}"
    return ways


def near_miss(name: str, choices: Iterable[str]) -> str | None:
    """The real name closest to a misspelt one (difflib), if any is close enough.

    >>> near_miss("warmpu", ["warmup", "window_events"]), near_miss("zzz", ["warmup"])
    ('warmup', None)
    """
    found = difflib.get_close_matches(name.lower().replace("-", "_"), list(choices), n=1, cutoff=0.7)
    return found[0] if found else None


# ----------------------------------------------------------------- the TOML file
_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def read_toml(path: Path, via: str = "--config / DRIFTLINE_CONFIG") -> dict[str, Any]:
    """The parsed file, or a :class:`ConfigError` naming the file (and the line and column of a syntax error).

    Nothing of the file's text is quoted: a syntax error near a secret must not print it."""
    name = escape(bounded(str(path), 200))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {name} ({via}) does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {name} ({via}) is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {name} ({via}) cannot be read: {escape(exc.strerror or type(exc).__name__)}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"config file {name}, line {line}, column {column}: not UTF-8 text ({via})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _POSITION.search(message)
        where = ""
        if m is not None:
            message = message[:m.start()]
            where = f", line {m.group(1)}, column {m.group(2)}" if m.group(1) else ", at its end"
        # tomllib quotes the offending character: part of a value, perhaps of a secret
        message = re.sub(r"(Found invalid|Illegal) character .*", r"\1 character", message)
        raise ConfigError(f"config file {name}{where}: invalid TOML: {escape(bounded(message, 200))} ({via})") from None
    except RecursionError:
        raise ConfigError(f"config file {name}: invalid TOML: nested too deeply ({via})") from None


# ----------------------------------------------------------------- where each value came from
def source_origins(given: Mapping[str, Any], overrides_from: str, environ: Mapping[str, str],
                   toml: Mapping[str, Any] | None, toml_path: Path | None) -> dict[Any, str]:
    """Where each setting (``name``), kafka property (``("kafka", property)``) and model table
    (``("models", name)``) came from, by the sources' priority (flags / arguments > env > TOML)."""
    from driftline.config import NO_FLAG, Settings, _dotted

    fields = Settings.model_fields
    out: dict[Any, str] = {}
    file = escape(bounded(str(toml_path), 200)) if toml_path is not None else ""

    def _table(kind: str, table: Any, origin: str, dotted: bool = False) -> None:
        if isinstance(table, dict):
            for key in table:
                out[(kind, _dotted(str(key)) if dotted else str(key))] = origin

    for key, value in (toml or {}).items():
        shown_key = escape(bounded(str(key), 80))
        out[str(key)] = out[str(key).lower()] = f"TOML key {shown_key} in {file}"
        if str(key).lower() == "kafka" and isinstance(value, dict):
            for prop in value:
                p = escape(bounded(str(prop), 80))
                out[("kafka", _dotted(str(prop)))] = f'"{p}" in the TOML table [kafka] of {file}'
        if str(key).lower() == "models" and isinstance(value, dict):
            for model in value:
                out[("models", str(model))] = f"TOML file {file}"
    prefix = _prefix().lower()
    for var in environ:
        low = var.lower()
        if not low.startswith(prefix):
            continue
        rest, origin = low[len(prefix):], f"env {escape(bounded(var, 120))}"
        if rest in fields:
            out[rest] = origin
            if rest in ("kafka", "models"):
                try:
                    _table(rest, json.loads(environ[var]), origin, dotted=rest == "kafka")
                except ValueError:
                    pass
        elif "__" in rest:
            head, tail = rest.split("__", 1)
            if head == "kafka":
                out["kafka"] = out[("kafka", _dotted(tail.upper()))] = origin
            elif head == "models":
                out["models"] = out[("models", tail.split("__", 1)[0])] = origin
    flags = overrides_from == "flags"
    for key, value in given.items():
        if key == "kafka" and isinstance(value, dict):
            out["kafka"] = "-X" if flags else "argument kafka"
            for prop in value:
                p = escape(bounded(str(prop), 80))
                out[("kafka", _dotted(str(prop)))] = f"-X {p}" if flags else f"argument kafka[{p!r}]"
        elif key == "models":
            out["models"] = "argument models"
            _table("models", value, "argument models")
        else:
            out[key] = (f"flag {_flag(key)}" if flags and key in fields and key not in NO_FLAG
                        else f"argument {escape(bounded(key, 80))}")
    return out


# ----------------------------------------------------------------- the lines
def _is_secret_field(name: str) -> bool:
    from driftline.config import Settings

    field = Settings.model_fields.get(name)
    return field is not None and "SecretStr" in repr(field.annotation)


def _msg(err: Mapping[str, Any]) -> str:
    text = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return escape(bounded(text, 300))


def _got(err: Mapping[str, Any], secret: bool, origin: str | None) -> str:
    """``got VALUE from ORIGIN`` (the value bounded and escaped; hidden when secret or a whole table)."""
    value = err.get("input")
    if secret or isinstance(value, dict):  # a whole table: its parts are reported where they are wrong
        return ("value hidden" if secret else "a table") + (f", from {origin}" if origin else "")
    return f"got {shown(value)}" + _from(origin)


def _from(origin: str | None) -> str:
    return f" from {origin}" if origin else ""


def _unknown(name: str, origins: Mapping[Any, str]) -> str:
    from driftline.config import Settings

    where = origins.get(name) or origins.get(name.lower())
    shown_name = escape(bounded(name, 80))
    head = f"unknown setting {shown_name}" + (f" ({where})" if where else "")
    guess = near_miss(name, Settings.model_fields)
    if guess is not None:
        return f"{head}: did you mean {guess} ({setting_ways(guess)})?"
    if "." in name:
        return f"{head}: not a driftline setting; a librdkafka property goes in the TOML table [kafka] (or -X {shown_name}=VALUE)"
    return f"{head}: not a driftline setting (docs/configuration.md lists them)"


def _models_line(loc: tuple[Any, ...], err: Mapping[str, Any], origins: Mapping[Any, str]) -> str:
    from driftline.config import ModelRulesConfig

    if len(loc) == 1:
        return f"invalid setting models: {_msg(err)} ({_got(err, False, origins.get('models'))}; " \
               f"set it with {setting_ways('models')})"
    model = str(loc[1])
    table = _toml_model(model)
    where = _from(origins.get(("models", model)))
    if len(loc) == 2:  # the table as a whole (its own cross-field check, or not a table)
        return f"invalid setting {table}: {_msg(err)}{where and ' (' + where.strip() + ')'}"
    rule = str(loc[2])
    shown_rule = escape(bounded(rule, 80))
    if err.get("type") == "extra_forbidden":
        guess = near_miss(rule, ModelRulesConfig.model_fields)
        hint = f"did you mean {guess} ({_model_rule_ways(model, guess)})?" if guess else \
            f"not a model rule (rules: {', '.join(ModelRulesConfig.model_fields)})"
        return f"unknown rule {shown_rule} in {table}{where and ' (' + where.strip() + ')'}: {hint}"
    sub = "".join(f"[{p}]" for p in loc[3:])
    return (f"invalid setting {table} {shown_rule}{sub}: {_msg(err)} ({_got(err, False, origins.get(('models', model)))}; "
            f"set it with {_model_rule_ways(model, rule)})")


def _kafka_line(loc: tuple[Any, ...], err: Mapping[str, Any], origins: Mapping[Any, str]) -> str:
    if len(loc) == 1:
        return f"invalid setting kafka: {_msg(err)} ({_got(err, True, origins.get('kafka'))}; " \
               f"set it with {setting_ways('kafka')})"
    prop = str(loc[1])
    secret = is_secret_property(prop)
    return (f"invalid kafka property {escape(bounded(prop, 80))}: {_msg(err)} "
            f"({_got(err, secret, origins.get(('kafka', prop)))}; set it with {kafka_property_ways(prop)})")


def _conflict_line(conflict: SettingsConflict, origins: Mapping[Any, str]) -> str:
    names = conflict.fields
    froms = [f"{f} from {origins.get(f, 'its default')}" for f in names if f != "kafka"]
    if conflict.kafka_property is not None:
        prop = escape(bounded(conflict.kafka_property, 80))
        froms.append(f"{prop} from {origins.get(('kafka', conflict.kafka_property), 'its default')}")
    message = escape(bounded(conflict.message, 400))
    if names == ("kafka",) and conflict.kafka_property is not None:
        return f"invalid kafka property: {message} ({'; '.join(froms)})"
    label = "setting" if len(names) == 1 else "settings"
    subject = " and ".join(names) if len(names) <= 2 else ", ".join(names)
    return f"invalid {label} {subject}: {message} ({'; '.join(froms)}; set {'it' if len(names) == 1 else 'them'} " \
           f"with {_ways_of(names)})"


def _line(err: Mapping[str, Any], origins: Mapping[Any, str]) -> str:
    from driftline.config import Settings

    loc = tuple(err.get("loc", ()))
    if not loc:
        exc = (err.get("ctx") or {}).get("error")
        if isinstance(exc, SettingsConflict):
            return _conflict_line(exc, origins)
        return f"invalid settings: {_msg(err)}"  # never the input: it is every setting at once
    head = str(loc[0])
    if head not in Settings.model_fields:
        if err.get("type") == "extra_forbidden":
            return _unknown(head, origins)
        return f"invalid setting {escape(bounded(head, 80))}: {_msg(err)}"
    if head == "models":
        return _models_line(loc, err, origins)
    if head == "kafka":
        return _kafka_line(loc, err, origins)
    sub = "".join(f"[{p}]" for p in loc[1:])
    return (f"invalid setting {head}{sub}: {_msg(err)} ({_got(err, _is_secret_field(head), origins.get(head))}; "
            f"set it with {setting_ways(head)})")


def describe_validation_error(exc: ValidationError, origins: Mapping[Any, str], toml_path: Path | None = None) -> str:
    """One line per error of ``exc`` (duplicates dropped)."""
    lines: list[str] = []
    for err in exc.errors():
        line = _line(err, origins)
        if line not in lines:
            lines.append(line)
    return "\n".join(lines) or "invalid settings"


def settings_error_line(exc: Exception, origins: Mapping[Any, str]) -> str:
    """pydantic-settings' own error (a value of the environment that is not JSON), as one line."""
    m = re.search(r'field "(\w+)"', str(exc))
    if m is None:
        return "invalid settings: a value in the environment cannot be parsed"
    name = m.group(1)
    where = origins.get(name) or next((v for k, v in origins.items() if isinstance(k, tuple) and k[0] == name), None)
    return (f"invalid setting {name}: a value in the environment is not valid JSON ({where or 'env'}; "
            f"set it with {setting_ways(name)})")
