"""Python's cyclic garbage collector, paused around work that allocates millions of acyclic containers.

Decoding a batch of records, and encoding or decoding a checkpoint, create a container per record, value
or state object; none of them forms a cycle (reference counting frees them), yet the collector's passes
over them took more than half the time (a 10,000-feature checkpoint decoded in 4.1 s with it, 1.9 s
without; ``Pipeline.process`` ran 1.16x faster without it).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused", "tuned", "WORKER_THRESHOLDS"]

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


def tuned() -> tuple[int, int, int]:
    """Run the collector less often in a process that decodes records (returns the thresholds it had).

    Decoding makes a few dicts per event, all freed by reference counting; the
    default young-generation threshold (700 allocations) still walked them,
    which cost about a third of the pipeline's time (in-memory batches of
    80,000 events: 2.8 s with the default, 1.8 s without collections), and in
    the worker's loop (the consumed messages, a record per message) 1.7-3.5 µs
    per record of 15-23.  (``gc.freeze`` would save more but keeps the native
    sketches alive past exit, where nanobind reports them as leaks.)
    """
    before = gc.get_threshold()
    gc.set_threshold(*WORKER_THRESHOLDS)
    return before  # type: ignore[return-value]
