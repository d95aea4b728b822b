"""Every Prometheus metric of a ``driftline notify`` process, against an injectable registry.

Labels are bounded: ``outcome`` by fixed lists, ``endpoint`` by the endpoints
configured (named ``webhook#1``, ``slack#1``, ...; never by URL, which is a
secret).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.process_collector import ProcessCollector

__all__ = ["NotifyMetrics", "ALERT_OUTCOMES", "DELIVERY_OUTCOMES", "MESSAGE_STAGES"]

#: What became of an alert record read from the alerts topic (``grouped``: a record with an
#: ``incident_id``, part of its incident's messages).
ALERT_OUTCOMES = ("sent", "grouped", "suppressed", "resolved_dropped", "duplicate", "filtered", "bad_record")
#: Stages of an incident message (``driftline.notify.incidents.STAGES``).
MESSAGE_STAGES = ("opened", "update", "reopened", "reminder", "resolved")
#: What became of one message to one endpoint.
DELIVERY_OUTCOMES = ("delivered", "failed", "rejected")


class NotifyMetrics:
    """The metrics of one notify process."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
        self.alerts = Counter("driftline_notify_alerts_total", "Alert records read, by outcome (sent, grouped, "
                              "suppressed, resolved_dropped, duplicate, filtered, bad_record).", ["outcome"], registry=r)
        self.messages = Counter("driftline_notify_incident_messages_total", "Incident messages posted (to every "
                                "endpoint), by stage (opened, update, reopened, reminder, resolved).", ["stage"],
                                registry=r)
        self.deliveries = Counter("driftline_notify_deliveries_total", "Messages to an endpoint, by final outcome "
                                  "(delivered, failed = retries exhausted, rejected = status not retried).",
                                  ["endpoint", "outcome"], registry=r)
        self.retries = Counter("driftline_notify_retries_total", "Retries of a message to an endpoint.",
                               ["endpoint"], registry=r)
        self.replayed = Counter("driftline_notify_replayed_records_total", "Alert records re-read (not posted) on "
                                "assignment to rebuild the cooldown state of the partitions' keys.", registry=r)
        self.assigned_partitions = Gauge("driftline_notify_assigned_partitions",
                                         "Partitions of the alerts topic assigned to this process.", registry=r)
        for outcome in ALERT_OUTCOMES:
            self.alerts.labels(outcome)
        for stage in MESSAGE_STAGES:
            self.messages.labels(stage)
