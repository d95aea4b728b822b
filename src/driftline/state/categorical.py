"""State of one categorical feature: bounded category counts and a reference mix."""

from __future__ import annotations

from collections import Counter
from driftline.stats.divergence import ChiSquareResult, chi_square_two_sample, jensen_shannon, psi

__all__ = ["CategoricalState", "OVERFLOW"]

OVERFLOW = "__other__"


class CategoricalState:
    """Counts per category, capped at ``max_categories`` tracked names.

    Categories beyond the cap are counted in the ``__other__`` bucket, so
    memory stays bounded however many distinct strings arrive.  The first
    ``warmup`` values form the reference mix; afterwards each window's mix is
    compared with it (two-sample chi-square, PSI, Jensen-Shannon).
    """

    __slots__ = ("max_categories", "warmup", "counts", "window_counts", "reference",
                 "reference_total", "window_scored", "window_new", "total_new", "overflowed", "fixed_reference")

    def __init__(self, *, max_categories: int, warmup: int) -> None:
        self.max_categories = max_categories
        self.warmup = warmup
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

    def use_reference(self, counts: dict[str, int]) -> None:
        """Compare with a fixed category mix (a profile's) from now on.

        The reference's most frequent names become the tracked categories (up
        to the cap; the rest are counted as ``__other__`` on both sides).
        """
        if not any(counts.values()):
            raise ValueError("a reference mix needs at least one value")
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

    def _bucket(self, value: str) -> str:
        if value in self.counts or len(self.counts) < self.max_categories:
            return value
        return OVERFLOW

    def update(self, values: list[str]) -> None:
        """Count a batch of values (counted per distinct value, in C)."""
        if not values:
            return
        need = 0 if self.fixed_reference else self.warmup - self.reference_total
        if need > 0:
            head, values = values[:need], values[need:]
            for value, n in Counter(head).items():
                self.reference[self._count(value, n)] += n
            self.reference_total += len(head)
        for value, n in Counter(values).items():
            value = self._count(value, n)
            self.window_scored[value] += n
            if value not in self.reference:
                self.window_new += n
                self.total_new += n

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
