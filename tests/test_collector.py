"""The collector's pause and tuning blocks restore what they found."""

from __future__ import annotations

import gc

import pytest

from driftline import collector


@pytest.fixture(autouse=True)
def _default_thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_tuned_blocks_open_at_once_restore_the_thresholds_when_the_last_one_ends():
    with collector.tuned():
        assert gc.get_threshold() == collector.WORKER_THRESHOLDS
        with collector.tuned():  # a second worker in another thread, here nested: it ends first
            pass
        assert gc.get_threshold() == collector.WORKER_THRESHOLDS
    assert gc.get_threshold() == (700, 10, 10)


def test_tuned_restores_after_an_exception_and_can_be_entered_again():
    with pytest.raises(RuntimeError):
        with collector.tuned():
            raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
    gc.set_threshold(900, 5, 5)
    with collector.tuned():
        assert gc.get_threshold() == collector.WORKER_THRESHOLDS
    assert gc.get_threshold() == (900, 5, 5)


def test_paused_restores_an_enabled_collector_and_leaves_a_disabled_one_off():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
