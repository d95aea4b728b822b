"""Log lines cannot be forged or broken by the text they carry (model names, reasons from servers, ...)."""

from __future__ import annotations

import logging
import sys
import unicodedata

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.observability.logging import _JsonFormatter, _TextFormatter
from driftline.redact import escape, forget_secrets, register_secrets

# every code point, lone surrogates included
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=sys.maxunicode), max_size=40)
HOSTILE = ["a\nb", "x\r\n2026-01-01 00:00:00,000 ERROR driftline.worker: forged", "\x1b[2J\x1b[31mred", "\x85nel",
           "\u2028sep", "\ud800", "\udfff\ud800", "tab\there", "nul\x00", "\x9b31m", "\u202eevil"]


def _record(msg: str, ctx: object = None, args: tuple = (), exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("driftline.worker", logging.WARNING, __file__, 1, msg, args, exc_info)
    if ctx is not None:
        record.ctx = ctx
    return record


def _one_printable_line(text: str) -> bool:
    """One line (no break str.splitlines knows), no control character (Cc), no surrogate (Cs): encodable."""
    return (len(text.splitlines()) == 1 and not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)
            and text.encode("utf-8") is not None)


def test_text_escapes_control_characters_in_message_and_every_context_field():
    for bad in HOSTILE:
        line = _TextFormatter().format(_record(f"model {bad} seen", {"model": bad, bad: "v", "n": 3}))
        assert _one_printable_line(line), repr(line)
        assert escape(bad) in line


def test_text_context_values_cannot_pose_as_other_fields():
    line = _TextFormatter().format(_record("m", {"model": 'a level=ERROR x="y"', "empty": "", "plain": "ok"}))
    assert line.endswith(' model="a level=ERROR x=\\"y\\"" empty="" plain=ok')


def test_a_traceback_follows_on_marked_lines_only():
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 ERROR forged line\x1b[0m")
    except ValueError:
        line = _TextFormatter().format(_record("failed", exc_info=sys.exc_info()))
    first, *rest = line.split("\n")
    assert first.endswith("driftline.worker: failed") and rest
    assert all(part.startswith("  | ") and _one_printable_line(part) for part in rest)


def test_json_never_raises_on_what_orjson_refuses():
    ctx = {"model": "\ud800", "big": 10 ** 40, 7: "non-str key", "nested": {"k": ["\udfff", 2 ** 70, object()]},
           "fine": 1.5}
    line = _JsonFormatter().format(_record("msg \ud800", ctx))
    doc = orjson.loads(line)
    assert doc["model"] == "\\ud800" and doc["big"] == str(10 ** 40) and doc["7"] == "non-str key"
    assert doc["message"] == "msg \\ud800" and doc["nested"]["k"][:2] == ["\\udfff", str(2 ** 70)]


def test_bad_format_arguments_do_not_lose_the_line():
    assert "%d apples" in _TextFormatter().format(_record("%d apples", args=("x",)))
    assert orjson.loads(_JsonFormatter().format(_record("%d apples", args=("x",))))["message"] == "%d apples"


def test_registered_secrets_are_scrubbed_from_both_formats():
    register_secrets(["hunter2-canary"])
    try:
        for fmt in (_TextFormatter(), _JsonFormatter()):
            line = fmt.format(_record("login hunter2-canary", {"error": "bad password hunter2-canary"}))
            assert "hunter2-canary" not in line and "<redacted>" in line
    finally:
        forget_secrets()


@settings(max_examples=150, deadline=None)
@given(msg=ANY_TEXT, key=ANY_TEXT, value=st.one_of(ANY_TEXT, st.integers(), st.floats()))
def test_any_text_makes_one_printable_text_line_and_valid_json(msg, key, value):
    record = _record(msg, {key: value, "model": value})
    assert _one_printable_line(_TextFormatter().format(record))
    doc = orjson.loads(_JsonFormatter().format(record))
    assert isinstance(doc["message"], str)
