"""Detection settings derived from a per-model false-alarm budget.

The budget (false alarms per event, for the whole model version) is split
evenly over the model's features and, within a feature, over its statistical
checks (Bonferroni).  A detector's threshold grows with the logarithm of one
over its share (see :mod:`driftline.stats.calibration`), so a model with 200
features keeps the false-alarm rate of a model with one, and pays for it with
a detection delay that grows only with ``log(features)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from driftline.contract.names import MIN_CHARS
from driftline.state.detectors import DetectorParams
from driftline.stats.calibration import adwin_delta

__all__ = ["MonitorSettings", "STATISTICAL_CHECKS", "CATEGORY_CUSUM_SHARES", "WINDOW_THRESHOLDS", "NUMERIC_WINDOW_TESTS",
           "CATEGORICAL_WINDOW_TESTS"]

#: Statistical checks per feature that share its part of the budget:
#: the CUSUMs on location and on spread, ADWIN, the windowed distribution test
#: and the missing-rate test.  Categorical features have the last two and the
#: category CUSUMs, which take the shares of the three sequential checks a
#: numeric feature has (:data:`CATEGORY_CUSUM_SHARES`).
STATISTICAL_CHECKS = 5
CATEGORY_CUSUM_SHARES = 3

#: Windowed statistics that can raise an alert, and their default thresholds:
#: the values users know from batch drift tools (PSI 0.1 = moderate,
#: 0.2 = significant shift; Wasserstein in reference sd 0.1 as in Evidently's
#: large-sample default; Jensen-Shannon *divergence* 0.01 bits, which is a
#: JS distance of 0.083 in natural-log units, near Evidently's 0.1; KS 0.1).
WINDOW_THRESHOLDS = {"psi": 0.2, "ks": 0.1, "wasserstein_sd": 0.1, "jensen_shannon": 0.01}
NUMERIC_WINDOW_TESTS = ("psi", "ks", "wasserstein_sd", "off")
CATEGORICAL_WINDOW_TESTS = ("chi_square", "psi", "jensen_shannon", "off")


@lru_cache(maxsize=256)
def _detector_params(false_alarm_rate: float, design_shift: float, block: int, features: int) -> DetectorParams:
    share = false_alarm_rate / (features * STATISTICAL_CHECKS)
    if design_shift <= 0.0:
        raise ValueError(f"design_shift must be positive, got {design_shift!r}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    return DetectorParams(block=block, share=share, design_shift=design_shift,
                          adwin_delta=adwin_delta(false_alarm_rate=share))


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """How every model monitor behaves; built once from the configuration."""

    warmup: int
    window_events: int
    window_seconds: float | None
    #: design false alarms per event for one model version, all features and checks together
    false_alarm_rate: float
    design_shift: float
    block: int
    max_features: int
    max_categories: int
    #: windowed statistic that alerts for numeric / categorical features
    numeric_test: str = "psi"
    categorical_test: str = "chi_square"
    thresholds: dict[str, float] = field(default_factory=lambda: dict(WINDOW_THRESHOLDS))
    min_window_values: int = 20
    #: longest feature / output name and category value kept as it is (longer: bounded form, a finding)
    max_name_chars: int = 256
    max_category_chars: int = 256

    def __post_init__(self) -> None:
        if self.numeric_test not in NUMERIC_WINDOW_TESTS:
            raise ValueError(f"numeric window test must be one of {NUMERIC_WINDOW_TESTS}, not {self.numeric_test!r}")
        if self.categorical_test not in CATEGORICAL_WINDOW_TESTS:
            raise ValueError(f"categorical window test must be one of {CATEGORICAL_WINDOW_TESTS}, "
                             f"not {self.categorical_test!r}")
        if min(self.max_name_chars, self.max_category_chars) < MIN_CHARS:
            raise ValueError(f"max_name_chars and max_category_chars must be at least {MIN_CHARS}")

    @classmethod
    def calibrated(
        cls,
        *,
        false_alarm_rate: float,
        design_shift: float = 0.5,
        block: int = 32,
        warmup: int = 2000,
        window_events: int = 5000,
        window_seconds: float | None = 60.0,
        max_features: int = 500,
        max_categories: int = 100,
        numeric_test: str = "psi",
        categorical_test: str = "chi_square",
        thresholds: dict[str, float] | None = None,
        max_name_chars: int = 256,
        max_category_chars: int = 256,
    ) -> "MonitorSettings":
        return cls(warmup=warmup, window_events=window_events, window_seconds=window_seconds,
                   false_alarm_rate=false_alarm_rate, design_shift=design_shift, block=block,
                   max_features=max_features, max_categories=max_categories,
                   numeric_test=numeric_test, categorical_test=categorical_test,
                   thresholds={**WINDOW_THRESHOLDS, **(thresholds or {})},
                   max_name_chars=max_name_chars, max_category_chars=max_category_chars)

    def detector_for(self, features: int) -> DetectorParams:
        """Detector parameters when the budget is shared by ``features`` features."""
        return _detector_params(self.false_alarm_rate, self.design_shift, self.block, max(1, features))

    def category_share(self, features: int) -> float:
        """False alarms per event of a categorical feature's category CUSUMs (all its categories together)."""
        return self.detector_for(features).share * CATEGORY_CUSUM_SHARES

    @property
    def detector(self) -> DetectorParams:
        """Detector parameters of a one-feature model."""
        return self.detector_for(1)

    def window_alpha(self, features: int, records: int) -> float:
        """Significance level of one windowed test over ``records`` events.

        The per-event share of one check, times the events the window covers:
        windows closed early by time get a proportionally smaller level, so
        the budget per event holds however windows are cut.
        """
        share = self.false_alarm_rate / (max(1, features) * STATISTICAL_CHECKS)
        return min(0.01, share * max(1, records))
