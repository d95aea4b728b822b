import subprocess
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from driftline.config import load_settings
from driftline.errors import ProducerFencedError
from driftline.transport.worker import (ATTEMPT_SECONDS, EXIT_STALLED, STALL_GRACE_SECONDS, Worker, pipeline_settings,
                                       stall_reason)


def test_not_ready_before_assignment():
    worker = Worker(load_settings(metrics_port=0))
    ok, reason = worker.ready()
    assert not ok and "no partitions" in reason


def test_pipeline_settings_follow_the_configuration():
    s = load_settings(warmup=300, window_events=700, detector_block=8, false_alarm_rate=1e-6, max_models=3)
    p = pipeline_settings(s)
    assert (p.monitor.warmup, p.monitor.window_events, p.monitor.detector.block, p.max_models) == (300, 700, 8, 3)
    stricter = pipeline_settings(load_settings(detector_block=8, false_alarm_rate=1e-8))
    assert stricter.monitor.detector.ph_threshold > p.monitor.detector.ph_threshold


def test_stall_reason_only_past_timeout_plus_grace():
    assert stall_reason(None, 0.0, 30.0, 1e6) is None
    assert stall_reason("commit_transaction", 100.0, 30.0, 100.0 + 30.0 + STALL_GRACE_SECONDS) is None
    reason = stall_reason("send_offsets_to_transaction", 100.0, 30.0, 100.0 + 30.0 + STALL_GRACE_SECONDS + 1)
    assert reason is not None and "send_offsets_to_transaction" in reason and "91 s" in reason and "30 s timeout" in reason


def test_transaction_call_retries_retriable_errors_and_marks_the_call_under_way():
    worker = Worker(load_settings(metrics_port=0, broker_timeout_seconds=45))
    seen: list[tuple[str | None, float]] = []

    def flaky(timeout: float) -> None:
        seen.append((worker._blocked[0], timeout))
        if len(seen) < 3:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    worker._transaction_call("commit_transaction", flaky)
    assert seen == [("commit_transaction", ATTEMPT_SECONDS)] * 3  # short attempts: a stop is seen between them
    assert worker._blocked[0] is None and worker.stalled() is None and worker.alive() == (True, "ok")


def test_transaction_call_raises_other_errors_at_once():
    worker = Worker(load_settings(metrics_port=0))
    calls = []

    def refused(timeout: float) -> None:
        calls.append(timeout)
        raise KafkaException(KafkaError(KafkaError.INVALID_TXN_STATE, "invalid state", fatal=False))

    with pytest.raises(KafkaException):
        worker._transaction_call("commit_transaction", refused)
    assert len(calls) == 1 and worker._blocked[0] is None


@pytest.mark.parametrize("code", [KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH])
def test_a_fenced_producer_is_fatal_in_one_line(code):
    worker = Worker(load_settings(metrics_port=0, transactional_id="tid-1"))

    def fenced(timeout: float) -> None:
        raise KafkaException(KafkaError(code, "This instance has been fenced\nby a newer instance", fatal=True))

    with pytest.raises(ProducerFencedError) as info:
        worker._transaction_call("commit_transaction", fenced)
    text = str(info.value)
    assert "\n" not in text and "'tid-1'" in text and "fenced" in text and "DRIFTLINE_TRANSACTIONAL_ID" in text
    assert worker._abandon  # nothing more is written (no checkpoint at the revoke that follows)


def test_a_call_blocked_past_its_timeout_makes_the_worker_not_alive():
    worker = Worker(load_settings(metrics_port=0))
    worker._blocked = ("send_offsets_to_transaction", time.monotonic() - 30.0 - STALL_GRACE_SECONDS - 5, 30.0)
    ok, reason = worker.alive()
    assert not ok and "send_offsets_to_transaction" in reason and "restart the worker" in reason


def test_exit_on_stall_ends_the_process_with_its_exit_code():
    code = ("import time; from driftline.config import load_settings; from driftline.transport.worker import *; "
            "w = Worker(load_settings(metrics_port=0)); "
            "w._blocked = ('commit_transaction', time.monotonic() - 1000, 30.0); w._exit_when_stalled()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_STALLED, done.stderr
    assert "commit_transaction" in done.stderr and "restart the worker" in done.stderr
