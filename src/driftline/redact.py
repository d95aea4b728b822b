"""Text that is safe to print: control characters escaped, lengths bounded, secrets left out.

Everything driftline writes for people (log lines, error messages, ``status``)
may carry text it did not choose: model and feature names from records,
values from configuration, reasons from HTTP servers and from librdkafka.
The helpers here make such text one printable line of bounded length, and
keep credentials out of it:

* :func:`escape`: newline, CR, tab, ESC and every other C0 / C1 control,
  DEL, Unicode line / paragraph separators, bidirectional overrides and lone
  surrogates become visible escapes (``\\n``, ``\\x1b``, ``\\ud800``), so a
  value cannot start a line of its own, move the cursor or fail to encode.
* :func:`shown`: a configuration value as it is printed in an error
  (``repr``-like, escaped, at most :data:`SHOWN_CHARS` characters).
* :func:`url_origin`: a URL reduced to ``scheme://host[:port]`` plus an
  elision; webhook URLs carry their token in the path (Slack) or in the
  userinfo (basic auth), so this is the only form in which one is shown.
* :func:`is_secret_property`: librdkafka properties that hold credentials.
* :func:`scrub`: replaces known secret values in a text; :func:`register_secrets`
  adds values (the secrets of every configuration loaded) that
  :func:`scrub_known` removes from every log line and every error printed by
  the ``driftline`` command, as a last line of defence behind the rules above.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable
from urllib.parse import urlsplit

__all__ = ["escape", "bounded", "shown", "url_origin", "url_secrets", "is_secret_property", "scrub", "register_secrets",
           "forget_secrets", "scrub_known", "SHOWN_CHARS", "REDACTED"]

#: Longest configuration value printed in an error (longer ones are cut, with their length).
SHOWN_CHARS = 120

#: What a secret is replaced with.
REDACTED = "<redacted>"

# C0 controls (tab, newline and CR included), DEL, C1 controls (NEL included), the Unicode line and
# paragraph separators, bidirectional embeddings / overrides / isolates, the BOM, and every surrogate
# (in a Python str a surrogate is always lone: it cannot be encoded as UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character (and lone surrogate) as a visible escape: one printable line.

    >>> escape("a\\nb\\x1b[31m\\ud800")
    'a\\\\nb\\\\x1b[31m\\\\ud800'
    """
    return _UNSAFE.sub(_escape_one, text)


def bounded(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was.

    >>> bounded("x" * 10, 4)
    'xxxx… (10 characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A (non-secret) configuration value as printed in an error: ``repr`` for strings, escaped and bounded.

    >>> shown("a\\nb"), shown(3), shown("x" * 200, 5)
    ("'a\\\\nb'", '3', "'xxxx… (202 characters)")
    """
    try:
        text = repr(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else _number(value)
    except Exception:  # a repr that raises: say what it was instead
        text = f"<{type(value).__name__}>"
    return escape(bounded(text, limit))


def _number(value: int | float) -> str:
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {len(str(abs(value)))} digits" if value.bit_length() < 10_000 else "a huge integer"
    return repr(value)


def url_origin(url: str) -> str:
    """``scheme://host[:port]/…``: the only part of a webhook URL that is ever shown.

    Userinfo (``user:password@``), path, query and fragment are left out; a URL that
    does not parse is shown as ``<unparsable URL>``.

    >>> url_origin("https://hooks.slack.com/services/T0/B0/XXXX"), url_origin("http://u:pw@h:8080/x?y")
    ('https://hooks.slack.com/…', 'http://h:8080/…')
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except (ValueError, AttributeError):
        return "<unparsable URL>"
    if not parts.scheme or not host:
        return "<unparsable URL>"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    return escape(bounded(origin, 200)) + "/…"


# librdkafka properties that carry credentials: passwords, client secrets, private keys (inline PEM),
# JAAS / OAUTHBEARER configuration strings (they embed secrets), tokens.
_SECRET_PROPERTY = re.compile(r"password|secret|\.pem$|key\.pem|jaas|oauthbearer\.config|token|credential|private",
                              re.IGNORECASE)


def is_secret_property(name: str) -> bool:
    """Whether the librdkafka property ``name`` holds a credential (its value is never printed).

    >>> [is_secret_property(p) for p in ("sasl.password", "ssl.key.pem", "sasl.oauthbearer.client.secret", "ssl.ca.location")]
    [True, True, True, False]
    """
    return bool(_SECRET_PROPERTY.search(name))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`REDACTED` (longest first).

    Secrets shorter than 4 characters are replaced too, but only as whole words, so a
    three-letter password cannot turn a message into noise.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
        else:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", REDACTED, text)
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that must not be shown: the URL itself, its userinfo, path, query and fragment."""
    from urllib.parse import unquote

    try:
        parts = urlsplit(url)
        pieces = [url, parts.username or "", parts.password or "", parts.query, parts.fragment]
        if len(parts.path) > 1:
            pieces.append(parts.path)
        if "@" in parts.netloc:
            pieces.append(parts.netloc.rsplit("@", 1)[0])
    except ValueError:
        return [url]
    return [p for p in pieces + [unquote(p) for p in pieces] if p]


_known: set[str] = set()
_known_lock = threading.Lock()
_known_sorted: tuple[str, ...] = ()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that :func:`scrub_known` takes them out of any text."""
    global _known_sorted
    new = {v for v in values if v}
    if not new - _known:
        return
    with _known_lock:
        _known.update(new)
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def forget_secrets() -> None:
    """Forget every registered secret (tests check that messages leave secrets out without this net)."""
    global _known_sorted
    with _known_lock:
        _known.clear()
        _known_sorted = ()


def scrub_known(text: str) -> str:
    """``text`` without any registered secret (cheap when none is registered)."""
    known = _known_sorted
    return scrub(text, known) if known and any(k in text for k in known) else text
