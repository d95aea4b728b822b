"""The broker dies (kill -9) mid-stream and comes back: the worker rides through it, nothing is lost.

tansu keeps topics, records and committed offsets across a kill -9 only on S3
storage (../shared/BROKER.md); a local S3 stand-in (moto's server) plays S3.
The outage (about 3 s) is shorter than the group session timeout (15 s here,
45 s by default), as for a broker restart in production.

The broker is killed between two batches of the worker (``at_least_once``: see
``GUARANTEE``).  Killed while
records are in flight, tansu on S3 lost acknowledged records (measured: 278
of 6,006 offsets of one partition unreadable after the restart), and a
transaction open across the kill (a checkpoint being committed) left
librdkafka's ``send_offsets_to_transaction`` blocked for minutes, far past
its 30 s timeout, after the broker was back (twice in four runs); neither
is Kafka's behaviour, so this test kills the broker between transactions.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.config import load_settings
from driftline.demo.broker import EmbeddedBroker, free_port
from driftline.observability.metrics import WorkerMetrics
from driftline.transport.worker import Worker
from tests.conftest import wait_for
from tests.transport.test_state_integration import PER_PARTITION, Topics, assert_every_record_once, complete, produce
import tests.transport.test_state_integration as state_tests

pytestmark = pytest.mark.integration

#: exactly_once is not tested here: after a tansu kill -9 restart the worker's first transactions
#: committed, then ``send_offsets_to_transaction`` blocked for minutes (3 runs of 3); a lone
#: transactional producer + consumer did not reproduce it (5 transactions after the restart, each
#: committed).  Open: see the issue 4 note.
GUARANTEE = "at_least_once"


@pytest.fixture
def s3():
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(server), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), 30, "the S3 stand-in")
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/tansu", method="PUT")).read()
        yield {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}
    finally:
        proc.terminate()
        proc.wait(10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def test_worker_rides_through_a_broker_kill_and_loses_nothing(s3, monkeypatch):
    monkeypatch.setattr(state_tests, "PARTITIONS", 2)
    broker = EmbeddedBroker(storage="s3://tansu/", extra_env=s3).start()
    worker = None
    try:
        topics = Topics(broker.bootstrap_servers, partitions=2)
        # checkpoints by records only, so none is under way at the kill (see the module docstring)
        env = topics.env("w", free_port(), session_timeout_ms=15_000, heartbeat_interval_ms=1_000,
                         checkpoint_interval_seconds=0, processing_guarantee=GUARANTEE)
        settings = load_settings(**{k.lower()[len("DRIFTLINE_"):]: v for k, v in env.items() if k.startswith("DRIFTLINE_")})
        worker = Worker(settings, metrics=WorkerMetrics())
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False}, daemon=True)
        thread.start()
        wait_for(lambda: len(worker._assigned) == 2, 60, "assignment")
        processed = lambda: worker.metrics.registry.get_sample_value("driftline_records_total", {"topic": topics.input}) or 0
        half = 3_000
        produce(broker.bootstrap_servers, topics.input, 0, half)
        wait_for(lambda: processed() == 2 * half, 60, "the first half processed")
        broker.kill()
        time.sleep(3)  # the outage itself (nothing to poll: the broker is gone)
        assert thread.is_alive()
        broker = EmbeddedBroker(port=broker.port, storage="s3://tansu/", extra_env=s3).start()
        produce(broker.bootstrap_servers, topics.input, half, PER_PARTITION)
        wait_for(lambda: complete(broker.bootstrap_servers, topics), 120, "every window after the restart")
        assert thread.is_alive() and processed() == 2 * PER_PARTITION
        assert_every_record_once(broker.bootstrap_servers, topics)
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
