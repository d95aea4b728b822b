"""The producer SDK for model servers: one call per prediction, records per the input contract.

::

    from driftline.client import PredictionLogger

    logger = PredictionLogger("kafka:9092", model="fraud", model_version="v3")
    event_id = logger.log({"amount": 129.5, "country": "de"}, {"score": 0.91})
    logger.log_label(event_id, "fraud")     # when the truth is known
    logger.close()                          # flush at shutdown

``log()`` never blocks and never raises; what could not be sent is counted
(``sent``, ``delivered``, ``failed``, ``dropped``, ``invalid``).  See
``docs/client.md``.
"""

from driftline.client.logger import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_LABELS_TOPIC,
    DEFAULT_TOPIC,
    ClientStats,
    PredictionLogger,
)
from driftline.client.records import encode_inference, encode_label
from driftline.errors import RecordError

__all__ = [
    "PredictionLogger",
    "ClientStats",
    "RecordError",
    "encode_inference",
    "encode_label",
    "DEFAULT_BOOTSTRAP_SERVERS",
    "DEFAULT_TOPIC",
    "DEFAULT_LABELS_TOPIC",
]
