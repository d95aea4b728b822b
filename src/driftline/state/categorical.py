"""State of one categorical feature: bounded category counts and a reference mix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from driftline.contract.names import bounded, is_plain
from driftline.state.detectors import CategoryCusums
from driftline.stats.divergence import ChiSquareResult, chi_square_two_sample, jensen_shannon, psi

__all__ = ["CategoricalState", "CategoryDetection", "OVERFLOW", "update_detect_many"]

OVERFLOW = "__other__"


class CategoryDetection(NamedTuple):
    """A category CUSUM firing: the frequency of ``category`` moved ``up`` (or down) from the reference's."""

    category: str
    up: bool
    statistic: float
    threshold: float
    #: the category's frequency in the reference (``__other__``: everything the reference's top names are not)
    reference_frequency: float
    #: its frequency over the 256 values up to the detection
    recent_frequency: float


class CategoricalState:
    """Counts per category, capped at ``max_categories`` tracked names.

    Categories beyond the cap are counted in the ``__other__`` bucket, so
    memory stays bounded however many distinct strings arrive; a value longer
    than ``max_chars``, not valid UTF-8, or spelt ``__other__`` is counted
    under its bounded form (:mod:`driftline.contract.names`), so memory and
    summaries stay bounded however long the strings are, and distinct values
    stay distinct.  The first
    ``warmup`` values form the reference mix; afterwards each window's mix is
    compared with it (two-sample chi-square, PSI, Jensen-Shannon), and every
    value feeds the category CUSUMs (:class:`~driftline.state.detectors.CategoryCusums`,
    when ``share``, the false-alarm budget of that check per event, is given).
    """

    __slots__ = ("max_categories", "warmup", "counts", "window_counts", "reference",
                 "reference_total", "window_scored", "window_new", "total_new", "overflowed", "fixed_reference",
                 "max_chars", "share", "detector")

    def __init__(self, *, max_categories: int, warmup: int, max_chars: int = 256, share: float | None = None) -> None:
        self.max_categories = max_categories
        self.share = share
        #: the category CUSUMs, once the reference mix is complete (None without a share)
        self.detector: CategoryCusums | None = None
        self.warmup = warmup
        self.max_chars = max_chars
        self.counts: Counter[str] = Counter()
        self.window_counts: Counter[str] = Counter()
        self.reference: Counter[str] = Counter()
        self.reference_total = 0
        self.window_scored: Counter[str] = Counter()
        self.window_new = 0
        self.total_new = 0
        self.overflowed = 0
        self.fixed_reference = False

    @property
    def warmed_up(self) -> bool:
        return self.fixed_reference or self.reference_total >= self.warmup

    @property
    def differs(self) -> bool:
        """The mix still differs from the reference by the category CUSUMs (False before warm-up ends).

        True from a detection until every category CUSUM has fallen back to
        half its threshold.
        """
        return self.detector is not None and self.detector.differs

    def statistics(self) -> dict[str, float]:
        """The category CUSUMs' current statistic (the largest sum over its threshold; ≥ 1 while one is
        above it), for window summaries and gauges; empty before the reference is complete."""
        return {} if self.detector is None else {"category_cusum": self.detector.statistic()}

    def retune(self, share: float) -> None:
        """A new budget per event for the category CUSUMs (the model's feature count grew)."""
        self.share = share
        if self.detector is not None:
            self.detector.retune(share)

    def _start_detector(self) -> None:
        self.detector = None if self.share is None or not self.reference_total else CategoryCusums(
            self.reference, max_categories=self.max_categories, share=self.share, other=OVERFLOW)

    def use_reference(self, counts: dict[str, int]) -> None:
        """Compare with a fixed category mix (a profile's) from now on.

        The reference's most frequent names become the tracked categories (up
        to the cap; the rest are counted as ``__other__`` on both sides).
        """
        if not any(counts.values()):
            raise ValueError("a reference mix needs at least one value")
        if not all(k == OVERFLOW or self._plain(k) for k in counts):
            kept_as: Counter[str] = Counter()
            for k, n in counts.items():  # a profile carries values as they were sent
                kept_as[k if k == OVERFLOW else self.text(k)] += n
            counts = kept_as
        ranked = sorted((k for k in counts if k != OVERFLOW), key=lambda k: (-counts[k], k))
        kept = ranked[: self.max_categories - 1]
        reference: Counter[str] = Counter({k: counts[k] for k in kept if counts[k] > 0})
        folded = counts.get(OVERFLOW, 0) + sum(counts[k] for k in ranked[self.max_categories - 1:])
        if folded:
            reference[OVERFLOW] = folded
        self.reference = reference
        self.reference_total = sum(reference.values())
        self.fixed_reference = True
        for name in reference:
            self.counts.setdefault(name, 0)
        self.window_scored = Counter()
        self.window_new = 0
        self._start_detector()

    def _bucket(self, value: str) -> str:
        if value in self.counts or len(self.counts) < self.max_categories:
            return value
        return OVERFLOW

    def _plain(self, value: str) -> bool:
        return value != OVERFLOW and is_plain(value, self.max_chars)

    def text(self, value: str) -> str:
        """The name ``value`` is counted under: itself, or its bounded form."""
        return value if self._plain(value) else bounded(value, self.max_chars)

    def update(self, values: list[str]) -> int:
        """Count a batch of values (counted per distinct value, in C); return how many were counted
        under their bounded form."""
        return self.update_detect(values)[0]

    def update_detect(self, values: list[str]) -> tuple[int, list[tuple[int, CategoryDetection]]]:
        """:meth:`update`, and the category CUSUMs' detections as ``(index in values, detection)``."""
        if not values:
            return 0, []
        renamed = 0
        start = 0
        need = 0 if self.fixed_reference else self.warmup - self.reference_total
        if need > 0:
            head, values = values[:need], values[need:]
            for value, n in Counter(head).items():
                if not self._plain(value):
                    value = bounded(value, self.max_chars)
                    renamed += n
                self.reference[self._count(value, n)] += n
            self.reference_total += len(head)
            start = len(head)
            if self.reference_total >= self.warmup:
                self._start_detector()
        detector = self.detector
        cells: dict[str, int] = {}
        if detector is not None:
            index, other = detector.cell_index(), len(detector.names) - 1
        for value, n in Counter(values).items():
            raw = value
            if not self._plain(value):
                value = bounded(value, self.max_chars)
                renamed += n
            value = self._count(value, n)
            self.window_scored[value] += n
            if value not in self.reference:
                self.window_new += n
                self.total_new += n
            if detector is not None:
                cells[raw] = index.get(value, other)
        if detector is None or not values:
            return renamed, []
        codes = np.fromiter(map(cells.__getitem__, values), dtype=np.int64, count=len(values))
        found = [(start + row, CategoryDetection(name, up, stat, threshold, float(detector.p0[detector.cell(name)]), recent))
                 for row, name, up, stat, threshold, recent in detector.update(codes)]
        return renamed, found

    def _count(self, value: str, n: int) -> str:
        """Add ``n`` of ``value`` to the totals; return the bucket it went to."""
        bucket = self._bucket(value)
        if bucket == OVERFLOW:
            self.overflowed += n
        self.counts[bucket] += n
        self.window_counts[bucket] += n
        return bucket

    def window_test(self) -> tuple[ChiSquareResult, float, float] | None:
        """Chi-square, PSI and Jensen-Shannon of this window against the reference.

        Only values counted after the reference was complete take part, so a
        window that overlaps warm-up is not compared with itself.
        """
        current = self.window_scored
        if not self.warmed_up or not current:
            return None
        names = sorted(set(self.reference) | set(current))
        ref = [self.reference.get(n, 0) for n in names]
        cur = [current.get(n, 0) for n in names]
        return chi_square_two_sample(ref, cur), psi(ref, cur), jensen_shannon(ref, cur)

    def top(self, n: int = 10) -> dict[str, int]:
        return dict(self.window_counts.most_common(n))

    def reset_window(self) -> None:
        self.window_counts = Counter()
        self.window_scored = Counter()
        self.window_new = 0


def update_detect_many(items: Sequence[tuple[CategoricalState, list[str]]]
                       ) -> list[tuple[int, list[tuple[int, CategoryDetection]]]]:
    """``[state.update_detect(values) for state, values in items]`` (distinct states).

    The entry point the monitor calls for all its categorical chunks at once; for now it is that loop
    (the category CUSUMs of different states have different widths, and are not yet walked together).
    """
    return [state.update_detect(values) for state, values in items]
