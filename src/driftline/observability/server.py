"""HTTP endpoint of a worker: ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["MetricsServer"]


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _ask(check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    """A health check's answer; a check that raises answers "not ok" with why."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a probe must answer
        return False, f"health check failed: {type(exc).__name__}: {exc}"


def _line(reason: str) -> bytes:
    """One line of text, whatever the reason holds."""
    return (" ".join(str(reason).split()) + "\n").encode("utf-8", "backslashreplace")


class MetricsServer:
    """Serves metrics and health in a daemon thread.

    ``source`` is the registry to expose on ``/metrics``, or a function that
    returns the exposition text, whole or as a list of parts sent one after
    the other (:meth:`WorkerMetrics.exposition_parts`).
    ``ready`` is called for ``/readyz`` and ``alive`` for ``/healthz``; both
    return ``(ok, reason)``.  Without ``alive``, ``/healthz`` answers while the
    process serves HTTP.
    """

    def __init__(self, source: CollectorRegistry | Callable[[], bytes], host: str, port: int,
                 ready: Callable[[], tuple[bool, str]], *, alive: Callable[[], tuple[bool, str]] | None = None) -> None:
        server_self = self
        registry = source
        exposition: Callable[[], bytes | list[bytes]] = (
            source if callable(source) else (lambda: generate_latest(registry)))  # type: ignore[assignment]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok, reason = _ask(server_self.alive) if server_self.alive is not None else (True, "ok")
                    self._send(200 if ok else 503, _line(reason), "text/plain")
                elif path == "/readyz":
                    ok, reason = _ask(server_self.ready)
                    self._send(200 if ok else 503, _line(reason), "text/plain")
                else:
                    self._send(404, b"not found: try /metrics, /healthz, /readyz\n", "text/plain")

            def _send(self, status: int, body: bytes | list[bytes], ctype: str) -> None:
                parts = [body] if isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(sum(len(p) for p in parts)))
                self.end_headers()
                for part in parts:
                    self.wfile.write(part)

            def log_message(self, *args: object) -> None:
                pass

        self.ready = ready
        self.alive = alive
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        # binds now (raises OSError: address in use, host not resolvable, ...), serves from __enter__
        self._httpd = server_class((host.strip("[]"), port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="driftline-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def __enter__(self) -> "MetricsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
