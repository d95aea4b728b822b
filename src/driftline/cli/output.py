"""Where the commands print: results on stdout, diagnostics on stderr, never cut to a width.

At a terminal, rich fits tables to its width.  Without one (a pipe, a file, a CI log) rich would
assume 80 columns and cut cells (``featur…``, ``20,0…``) or wrap lines; the consoles made here are
then wide enough for any line, so a table is printed at its full width and every line of text is
one line.  Nothing printed with them may expand to the console's width (no ``expand=True``, no
centred or full-justified text, no ``Rule`` or ``Panel``).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

__all__ = ["results", "diagnostics", "print_json", "escaped", "UNLIMITED"]

#: The width of a console that is not a terminal: wider than any line a command prints.
UNLIMITED = 1_000_000


def _console(stderr: bool, **kwargs: Any) -> Console:
    console = Console(stderr=stderr, **kwargs)
    if console.is_terminal or "width" in kwargs:
        return console
    return Console(stderr=stderr, width=UNLIMITED, **kwargs)


def results(**kwargs: Any) -> Console:
    """The console of a command's results (stdout)."""
    return _console(False, **kwargs)


def diagnostics(**kwargs: Any) -> Console:
    """The console of what a command says about its work: progress, warnings, notes (stderr)."""
    return _console(True, **kwargs)


def print_json(document: Any, *, indent: bool = True) -> None:
    """One JSON document on stdout (``--json``)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    sys.stdout.write(orjson.dumps(document, option=option | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def escaped(value: Any) -> Any:
    r"""``value`` with every string's control characters escaped (:func:`driftline.redact.escape`), at any depth:
    names and summaries from records must not move the cursor or start a line of a table.

    >>> escaped({"model": "a\x1b[2Jb", "n": [1, "x\ny"]})
    {'model': 'a\\x1b[2Jb', 'n': [1, 'x\\ny']}
    """
    from driftline.redact import escape

    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(escaped(v) for v in value)
    return value
