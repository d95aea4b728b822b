"""Model performance from joined labels: pure accumulators that merge.

Classification: accuracy, precision / recall / F1 of a positive class, and,
when the model gives a score (probability of the positive class), log loss and
Brier score.  Regression: MAE, RMSE and mean error (bias, prediction − label).
Plus the small helpers the champion / challenger comparison needs: a paired
mean difference with its confidence interval and the Wilson bound of a rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftline.stats.normal import normal_quantile

__all__ = ["ClassificationStats", "RegressionStats", "RunningMean", "wilson_lower", "LOG_LOSS_EPS"]

#: scores are clipped to [eps, 1 − eps] before the logarithm (as scikit-learn does)
LOG_LOSS_EPS = 1e-15


@dataclass(slots=True)
class ClassificationStats:
    """Counts of one stream of (predicted class, actual class[, score]).

    >>> s = ClassificationStats()
    >>> for pred, actual, score in [("1", "1", 0.9), ("1", "0", 0.6), ("0", "0", 0.2), ("0", "1", 0.4)]:
    ...     s.add(pred, actual, positive="1", score=score)
    >>> {k: round(v, 3) for k, v in s.to_dict().items() if v is not None}
    {'labeled': 4, 'accuracy': 0.5, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'log_loss': 0.54, 'brier': 0.193}
    """

    n: int = 0
    correct: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    scored: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0

    def add(self, predicted: str, actual: str, *, positive: str | None, score: float | None = None) -> None:
        self.n += 1
        self.correct += predicted == actual
        if positive is not None:
            if predicted == positive:
                if actual == positive:
                    self.tp += 1
                else:
                    self.fp += 1
            elif actual == positive:
                self.fn += 1
            if score is not None:
                y = 1.0 if actual == positive else 0.0
                p = min(max(score, LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
                self.scored += 1
                self.log_loss_sum -= math.log(p) if y else math.log(1.0 - p)
                self.brier_sum += (score - y) ** 2

    def merge(self, other: "ClassificationStats") -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    def to_dict(self) -> dict[str, float | int | None]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        f1 = (2 * precision * recall / (precision + recall)) if precision and recall else (0.0 if precision == 0 or recall == 0 else None)
        return {
            "labeled": self.n,
            "accuracy": self.accuracy,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "log_loss": self.log_loss_sum / self.scored if self.scored else None,
            "brier": self.brier_sum / self.scored if self.scored else None,
        }


@dataclass(slots=True)
class RegressionStats:
    """Errors of one stream of (prediction, label).

    >>> s = RegressionStats()
    >>> for pred, actual in [(3.0, 1.0), (1.0, 2.0)]:
    ...     s.add(pred, actual)
    >>> s.to_dict()
    {'labeled': 2, 'mae': 1.5, 'rmse': 1.5811388300841898, 'bias': 0.5}
    """

    n: int = 0
    abs_sum: float = 0.0
    sq_sum: float = 0.0
    err_sum: float = 0.0

    def add(self, predicted: float, actual: float) -> None:
        err = predicted - actual
        self.n += 1
        self.abs_sum += abs(err)
        self.sq_sum += err * err
        self.err_sum += err

    def merge(self, other: "RegressionStats") -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, float | int | None]:
        if not self.n:
            return {"labeled": 0, "mae": None, "rmse": None, "bias": None}
        return {"labeled": self.n, "mae": self.abs_sum / self.n, "rmse": math.sqrt(self.sq_sum / self.n),
                "bias": self.err_sum / self.n}


@dataclass(slots=True)
class RunningMean:
    """Mean and its normal confidence interval (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """Two-sided interval of the mean; None with fewer than two values."""
        if self.n < 2:
            return None
        z = float(normal_quantile(0.5 + confidence / 2.0))
        half = z * math.sqrt(self.m2 / (self.n - 1) / self.n)
        return self.mean - half, self.mean + half


def wilson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided lower confidence bound (level 1 − alpha) of a rate of ``k`` in ``n`` (Wilson score)."""
    if n <= 0:
        return 0.0
    z = float(normal_quantile(1.0 - alpha))
    p = k / n
    denom = 1.0 + z * z / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / denom)
