"""driftline: streaming drift detection for machine-learning models on Kafka.

The public API is small: the settings, the detection pipeline (usable without
Kafka), the worker, and the root exception.
"""

from __future__ import annotations

__version__ = "0.1.0"

from driftline.config import Settings, load_settings
from driftline.detection.pipeline import Pipeline
from driftline.errors import DriftlineError

__all__ = ["Settings", "load_settings", "Pipeline", "DriftlineError", "__version__"]
