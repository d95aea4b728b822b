"""``driftline notify``: post the alerts topic's records to Slack and generic JSON webhooks."""

from __future__ import annotations

import argparse

from driftline.config import Settings
from driftline.notify.settings import FLAGS, load_notify_settings

__all__ = ["add_notify_flags", "notify", "notify_settings_from"]


def add_notify_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`NotifySettings` (each also ``DRIFTLINE_NOTIFY_<SETTING>`` in the environment)."""
    g = parser.add_argument_group("notify (each also DRIFTLINE_NOTIFY_<SETTING> in the environment)")
    g.add_argument(FLAGS["webhooks"], dest="notify_webhooks", action="append", default=None, metavar="URL",
                   help="generic JSON webhook: each alert record is POSTed as is (repeatable) [env DRIFTLINE_NOTIFY_WEBHOOKS]")
    g.add_argument(FLAGS["slack_webhooks"], dest="notify_slack_webhooks", action="append", default=None, metavar="URL",
                   help="Slack-compatible incoming webhook (repeatable) [env DRIFTLINE_NOTIFY_SLACK_WEBHOOKS]")
    g.add_argument(FLAGS["cooldown_seconds"], dest="notify_cooldown_seconds", type=float, default=None, metavar="SECONDS",
                   help="at most one firing message per alert key per this span (the worker's own cooldown is --cooldown-seconds) [default: 300]")
    g.add_argument(FLAGS["group_wait_seconds"], dest="notify_group_wait_seconds", type=float, default=None, metavar="SECONDS",
                   help="wall-clock wait after an incident's first firing (or first joining feature) before posting, so "
                        "the features of one break are one message [default: 5]")
    g.add_argument(FLAGS["lookback_seconds"], dest="notify_lookback_seconds", type=float, default=None, metavar="SECONDS",
                   help="history re-read on assignment to rebuild open incidents, without posting [default: 604800, a week]")
    g.add_argument(FLAGS["max_retries"], dest="notify_max_retries", type=int, default=None, metavar="N",
                   help="retries of one message after its first attempt, then it is given up and counted [default: 5]")
    g.add_argument(FLAGS["timeout_seconds"], dest="notify_timeout_seconds", type=float, default=None, metavar="SECONDS",
                   help="timeout of one HTTP request [default: 10]")
    g.add_argument(FLAGS["backoff_seconds"], dest="notify_backoff_seconds", type=float, default=None, metavar="SECONDS",
                   help="longest wait before the first retry, doubled per retry, jittered [default: 1]")
    g.add_argument(FLAGS["max_backoff_seconds"], dest="notify_max_backoff_seconds", type=float, default=None,
                   metavar="SECONDS", help="cap of one wait, also of a server's Retry-After [default: 30]")
    g.add_argument(FLAGS["group"], dest="notify_group", default=None, metavar="GROUP_ID",
                   help="consumer group shared by notify instances (not the workers' --group-id) [default: driftline-notify]")
    g.add_argument(FLAGS["model"], dest="notify_model", default=None, metavar="MODEL", help="only alerts of this model")
    g.add_argument(FLAGS["feature"], dest="notify_feature", default=None, metavar="FEATURE", help="only alerts of this feature (or output)")
    g.add_argument(FLAGS["kind"], dest="notify_kind", default=None, metavar="KIND", help="only this kind (data_drift, concept_drift, ...)")
    g.add_argument(FLAGS["status"], dest="notify_status", choices=("firing", "resolved"), default=None,
                   help="only firing or only resolved alerts")


def notify_settings_from(args: argparse.Namespace):
    return load_notify_settings(overrides_from="flags",
                                **{k[len("notify_"):]: v for k, v in vars(args).items() if k.startswith("notify_")})


def notify(settings: Settings, args: argparse.Namespace) -> int:
    """Run until SIGTERM / SIGINT."""
    from driftline.observability.logging import configure_logging
    from driftline.transport.notifier import Notifier

    notify_settings = notify_settings_from(args)
    configure_logging(settings.log_level, settings.log_format)
    Notifier(settings, notify_settings).run()
    return 0
