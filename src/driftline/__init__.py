"""driftline: streaming drift detection for machine-learning models on Kafka.

The public API is small: the settings, the detection pipeline (usable without
Kafka), the worker, and the root exception.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from driftline.config import Settings, load_settings
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from driftline.detection.pipeline import Pipeline

__all__ = ["Settings", "load_settings", "Pipeline", "DriftlineError", "__version__"]


def __getattr__(name: str) -> Any:
    # The pipeline pulls in scipy and river (about a second): imported when first used, so that
    # `driftline --help`, a configuration error or `driftline status` start quickly.
    if name == "Pipeline":
        from driftline.detection.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
