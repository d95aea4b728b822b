"""Count, mean, variance, min and max, updated a batch at a time and mergeable.

River's ``stats.Var`` updates one value per Python call; driftline updates a
whole column per call, so the batch update and Chan's merge formula live here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Moments"]


@dataclass(slots=True)
class Moments:
    """Running moments of a numeric stream (Welford / Chan, numerically stable).

    >>> m = Moments(); m.update(np.array([1.0, 2.0, 3.0])); m.update(np.array([4.0]))
    >>> (m.n, m.mean, round(m.variance, 4), m.min, m.max)
    (4, 2.5, 1.6667, 1.0, 4.0)
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def update(self, values: np.ndarray) -> None:
        """Add a batch of finite values."""
        if values.size == 0:
            return
        self.merge(Moments.of(values))

    @classmethod
    def of(cls, values: np.ndarray) -> "Moments":
        n = int(values.size)
        if n == 0:
            return cls()
        mean = float(values.mean())
        m2 = float(np.square(values - mean).sum())
        return cls(n, mean, m2, float(values.min()), float(values.max()))

    def merge(self, other: "Moments") -> None:
        """Combine with moments of another stream, in place."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2, self.min, self.max = other.n, other.mean, other.m2, other.min, other.max
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def __add__(self, other: "Moments") -> "Moments":
        out = Moments(self.n, self.mean, self.m2, self.min, self.max)
        out.merge(other)
        return out

    @property
    def variance(self) -> float:
        """Sample variance (n − 1 denominator); 0 with fewer than two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)

    def to_dict(self) -> dict[str, float | int | None]:
        if self.n == 0:
            return {"count": 0, "mean": None, "sd": None, "min": None, "max": None}
        return {"count": self.n, "mean": self.mean, "sd": self.sd, "min": self.min, "max": self.max}
