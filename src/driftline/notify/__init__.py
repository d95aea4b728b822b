"""Alert routing without Prometheus: from the alerts topic to chat and webhooks.

The path of one alert record through ``driftline notify``::

    alerts topic ──► decode ──► filters ──► IncidentBook ─────► messages ──► webhooks
    (Kafka, group)   (bad: skip      (--model,     (grouping delay,  (Slack or      (POST, retried by
                      and count)      --status...)  joins, resolved)  generic JSON)  RetryPolicy)
                                                    NotifyGate                            └─► commit the offset
                                                    (no incident_id:
                                                     cooldown, duplicates)

Everything in this package is pure (no network, no Kafka, no clock of its
own): formatting (:mod:`.messages`), the incident rules (:mod:`.incidents`),
the cooldown and duplicate rules of records without an incident
(:mod:`.gate`), the retry schedule (:mod:`.retry`) and the settings
(:mod:`.settings`).  The I/O lives in :mod:`driftline.transport.webhooks`
(HTTP) and :mod:`driftline.transport.notifier` (the consumer loop).
"""

from driftline.notify.gate import Decision, NotifyGate
from driftline.notify.incidents import IncidentBook
from driftline.notify.messages import alert_key, generic_message, slack_message
from driftline.notify.retry import RetryPolicy, parse_retry_after
from driftline.notify.settings import NotifySettings, load_notify_settings

__all__ = ["Decision", "NotifyGate", "IncidentBook", "RetryPolicy", "parse_retry_after", "alert_key", "slack_message",
           "generic_message", "NotifySettings", "load_notify_settings"]
