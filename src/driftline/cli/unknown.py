"""Names a command was given that match nothing: said out loud, with the nearest known one.

A filter that matches nothing looks like "no data"; these messages tell a
mistyped value (``--kind concpt_drift``) or an unknown name (a group id, a
model, a profile) from an empty result.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from driftline.redact import bounded, escape

__all__ = ["did_you_mean", "unknown_value", "shown"]

#: Known names listed in a message at most.
LISTED = 20


def shown(value: str, chars: int = 80) -> str:
    """A value from the command line or a record, quoted, escaped and bounded for a message."""
    return escape(bounded(repr(value), chars))


def did_you_mean(value: str, known: Iterable[str]) -> str | None:
    """The known name nearest to ``value``, if one is near enough.

    >>> did_you_mean("concpt_drift", ["data_drift", "concept_drift"])
    'concept_drift'
    >>> did_you_mean("zzz", ["data_drift"]) is None
    True
    """
    names = [k for k in known if isinstance(k, str)]
    folded = {k.casefold(): k for k in names}
    if value.casefold() in folded:
        return folded[value.casefold()]
    guess = difflib.get_close_matches(value[:200], names, n=1, cutoff=0.6)
    return guess[0] if guess else None


def unknown_value(what: str, value: str, known: Iterable[str], *, allowed: bool = False) -> str:
    """``unknown model 'frod': did you mean 'fraud'? (known: 'fraud', 'churn')``.

    ``allowed``: the known values are the only ones possible (a choice), not merely those seen.

    >>> unknown_value("--kind", "concpt_drift", ["data_drift", "concept_drift"], allowed=True)
    "invalid --kind 'concpt_drift': did you mean 'concept_drift'? (allowed: 'data_drift', 'concept_drift')"
    >>> unknown_value("model", "x", [])
    "unknown model 'x' (none known)"
    """
    names = list(dict.fromkeys(k for k in known if isinstance(k, str)))
    guess = did_you_mean(value, names)
    head = f"{'invalid' if allowed else 'unknown'} {what} {shown(value)}"
    if guess is not None:
        head += f": did you mean {shown(guess)}?"
    if not names:
        return head + " (none known)"
    listed = ", ".join(shown(n) for n in names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
    return head + f" ({'allowed' if allowed else 'known'}: {listed})"
