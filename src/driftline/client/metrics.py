"""The prediction logger's counters as Prometheus metrics, read at scrape time.

A collector, not counters incremented per call: the serving path pays nothing
for the export, and the metrics always equal the logger's attributes.

    driftline_client_records_sent_total       records queued for Kafka
    driftline_client_records_delivered_total  records Kafka acknowledged
    driftline_client_records_failed_total     records not acknowledged within the delivery timeout
    driftline_client_records_dropped_total    records dropped: local buffer full, or logger closed
    driftline_client_records_invalid_total    records that break the input contract (never sent)
    driftline_client_buffered_records         records queued or in flight
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from driftline.errors import ConfigError

if TYPE_CHECKING:
    from driftline.client.logger import ClientStats, PredictionLogger

__all__ = ["ClientCollector", "register_collector"]

_COUNTERS = (
    ("sent", "Records the prediction logger queued for Kafka."),
    ("delivered", "Records Kafka acknowledged."),
    ("failed", "Records Kafka did not acknowledge within the delivery timeout, or refused."),
    ("dropped", "Records dropped before queueing: local buffer full (newest dropped) or logger closed."),
    ("invalid", "Records that break the input contract; never sent."),
)


class ClientCollector(Collector):
    """Exports one logger's :class:`~driftline.client.logger.ClientStats`."""

    def __init__(self, logger: "PredictionLogger") -> None:
        self._logger = logger

    def collect(self) -> Iterator[Metric]:
        return self._families(self._logger.stats())

    def describe(self) -> Iterator[Metric]:
        """The metric names, so that a registry refuses a second logger's duplicates."""
        return self._families(None)

    @staticmethod
    def _families(stats: "ClientStats | None") -> Iterator[Metric]:
        for name, doc in _COUNTERS:
            yield CounterMetricFamily(f"driftline_client_records_{name}", doc,
                                      value=getattr(stats, name) if stats is not None else None)
        yield GaugeMetricFamily("driftline_client_buffered_records", "Records queued or in flight, awaiting delivery.",
                                value=stats.buffered if stats is not None else None)


def register_collector(registry: object, logger: "PredictionLogger") -> ClientCollector:
    """Register ``logger``'s metrics in ``registry``; ConfigError if it is not a registry or has them already."""
    if not isinstance(registry, CollectorRegistry):
        raise ConfigError(f"invalid setting registry: {type(registry).__name__} is not a prometheus_client CollectorRegistry")
    collector = ClientCollector(logger)
    try:
        registry.register(collector)
    except ValueError as exc:
        raise ConfigError(f"invalid setting registry: {exc} (one prediction logger per registry)") from None
    return collector
