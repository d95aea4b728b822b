"""Structured logs: text for people, one JSON object per line for machines.

Context (model, topic, partition, ...) is passed with ``extra={"ctx": {...}}``
and appears as fields in JSON and as ``key=value`` pairs in text.

Log lines carry text driftline does not choose (model and feature names from
records, reasons from servers), so neither format can be made to forge a line
or to fail:

* text: every field (message, context keys and values, logger name) has its
  control characters escaped (:func:`driftline.redact.escape`: newline, CR,
  ESC, other C0 / C1 controls, lone surrogates); a context value that is
  empty or holds a space, ``=`` or ``"`` is double-quoted (logfmt style), so a
  value cannot pose as another field either; a traceback follows on lines that
  each start with ``  | ``, never with a time stamp.
* both: a secret registered with :func:`driftline.redact.register_secrets`
  (those of every configuration loaded) is replaced by ``<redacted>``.
* JSON: what orjson cannot encode (lone surrogates, integers beyond 64 bits,
  keys that are not strings, other objects) is made encodable first, so
  formatting a record never raises.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

import orjson

from driftline.contract.names import is_utf8
from driftline.redact import escape, scrub_known

__all__ = ["configure_logging"]

#: Nesting beyond this depth in a context value is logged as its ``str``.
_MAX_DEPTH = 32


def _safe_str(value: Any) -> str:
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # a __str__ that raises (or an integer too long to print)
        return f"<unprintable {type(value).__name__}>"


def _encodable(value: Any, depth: int = 0) -> Any:
    """``value`` with everything orjson refuses replaced by text: surrogates escaped, big ints as strings."""
    if isinstance(value, str):
        return escape(value) if not is_utf8(value) else value
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) <= value < 2 ** 64 else _safe_str(value)
    if depth >= _MAX_DEPTH:
        return escape(_safe_str(value))
    if isinstance(value, dict):
        return {escape(_safe_str(k)): _encodable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encodable(v, depth + 1) for v in value]
    return escape(_safe_str(value))


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-arguments: log the template rather than nothing
        return _safe_str(record.msg)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict):
            doc.update(ctx)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        try:
            line = orjson.dumps(doc, default=_safe_str).decode()
        except (TypeError, orjson.JSONEncodeError):
            line = orjson.dumps(_encodable(doc)).decode()
        return scrub_known(line)


def _field(value: Any) -> str:
    """A context value for a text line: escaped; quoted when it is empty or has a space, ``=`` or ``"``."""
    text = escape(_safe_str(value))
    if text == "" or any(c in text for c in ' ="'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = f"{self.formatTime(record)} {record.levelname:<7} {escape(record.name)}: {escape(_message(record))}"
        ctx = getattr(record, "ctx", None)
        if isinstance(ctx, dict) and ctx:
            text += " " + " ".join(f"{escape(_safe_str(k)).replace(' ', '_').replace('=', '_')}={_field(v)}"
                                   for k, v in ctx.items())
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "".join(f"\n  | {escape(line)}" for line in record.exc_text.splitlines())
        if record.stack_info:
            text += "".join(f"\n  | {escape(line)}" for line in self.formatStack(record.stack_info).splitlines())
        return scrub_known(text)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger("driftline")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
