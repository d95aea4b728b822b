"""The HTTP boundary of ``driftline notify``: POST one message, retried by a :class:`RetryPolicy`.

Standard library only (``urllib``).  Every network failure is translated here
into a :class:`DeliveryResult`; nothing raises into the consumer loop.
Redirects are not followed (a webhook that moved is a configuration to
fix, and following a redirect would turn the POST into a GET).  Proxies
come from the usual ``https_proxy`` / ``no_proxy`` environment variables.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import SecretStr

from driftline.notify.retry import RetryPolicy, parse_retry_after
from driftline.notify.settings import NotifySettings

__all__ = ["Endpoint", "Response", "DeliveryResult", "WebhookSender", "post", "endpoints_from"]

log = logging.getLogger("driftline.notify")

Outcome = Literal["delivered", "failed", "rejected", "stopped"]


@dataclass(frozen=True)
class Endpoint:
    """One webhook: its payload ``kind``, a ``name`` safe to log and label metrics with, and its secret URL."""

    kind: Literal["slack", "webhook"]
    name: str
    url: SecretStr


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


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """One POST; any failure becomes a :class:`Response` (status ``None`` when there was no answer)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as resp:
            resp.read(65_536)
            return Response(int(resp.status))
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers is not None else None
        exc.close()
        return Response(int(exc.code), retry_after, f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return Response(None, None, f"connection failed: {exc.reason}")
    except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, resets, malformed answers
        return Response(None, None, f"{type(exc).__name__}: {exc}")


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
