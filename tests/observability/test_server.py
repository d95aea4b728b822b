import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from driftline.observability.server import MetricsServer


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("alive, expected", [
    (None, (200, "ok\n")),
    (lambda: (True, "ok"), (200, "ok\n")),
    (lambda: (False, "Kafka call commit_transaction has been blocked for 95 s"), (503, "Kafka call commit_transaction has been blocked for 95 s\n")),
])
def test_healthz_reports_liveness(alive, expected):
    with MetricsServer(CollectorRegistry(), "127.0.0.1", 0, lambda: (False, "no partitions"), alive=alive) as server:
        assert _get(server.port, "/healthz") == expected
        assert _get(server.port, "/readyz") == (503, "no partitions\n")
        assert _get(server.port, "/nope")[0] == 404
