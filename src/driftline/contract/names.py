"""Names and text values as driftline keeps them: valid UTF-8, bounded, still distinct.

A record may carry any string JSON can: megabytes long, or with lone UTF-16
surrogates (``"\\ud800"``), which cannot be encoded as UTF-8 and so cannot
be published, used as a Prometheus label or written to a checkpoint.  Such a
feature or output name, category value, class label or event id is kept in
its *bounded form*: the first characters of the text (lone surrogates written
as ``\\udXXX``, Python's ``backslashreplace``), ``~`` and 12 hex digits of the
SHA-256 of the whole text (its UTF-8 bytes, surrogates as ``surrogatepass``
writes them)::

    >>> bounded("a" * 300, 32)
    'aaaaaaaaaaaaaaaaaaa~9835fa6bf4e2'
    >>> bounded("x\\ud800", 64)
    'x\\\\ud800~79910d1567b1'

Two different texts give two different bounded forms (unless their digests
collide).  A text that already *looks* like a bounded form (it ends in ``~``
and 12 lowercase hex digits) is bounded too, so no valid text can pose as the
bounded form of another one.  Everything else is kept as it is, so ordinary
names never change.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["DIGEST_CHARS", "MIN_CHARS", "is_utf8", "is_plain", "bounded", "plain"]

#: Hex digits of the digest in a bounded form.
DIGEST_CHARS = 12
#: The shortest limit a bounded form fits in (some text, ``~`` and the digest).
MIN_CHARS = DIGEST_CHARS + 2

_TAIL = re.compile(r"~[0-9a-f]{12}\Z")


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (it has no lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_plain(text: str, max_chars: int) -> bool:
    """Whether ``text`` is kept as it is: at most ``max_chars`` long, valid UTF-8, not like a bounded form."""
    if len(text) > max_chars:
        return False
    if len(text) > DIGEST_CHARS and text[-DIGEST_CHARS - 1] == "~" and _TAIL.search(text):
        return False
    return is_utf8(text)


def bounded(text: str, max_chars: int) -> str:
    """The bounded form of ``text``: at most ``max_chars`` (≥ :data:`MIN_CHARS`) characters, valid UTF-8."""
    raw = text.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw).hexdigest()[:DIGEST_CHARS]
    keep = max(1, max_chars - DIGEST_CHARS - 1)
    head = text[:keep]
    if not is_utf8(head):
        head = head.encode("utf-8", "backslashreplace").decode("utf-8")[:keep]
    return f"{head}~{digest}"


def plain(text: str, max_chars: int) -> str:
    """``text`` itself when :func:`is_plain`, else its bounded form."""
    return text if is_plain(text, max_chars) else bounded(text, max_chars)
