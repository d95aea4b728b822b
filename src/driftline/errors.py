"""Exceptions raised by driftline.

    DriftlineError                 root of everything driftline raises
    ├── ConfigError                a setting is invalid; the message names it
    ├── ProfileError               a reference profile cannot be read or merged
    ├── BrokerUnreachableError     no Kafka broker answered at start-up
    ├── RecordError                a record the client was asked to send breaks the input contract
    └── KafkaFailure               Kafka refused something the worker needs
        ├── DeliveryError          output records could not be delivered
        └── ProducerFencedError    another worker took over this worker's transactional id

Errors from confluent-kafka are translated into these at the transport
boundary.  Bad *input records* are never exceptions: they become dead letters
with a reason (see :mod:`driftline.contract.decode`).
"""

from __future__ import annotations

__all__ = ["DriftlineError", "ConfigError", "ProfileError", "BrokerUnreachableError", "KafkaFailure", "DeliveryError", "ProducerFencedError", "RecordError"]


class DriftlineError(Exception):
    """Root of every exception driftline raises on purpose."""


class ConfigError(DriftlineError):
    """A configuration setting is invalid; the message names the setting."""


class ProfileError(DriftlineError):
    """A reference profile is malformed, of an unknown format, or cannot be merged."""


class BrokerUnreachableError(DriftlineError):
    """No Kafka broker could be reached at start-up."""


class KafkaFailure(DriftlineError):
    """Kafka refused an operation the worker cannot do without."""


class DeliveryError(KafkaFailure):
    """Output records (alerts, summaries, dead letters) were not delivered."""


class ProducerFencedError(KafkaFailure):
    """A newer producer with this worker's transactional id fenced it: two live workers shared the id.

    Fatal: the worker stops at once (``driftline run`` exits with code 4) and writes nothing more.
    """


class RecordError(DriftlineError, ValueError):
    """A prediction or label given to :mod:`driftline.client` cannot be encoded per the input contract.

    Raised by the pure encoders; the logger never lets it reach the serving
    code, it counts the record as ``invalid`` instead.
    """
