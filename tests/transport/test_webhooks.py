"""Posting to a real local HTTP server: retries, Retry-After, give-up, no redirects, shutdown."""

import random
import socket
import threading

import orjson
from pydantic import SecretStr

from driftline.notify.retry import RetryPolicy
from driftline.transport.webhooks import Endpoint, WebhookSender, post
from webhook_server import WebhookServer

FAST = RetryPolicy(max_retries=3, first_backoff=0.01, max_backoff=0.5)
BODY = orjson.dumps({"alert_id": "a1", "status": "firing"})
HEADERS = {"Content-Type": "application/json", "Idempotency-Key": "a1"}


def _sender(policy=FAST, **kw):
    waits = []
    sender = WebhookSender(policy, timeout=2.0, rng=random.Random(3), on_retry=lambda e, r, w: waits.append((r.status, w)), **kw)
    return sender, waits


def _endpoint(url: str) -> Endpoint:
    return Endpoint("webhook", "webhook#1", SecretStr(url))


def test_server_errors_are_retried_until_delivered():
    with WebhookServer({"/h": [(500, {}), (502, {})]}) as server:
        sender, waits = _sender()
        result = sender.deliver(_endpoint(server.url("/h")), BODY, HEADERS)
    assert (result.outcome, result.attempts, result.status) == ("delivered", 3, 200)
    assert [s for s, _ in waits] == [500, 502]
    assert [r.body for r in server.received] == [BODY] * 3
    assert server.received[0].headers["Idempotency-Key"] == "a1"


def test_retry_after_of_a_429_is_honoured():
    with WebhookServer({"/h": [(429, {"Retry-After": "0.3"})]}) as server:
        sender, waits = _sender()
        result = sender.deliver(_endpoint(server.url("/h")), BODY, HEADERS)
    assert result.outcome == "delivered" and waits == [(429, 0.3)]
    first, second = server.received
    assert second.at - first.at >= 0.3


def test_a_server_that_keeps_failing_is_given_up_after_max_retries():
    with WebhookServer({"/h": [(503, {})] * 10}) as server:
        sender, waits = _sender()
        result = sender.deliver(_endpoint(server.url("/h")), BODY, HEADERS)
    assert (result.outcome, result.attempts, result.status) == ("failed", 4, 503)
    assert len(server.received) == 4 and len(waits) == 3
    assert "503" in result.error


def test_client_errors_and_redirects_are_not_retried():
    with WebhookServer({"/gone": [(404, {})], "/moved": [(302, {"Location": "/elsewhere"})]}) as server:
        sender, waits = _sender()
        gone = sender.deliver(_endpoint(server.url("/gone")), BODY, HEADERS)
        moved = sender.deliver(_endpoint(server.url("/moved")), BODY, HEADERS)
    assert (gone.outcome, gone.attempts, gone.status) == ("rejected", 1, 404)
    assert (moved.outcome, moved.status) == ("rejected", 302)
    assert [r.path for r in server.received] == ["/gone", "/moved"] and waits == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_errors_and_timeouts_are_retried_then_given_up():
    sender, waits = _sender(RetryPolicy(max_retries=2, first_backoff=0.01, max_backoff=0.02))
    result = sender.deliver(_endpoint(f"http://127.0.0.1:{_closed_port()}/h"), BODY, HEADERS)
    assert (result.outcome, result.attempts, result.status) == ("failed", 3, None)
    assert "connection" in result.error.lower() and [s for s, _ in waits] == [None, None]
    with WebhookServer(delay=0.5) as slow:
        response = post(slow.url("/h"), BODY, HEADERS, timeout=0.1)
    assert response.status is None and "timed out" in response.error.lower()


def test_stop_cuts_a_wait_short_and_reports_stopped():
    stop = threading.Event()
    with WebhookServer({"/h": [(503, {"Retry-After": "30"})]}) as server:
        sender = WebhookSender(RetryPolicy(max_retries=3, first_backoff=0.01, max_backoff=60.0), timeout=2.0,
                               stop=stop, on_retry=lambda e, r, w: stop.set())
        result = sender.deliver(_endpoint(server.url("/h")), BODY, HEADERS)
    assert result.outcome == "stopped" and len(server.received) == 1


def test_an_endpoint_given_up_on_gets_one_attempt_per_message_until_it_answers_again():
    with WebhookServer({"/h": [(503, {})] * 6}) as server:
        sender, waits = _sender()
        endpoint = _endpoint(server.url("/h"))
        assert sender.deliver(endpoint, BODY, HEADERS).attempts == 4  # the whole schedule
        assert "webhook#1" in sender.failing
        assert (sender.deliver(endpoint, BODY, HEADERS).outcome, len(server.received)) == ("failed", 5)  # one attempt
        assert sender.deliver(endpoint, BODY, HEADERS).outcome == "failed"
        assert sender.deliver(endpoint, BODY, HEADERS).outcome == "delivered"  # back: retries again from now on
        assert "webhook#1" not in sender.failing and len(server.received) == 7 and len(waits) == 3


# ------------------------------------------------------------------ the URL is a secret
TOKEN = "T0K3Nc4n4ry"
PASSWORD = "p4ssc4n4ry"


def test_basic_auth_userinfo_is_sent_as_a_header_not_as_the_host():
    import base64

    with WebhookServer({"/h": [(503, {})]}) as server:
        url = server.url("/h").replace("http://", f"http://bot:{PASSWORD}@")
        sender, waits = _sender()
        result = sender.deliver(_endpoint(url), BODY, HEADERS)
    assert result.outcome == "delivered" and [s for s, _ in waits] == [503]
    assert all(r.headers["Authorization"] == "Basic " + base64.b64encode(f"bot:{PASSWORD}".encode()).decode()
               for r in server.received)
    assert _endpoint(url).display == f"http://127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/…"


def test_no_part_of_the_url_beyond_its_host_appears_in_an_error():
    port = _free_port()
    urls = [f"http://bot:{PASSWORD}@127.0.0.1:{port}/services/{TOKEN}",  # connection refused
            f"http://127.0.0.1:{port}/services/{TOKEN} x", f"http://127.0.0.1:{port}/{TOKEN}\r\nX: y",
            f"http://[::1/{TOKEN}", f"http://bot:{PASSWORD}@127.0.0.1:99999/{TOKEN}", f"http://{PASSWORD}@/x{TOKEN}",
            f"http://no-such-host.invalid/{TOKEN}?k={PASSWORD}"]
    for url in urls:
        response = post(url, BODY, HEADERS, 1.0)
        assert response.status is None and response.error
        assert TOKEN not in response.error and PASSWORD not in response.error, (url, response.error)
        assert TOKEN not in _endpoint(url).display and PASSWORD not in _endpoint(url).display


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
