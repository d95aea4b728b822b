import subprocess
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from driftline.config import load_settings
from driftline.errors import ProducerFencedError
from driftline.transport.worker import EXIT_STALLED, STALL_GRACE_SECONDS, Worker, pipeline_settings, stall_reason


def test_not_ready_before_assignment():
    worker = Worker(load_settings(metrics_port=0))
    ok, reason = worker.ready()
    assert not ok and "no partitions" in reason


def test_pipeline_settings_follow_the_configuration():
    s = load_settings(warmup=300, window_events=700, detector_block=8, false_alarm_rate=1e-6, max_models=3)
    p = pipeline_settings(s)
    assert (p.monitor.warmup, p.monitor.window_events, p.monitor.detector.block, p.max_models) == (300, 700, 8, 3)
    stricter = pipeline_settings(load_settings(detector_block=8, false_alarm_rate=1e-8))
    assert stricter.monitor.detector.share < p.monitor.detector.share  # a smaller budget: higher thresholds


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
    assert seen == [("commit_transaction", 45.0)] * 3
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


# ------------------------------------------------------------ stuck, stop, oversize (no broker needed)
def test_the_same_input_aborted_again_and_again_makes_healthz_fail():
    from driftline.contract.event import SourceRecord
    from driftline.transport.isolation import ABORT_LIMIT, Unit

    worker = Worker(load_settings(metrics_port=0))
    unit = Unit([SourceRecord("in", 0, 7, None, None, b"{}")])
    for _ in range(ABORT_LIMIT):
        assert worker.alive()[0]
        worker._isolation.aborted(unit, "Local: Broker transport failure", record_caused=False)
    ok, reason = worker.alive()
    assert not ok and "in[0]@7" in reason and "aborted 3 times" in reason


def test_after_a_stop_a_retriable_failure_is_not_tried_again():
    from driftline.transport.worker import _Stopping

    worker = Worker(load_settings(metrics_port=0))
    worker._last_broker_ok = time.monotonic()
    calls = []

    def flaky(timeout: float) -> None:
        calls.append(timeout)
        worker.stop()  # the signal arrives during the attempt
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))

    with pytest.raises(_Stopping):
        worker._transaction_call("commit_transaction", flaky)
    assert len(calls) == 1


@pytest.mark.parametrize("broker_gone", [True, False])
def test_after_a_stop_a_hung_call_is_abandoned(monkeypatch, broker_gone):
    import threading

    import driftline.transport.worker as worker_module
    from driftline.transport.worker import _Stopping

    monkeypatch.setattr(worker_module, "HUNG_CALL_SECONDS", 0.05)
    worker = Worker(load_settings(metrics_port=0))
    worker._last_broker_ok = 0.0 if broker_gone else time.monotonic() + 3600
    release = threading.Event()
    worker.stop()
    started = time.monotonic()
    try:
        with pytest.raises(_Stopping, match="abandoned"):
            worker._attempt("send_offsets_to_transaction", lambda t: release.wait(30), 0.2)  # ignores its timeout
    finally:
        release.set()
    assert time.monotonic() - started < 2.0


def test_the_shutdown_watchdog_ends_a_worker_that_outlives_its_grace():
    code = ("import time; from driftline.config import load_settings; from driftline.transport.worker import *; "
            "w = Worker(load_settings(metrics_port=0)); w.stop(); w._stop_at = time.monotonic() - 1000; "
            "w._exit_when_stalled()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_STALLED, done.stderr
    assert "did not stop within 25 s of the stop signal" in done.stderr


def test_a_record_the_producer_refuses_is_replaced_and_a_refusal_report_is_remembered():
    """The producer's own size check (librdkafka, no broker needed) and a delivery report naming a record."""
    import orjson
    from confluent_kafka import Message

    from driftline.detection.published import OutputRecord

    worker = Worker(load_settings(metrics_port=0, bootstrap_servers="127.0.0.1:1", processing_guarantee="at_least_once"))
    from driftline.transport import kafka

    worker._producer = kafka.make_producer(worker.settings)
    try:
        worker._limits.producer_bytes = 10**9  # pretend the pre-check lets it through: librdkafka refuses it
        big = OutputRecord(b"m/v/f", b"x" * 1_500_000, [("content-type", b"application/json")])
        worker._emit("window_summary", "metrics", big, lambda: {"model": "m", "feature": "f"})
        assert worker.metrics.registry.get_sample_value("driftline_oversized_outputs_total", {"topic": "metrics"}) == 1
        # the size it refused is remembered: the next one that large is replaced before produce
        assert not worker._limits.fits("metrics", big)

        worker._limits.producer_bytes = 10**9
        report = Message(topic="alerts", key=b"k", value=b"y" * 50_000, headers=[])
        worker._delivered(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), report)
        assert worker._record_fault is not None and "alerts" in worker._record_fault
        assert not worker._limits.fits("alerts", OutputRecord(b"k", b"z" * 50_000, []))
        assert worker._limits.fits("alerts", OutputRecord(b"k", b"z" * 10_000, []))
        doc = orjson.loads(worker._replace("alert", "alerts", OutputRecord(b"k", b"z" * 60_000, []),
                                           lambda: {"alert_id": "a"}, "test").value)
        assert doc["type"] == "oversized_output" and doc["fields"] == {"alert_id": "a"}
    finally:
        worker._producer.purge()


