"""A local webhook receiver for notify tests: scripted failures, then success; every request recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)


class WebhookServer:
    """Answers the first requests from ``script`` (status, headers) per path, then 200.

    ``script`` maps a path to a list of ``(status, {header: value})``; paths not in it always get 200.
    """

    def __init__(self, script: dict[str, list[tuple[int, dict[str, str]]]] | None = None, *, delay: float = 0.0) -> None:
        self.script = {path: list(steps) for path, steps in (script or {}).items()}
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    steps = outer.script.get(self.path)
                    status, headers = steps.pop(0) if steps else (200, {})
                    outer.received.append(Received(self.path, dict(self.headers), body, status))
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def ok(self, path: str) -> list[Received]:
        """Requests to ``path`` answered with a 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.received if r.path == path and 200 <= r.status < 300]

    def __enter__(self) -> "WebhookServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
