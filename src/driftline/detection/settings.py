"""Detection settings derived from a false-alarm budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftline.state.detectors import DetectorParams
from driftline.stats.calibration import adwin_delta, page_hinkley_params

__all__ = ["MonitorSettings", "STATISTICAL_CHECKS"]

#: Statistical checks per feature that share its false-alarm budget:
#: Page-Hinkley on location, on spread, ADWIN, and the windowed test
#: (missing rate for numeric features; category mix and missing rate for
#: categorical ones, which have no block detectors).
STATISTICAL_CHECKS = 4

#: Values after warm-up before Page-Hinkley may fire (its running mean settles).
PH_MIN_VALUES = 480


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """How every model monitor behaves; built once from the configuration."""

    warmup: int
    window_events: int
    window_seconds: float | None
    detector: DetectorParams
    window_alpha: float
    max_features: int
    max_categories: int
    min_window_values: int = 20

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
    ) -> "MonitorSettings":
        """Split a per-feature false-alarm rate (per event) over the checks.

        Each check gets an equal share; see :mod:`driftline.stats.calibration`
        for how a share becomes detector parameters.
        """
        share = false_alarm_rate / STATISTICAL_CHECKS
        ph = page_hinkley_params(false_alarm_rate=share, design_shift=design_shift, block=block)
        spread = page_hinkley_params(false_alarm_rate=share, design_shift=design_shift, block=2 * block)
        delta = adwin_delta(false_alarm_rate=share)
        return cls(
            warmup=warmup,
            window_events=window_events,
            window_seconds=window_seconds,
            detector=DetectorParams(block=block, ph_delta=ph.delta, ph_threshold=ph.threshold,
                                    spread_delta=spread.delta, spread_threshold=spread.threshold, adwin_delta=delta,
                                    # Page-Hinkley starts testing after ~480 values whatever the block size
                                    ph_min_instances=max(10, math.ceil(PH_MIN_VALUES / block))),
            window_alpha=min(0.01, share * window_events),
            max_features=max_features,
            max_categories=max_categories,
        )