def test_a_tombstone_withdraws_the_profile_of_its_key_even_when_the_model_name_holds_a_slash():
    from driftline.reference.profile import ReferenceProfile
    from driftline.transport.references import ReferenceUpdate

    worker = Worker(load_settings(metrics_port=0))
    profiles = {}
    for model, version in (("col/a", "v"), ("col", "b")):
        profile = ReferenceProfile.__new__(ReferenceProfile)
        object.__setattr__(profile, "model", model)
        object.__setattr__(profile, "model_version", version)
        profiles[(model, version)] = profile
    worker.pipeline.references.update(profiles)
    worker._apply_references([ReferenceUpdate("col/a/v", None)])
    assert set(worker.pipeline.references) == {("col", "b")}


def test_last_offsets_of_interleaved_partitions_with_offset_gaps():
    """Transaction markers leave gaps in offsets: records of another partition between a partition's first and
    last record must still be counted."""
    from driftline.contract.event import SourceRecord
    from driftline.transport.worker import _last_offsets

    recs = [SourceRecord("in", 0, 0, None, None, b""), SourceRecord("in", 1, 5, None, None, b""),
            SourceRecord("in", 0, 2, None, None, b"")]
    assert _last_offsets(recs) == {("in", 0): 2, ("in", 1): 5}
    assert _last_offsets(recs[:1] + recs[2:]) == {("in", 0): 2}
    assert _last_offsets([]) == {}


def test_checkpoint_spacing_bounds_the_share_of_time_spent_checkpointing():
    from driftline.transport.checkpoints import SPACED_FROM_SECONDS, checkpoint_spacing

    assert checkpoint_spacing(0.5, 0.1) == pytest.approx(4.5)  # 0.5 s of every 5 s
    assert checkpoint_spacing(2.0, 0.25) == pytest.approx(6.0)
    assert checkpoint_spacing(SPACED_FROM_SECONDS / 2, 0.1) == 0.0  # small states: by records exactly
    assert checkpoint_spacing(0.5, 0.0) == 0.0  # 0 turns it off
    assert checkpoint_spacing(float("inf"), 0.1) == 0.0 and checkpoint_spacing(float("nan"), 0.1) == 0.0


def _due_worker(**kw) -> Worker:
    from driftline.transport.checkpoints import CheckpointStore

    settings = load_settings(metrics_port=0, checkpoint_interval_records=1000, **kw)
    worker = Worker(settings)
    worker._checkpoints = CheckpointStore(settings, 1)  # what run() sets once the state topic is known
    worker._records_since_checkpoint = 1000
    return worker


def test_a_checkpoint_due_by_records_waits_while_the_last_one_was_long():
    worker = _due_worker(checkpoint_max_share=0.1, checkpoint_interval_seconds=60)
    worker._checkpoint_seconds = 0.5
    now = time.monotonic()
    worker._last_checkpoint = now - 1.0
    assert not worker._due()  # 4.5 s after a 0.5 s checkpoint, not 1 s
    worker._last_checkpoint = now - 4.6
    assert worker._due()
    worker._checkpoint_seconds = 0.01  # a small state: by records at once
    worker._last_checkpoint = now
    assert worker._due()


def test_checkpoint_interval_seconds_still_applies_while_checkpoints_are_spaced():
    worker = _due_worker(checkpoint_max_share=0.01, checkpoint_interval_seconds=2)
    worker._checkpoint_seconds = 1.0  # spacing 99 s
    worker._last_checkpoint = time.monotonic() - 2.5
    assert worker._due()


def test_checkpoint_max_share_zero_checkpoints_by_records_regardless():
    worker = _due_worker(checkpoint_max_share=0, checkpoint_interval_seconds=0)
    worker._checkpoint_seconds = 10.0
    worker._last_checkpoint = time.monotonic()
    assert worker._due()
    worker._records_since_checkpoint = 999
    assert not worker._due()
