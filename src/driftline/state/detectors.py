"""River's change detectors, fed with standardised block scores.

A *block* is ``block`` consecutive values of one feature.  Its score is
``sum(z) / sqrt(block)`` where ``z`` are the values' normal scores in the
reference (see :mod:`driftline.stats.pit`); under the reference it is N(0, 1)
for any feature.  Feeding blocks instead of single values keeps the Python
calls per value low while losing almost nothing in detection delay (the block
sum is the sufficient statistic for a mean shift).  The location detector,
the fastest, sees every block; the spread detector and ADWIN see *pairs* of
blocks (a pair's variance is a better spread estimate anyway), which makes
two Python calls per ``block`` values instead of three.

Three detectors watch each numeric feature:

* ``page_hinkley`` — two-sided Page-Hinkley on the location scores;
* ``page_hinkley_spread`` — two-sided Page-Hinkley on the standardised
  variance of the scores *within* each block (Wilson-Hilferty), which moves
  when the spread changes and not when the mean does;
* ``adwin`` — ADWIN on the location scores, a second opinion that also follows
  slow, gradual drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from river import drift

__all__ = ["DetectorParams", "BlockDetectors", "Detection"]

PAGE_HINKLEY = "page_hinkley"
PAGE_HINKLEY_SPREAD = "page_hinkley_spread"
ADWIN = "adwin"


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Parameters of the block detectors (see :mod:`driftline.stats.calibration`)."""

    block: int
    ph_delta: float
    ph_threshold: float
    spread_delta: float
    spread_threshold: float
    adwin_delta: float
    ph_min_instances: int = 30


class Detection(NamedTuple):
    """A detector firing on a block.

    ``block`` is the index of the block (in the feature's value stream since
    the last reference was set) that completed the detection.
    """

    detector: str
    block: int
    statistic: float
    threshold: float


def _ph_statistic(ph: drift.PageHinkley) -> float:
    # The two one-sided Page-Hinkley statistics, as river computes them.
    up = ph._sum_increase - ph._min_increase
    down = ph._max_decrease - ph._sum_decrease
    return float(max(up, down, 0.0))


class BlockDetectors:
    """Page-Hinkley (location and spread) and ADWIN over block scores."""

    __slots__ = ("params", "location", "spread", "adwin", "blocks")

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.location = self._page_hinkley(params.ph_delta, params.ph_threshold)
        self.spread = self._page_hinkley(params.spread_delta, params.spread_threshold)
        self.adwin = drift.ADWIN(delta=params.adwin_delta, clock=1)
        self.blocks = 0

    def _page_hinkley(self, delta: float, threshold: float) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=self.params.ph_min_instances, delta=delta, threshold=threshold, alpha=1.0, mode="both"
        )

    def retune(self, params: DetectorParams) -> None:
        """Use new thresholds from now on (the model's feature count grew).

        Page-Hinkley keeps its running sums; river's ADWIN holds its delta in
        compiled code, so it restarts with the new one.
        """
        if params == self.params:
            return
        if params.block != self.params.block or params.ph_min_instances != self.params.ph_min_instances:
            raise ValueError("retuning cannot change the block size")
        for ph, delta, threshold in ((self.location, params.ph_delta, params.ph_threshold),
                                     (self.spread, params.spread_delta, params.spread_threshold)):
            ph.delta = delta
            ph.threshold = threshold
        if params.adwin_delta != self.params.adwin_delta:
            self.adwin = drift.ADWIN(delta=params.adwin_delta, clock=1)
        self.params = params

    def update(self, location: list[float], pair_location: list[float], pair_spread: list[float]) -> list[Detection]:
        """Feed scores in order: two location blocks per pair; return the detections.

        ``Detection.block`` counts single blocks; a pair's detections carry
        the index of its second block.
        """
        found: list[Detection] = []
        loc, spr, adw = self.location, self.spread, self.adwin
        p = self.params
        blocks = self.blocks
        # ``_drift_detected`` is what river's read-only ``drift_detected``
        # property returns; reading it directly saves a call per block.
        for i, (pair, w) in enumerate(zip(pair_location, pair_spread)):
            for s in (location[2 * i], location[2 * i + 1]):
                blocks += 1
                loc.update(s)
                if loc._drift_detected:
                    found.append(Detection(PAGE_HINKLEY, blocks, _ph_statistic(loc), p.ph_threshold))
            spr.update(w)
            if spr._drift_detected:
                found.append(Detection(PAGE_HINKLEY_SPREAD, blocks, _ph_statistic(spr), p.spread_threshold))
            adw.update(pair)
            if adw._drift_detected:
                found.append(Detection(ADWIN, blocks, abs(adw.estimation), p.adwin_delta))
        self.blocks = blocks
        return found

    def statistics(self) -> dict[str, float]:
        """Current detector statistics, for window summaries and gauges."""
        return {
            PAGE_HINKLEY: _ph_statistic(self.location),
            PAGE_HINKLEY_SPREAD: _ph_statistic(self.spread),
            "adwin_width": float(self.adwin.width),
        }
