"""Python's cyclic garbage collector, paused around work that allocates millions of acyclic containers.

Decoding a batch of records, and encoding or decoding a checkpoint, create a container per record, value
or state object; none of them forms a cycle (reference counting frees them), yet the collector's passes
over them took more than half the time (a 10,000-feature checkpoint decoded in 4.1 s with it, 1.9 s
without; ``Pipeline.process`` ran 1.16x faster without it).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["paused", "tuned", "tune", "WORKER_THRESHOLDS"]

#: the young generation collected after 50,000 net allocations (CPython: 700), the older ones as usual
WORKER_THRESHOLDS = (50_000, 20, 20)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off inside the block, restored to what it was afterwards, whatever happens."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_tuned_lock = threading.Lock()
_tuned_users = 0
_tuned_before: tuple[int, int, int] | None = None


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """The collector run less often inside the block, for a loop that decodes records; the thresholds it
    had are restored when the last of the blocks open at once (workers in threads of one process) ends.

    Decoding makes a few dicts per event, all freed by reference counting; the
    default young-generation threshold (700 allocations) still walked them,
    which cost about a third of the pipeline's time (in-memory batches of
    80,000 events: 2.8 s with the default, 1.8 s without collections), and in
    the worker's loop (the consumed messages, a record per message) 1.7-3.5 µs
    per record of 15-23.  (``gc.freeze`` would save more but keeps the native
    sketches alive past exit, where nanobind reports them as leaks.)
    """
    global _tuned_users, _tuned_before
    with _tuned_lock:
        if _tuned_users == 0:
            _tuned_before = gc.get_threshold()  # type: ignore[assignment]
            gc.set_threshold(*WORKER_THRESHOLDS)
        _tuned_users += 1
    try:
        yield
    finally:
        with _tuned_lock:
            _tuned_users -= 1
            if _tuned_users == 0 and _tuned_before is not None:
                gc.set_threshold(*_tuned_before)
                _tuned_before = None


def tune() -> None:
    """The collector run less often from now on, for good (a command that decodes records until it exits)."""
    gc.set_threshold(*WORKER_THRESHOLDS)
