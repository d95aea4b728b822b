"""/healthz and /readyz of a real worker, and a stop during a Kafka retry loop (own broker: it is killed).

One worker walks through it all: its pipeline (fault-injected) blocks on a
marked record while more records arrive, so no offset is committed while the
lag grows (/healthz 503); released, it commits (/healthz 200) and goes idle;
the broker is killed (/readyz 503 within the session timeout, though the
worker only polls); its interval checkpoint then runs into the transaction
call's retry loop (here ``send_offsets_to_transaction`` hangs past its
timeout, as librdkafka does with the coordinator gone), and a stop request
ends the worker within the grace.  (``stop`` is what the SIGTERM / SIGINT
handlers call.)
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Env, wait_for
from driftline.demo.broker import EmbeddedBroker
from driftline.detection.pipeline import Pipeline
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import SHUTDOWN_GRACE_SECONDS, Worker, pipeline_settings

pytestmark = pytest.mark.integration
MARK = b"HOLD-MARK"


class Holding(Pipeline):
    """Blocks on a batch with a marked record until released (a worker stuck in processing)."""

    entered = threading.Event()
    release = threading.Event()

    def process(self, records):
        if any(r.value is not None and MARK in r.value for r in records):
            self.entered.set()
            assert self.release.wait(60)
        return super().process(records)


def processed(worker: Worker) -> float:
    return sum(s.value for f in worker.metrics.registry.collect() for s in f.samples if s.name == "driftline_records_total")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_stuck_worker_lost_broker_and_a_stop_inside_a_retry_loop():
    broker = EmbeddedBroker().start()
    env = Env(broker)
    worker = Worker(env.settings(labels_topic="", progress_timeout_seconds=1, checkpoint_interval_records=0,
                                 checkpoint_interval_seconds=2, session_timeout_ms=3000),  # its 503 bound: session + 1 s
                    metrics=WorkerMetrics())
    worker.pipeline = Holding(pipeline_settings(worker.settings))
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker._assigned, 60, "assignment")
        port = worker.metrics_port
        assert get(port, "/healthz")[0] == 200 and get(port, "/readyz")[0] == 200

        # stuck in processing while records keep coming: no commit, lag not shrinking
        env.produce([(b"m", b'{"model": "m", "event_id": "' + MARK + b'", "features": {"x": 1}}')])
        wait_for(Holding.entered.is_set, 30, "the pipeline holding the batch")
        env.produce([(b"m", b'{"model": "m", "features": {"x": 2}}')] * 5)
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(port, "/healthz")), 30,
                              "/healthz 503 while stuck")
        assert "no input offset committed" in body and "progress_timeout_seconds" in body
        Holding.release.set()
        wait_for(lambda: get(port, "/healthz")[0] == 200, 30, "/healthz 200 once it commits again")

        # idle, with a record processed since the last checkpoint (due within 2 s): the broker goes away
        def one_more_not_checkpointed() -> bool:
            before = processed(worker)
            env.produce([(b"m", b'{"model": "m", "features": {"x": 3}}')])
            wait_for(lambda: processed(worker) > before and worker._current_lag() == 0, 30, "processed, caught up")
            return worker._records_since_checkpoint > 0
        wait_for(one_more_not_checkpointed, 30, "a record processed after the last checkpoint")
        killed = time.monotonic()
        broker.kill()
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(get(port, "/readyz")), 30,
                              "/readyz 503 after the broker is gone")
        assert time.monotonic() - killed < worker.settings.session_timeout_ms / 1000.0 + 1.0
        assert "no answer from Kafka" in body

        # the interval checkpoint's transaction now retries; a stop ends the worker within the grace
        wait_for(lambda: worker._blocked[0] is not None, 30, "a transaction call retrying against the dead broker")
        asked = time.monotonic()
        worker.stop()
        thread.join(SHUTDOWN_GRACE_SECONDS + 5)
        assert not thread.is_alive()
        assert time.monotonic() - asked <= SHUTDOWN_GRACE_SECONDS
    finally:
        Holding.release.set()
        worker.stop()
        thread.join(30)
        broker.stop()
