"""The HTTP boundary of ``driftline notify``: POST one message, retried by a :class:`RetryPolicy`.

Standard library only (``urllib``).  Every network failure is translated here
into a :class:`DeliveryResult`; nothing raises into the consumer loop.
Redirects are not followed (a webhook that moved is a configuration to
fix, and following a redirect would turn the POST into a GET).  Proxies
come from the usual ``https_proxy`` / ``no_proxy`` environment variables.

Webhook URLs are secrets (a Slack URL carries its token in the path, a
``https://user:password@host/`` URL its password): a URL is shown only as
:attr:`Endpoint.display` (``scheme://host[:port]/…``), and the error text of
a :class:`Response` never contains any part of the URL beyond that.  The
userinfo of a URL is sent as HTTP basic authentication (``Authorization``
header), never as part of the host.
"""

from __future__ import annotations

import base64
import http.client
import logging
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

from driftline.notify.retry import RetryPolicy, parse_retry_after
from driftline.notify.settings import NotifySettings
from driftline.redact import bounded, escape, scrub, url_origin, url_secrets

__all__ = ["Endpoint", "Response", "DeliveryResult", "WebhookSender", "post", "endpoints_from"]

log = logging.getLogger("driftline.notify")

Outcome = Literal["delivered", "failed", "rejected", "stopped"]


@dataclass(frozen=True)
class Endpoint:
    """One webhook: its payload ``kind``, a ``name`` safe to log and label metrics with, and its secret URL."""

    kind: Literal["slack", "webhook"]
    name: str
    url: SecretStr

    @property
    def display(self) -> str:
        """``scheme://host[:port]/…``: the URL as it may be logged or shown."""
        return url_origin(self.url.get_secret_value())


def endpoints_from(notify: NotifySettings) -> list[Endpoint]:
    """Endpoints named ``webhook#1``, ``webhook#2``, ``slack#1``, ... in the order given."""
    return ([Endpoint("webhook", f"webhook#{i}", u) for i, u in enumerate(notify.webhooks, 1)]
            + [Endpoint("slack", f"slack#{i}", u) for i, u in enumerate(notify.slack_webhooks, 1)])


@dataclass(frozen=True)
class Response:
    """What one attempt got: a status (``None`` = no response) and the server's ``Retry-After``."""

    status: int | None
    retry_after: str | None = None
    error: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery to one endpoint ended.

    ``delivered`` (a 2xx), ``failed`` (retries exhausted), ``rejected`` (a
    status not worth retrying, e.g. 400 or 404) or ``stopped`` (shutdown
    during a wait: not delivered, not given up).
    """

    outcome: Outcome
    attempts: int
    status: int | None
    error: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx surfaces as an HTTPError


_opener = urllib.request.build_opener(_NoRedirect())


def _url_secrets(url: str) -> list[str]:
    """Every part of ``url`` that must not appear in a message (beyond scheme, host and port)."""
    try:
        segments = [seg for seg in urlsplit(url).path.split("/") if len(seg) >= 4]
    except ValueError:
        segments = []
    return url_secrets(url) + segments + [unquote(s) for s in segments]


def _request(url: str, body: bytes, headers: dict[str, str]) -> urllib.request.Request:
    """The POST; ``user:password@`` in the URL becomes a basic ``Authorization`` header."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port is not None else "")
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        headers = {**headers, "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def _reason(text: object, url: str) -> str:
    """Text from a server or the OS, as one bounded line with no part of the URL in it."""
    return escape(bounded(scrub(str(text), _url_secrets(url)), 200))


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """One POST; any failure becomes a :class:`Response` (status ``None`` when there was no answer).

    The error text names what went wrong, never the URL (see the module's docstring)."""
    try:
        request = _request(url, body, headers)
        with _opener.open(request, timeout=timeout) as resp:
            resp.read(65_536)
            return Response(int(resp.status))
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers is not None else None
        exc.close()
        return Response(int(exc.code), retry_after, f"HTTP {exc.code} {_reason(exc.reason, url)}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, OSError):  # "[Errno 111] Connection refused", "timed out", TLS failures (name the host)
            return Response(None, None, f"connection failed: {_reason(reason, url)}")
        return Response(None, None, f"connection failed: {type(reason).__name__ if not isinstance(reason, str) else 'bad URL'}")
    except (http.client.InvalidURL, ValueError, UnicodeError) as exc:  # their messages quote the URL
        return Response(None, None, f"invalid URL ({type(exc).__name__})")
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, malformed answers
        return Response(None, None, f"{type(exc).__name__}: {_reason(exc, url)}")


class WebhookSender:
    """Delivers a message to an endpoint, retrying by ``policy``.

    ``stop`` is an event that cuts a wait short (shutdown); ``post_fn`` and
    ``rng`` are injectable for tests.

    An endpoint whose last delivery was given up is *failing*: it gets one
    attempt per message, without retries, until it answers with a 2xx again.
    A dead endpoint then costs each later alert one request, not the whole
    retry schedule, and the other endpoints are not held up behind it.
    """

    def __init__(self, policy: RetryPolicy, timeout: float, *, stop: threading.Event | None = None,
                 rng: random.Random | None = None, post_fn: Callable[[str, bytes, dict[str, str], float], Response] = post,
                 on_retry: Callable[[Endpoint, Response, float], None] | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()
        self.post_fn = post_fn
        self.on_retry = on_retry
        self.failing: set[str] = set()

    def deliver(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        retries = 0
        limit = 0 if endpoint.name in self.failing else self.policy.max_retries
        while True:
            response = self.post_fn(endpoint.url.get_secret_value(), body, headers, self.timeout)
            attempts = retries + 1
            if response.status is not None and 200 <= response.status < 300:
                self.failing.discard(endpoint.name)
                return DeliveryResult("delivered", attempts, response.status)
            if not self.policy.retryable(response.status):
                return DeliveryResult("rejected", attempts, response.status, response.error)
            if retries >= limit:
                self.failing.add(endpoint.name)
                return DeliveryResult("failed", attempts, response.status, response.error)
            wait = self.policy.delay(retries, retry_after=parse_retry_after(response.retry_after), rng=self.rng)
            if self.on_retry is not None:
                self.on_retry(endpoint, response, wait)
            if self.stop.wait(wait):
                return DeliveryResult("stopped", attempts, response.status, response.error)
            retries += 1
