"""A synthetic model server: inference events with a known drift part-way.

A credit-scoring model ``credit-risk`` version ``v2`` with four numeric
features, one categorical feature and a probability output.  After
``drift_at`` events the ``income`` feature's mean drops by one standard
deviation and the ``channel`` mix moves by 30 percentage points; everything else
stays stationary.
"""

from __future__ import annotations

import math
import time
from typing import Iterator

import numpy as np
import orjson

__all__ = ["TrafficSpec", "events", "DRIFTING_FEATURES"]

DRIFTING_FEATURES = ("income", "channel")
CHANNELS = ("web", "mobile", "branch", "partner")
CHANNEL_MIX = (0.5, 0.3, 0.15, 0.05)
CHANNEL_MIX_DRIFTED = (0.2, 0.6, 0.15, 0.05)


class TrafficSpec:
    def __init__(self, *, total: int = 12_000, drift_at: int = 7_000, seed: int = 7, model: str = "credit-risk",
                 version: str = "v2", start_ms: int | None = None, step_ms: int = 5) -> None:
        self.total = total
        self.drift_at = drift_at
        self.seed = seed
        self.model = model
        self.version = version
        self.start_ms = start_ms if start_ms is not None else int(time.time() * 1000) - total * step_ms
        self.step_ms = step_ms


def events(spec: TrafficSpec) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs, keyed by model as the producer contract asks."""
    rng = np.random.default_rng(spec.seed)
    key = spec.model.encode()
    for i in range(spec.total):
        drifted = i >= spec.drift_at
        income = rng.lognormal(10.5, 0.4)
        if drifted:
            income -= 0.41 * math.exp(10.5 + 0.08)  # about one sd lower
        age = float(rng.integers(18, 80))
        debt_ratio = float(rng.beta(2, 5))
        accounts = float(rng.poisson(3))
        channel = str(rng.choice(CHANNELS, p=CHANNEL_MIX_DRIFTED if drifted else CHANNEL_MIX))
        score = 1.0 / (1.0 + math.exp(-(-2.0 + 3.0 * debt_ratio - income / 60000.0 + 0.01 * (age - 40))))
        doc = {
            "model": spec.model,
            "model_version": spec.version,
            "event_id": f"evt-{spec.seed}-{i}",
            "timestamp": spec.start_ms + i * spec.step_ms,
            "features": {"income": round(income, 2), "age": age, "debt_ratio": debt_ratio,
                         "open_accounts": accounts, "channel": channel},
            "prediction": {"default_probability": score},
        }
        yield key, orjson.dumps(doc)
