"""``driftline notify``: post the alerts topic's records to Slack and generic JSON webhooks."""

from __future__ import annotations

import argparse

from driftline.config import Settings
from driftline.notify.settings import FLAGS, load_notify_settings

__all__ = ["add_notify_flags", "notify", "notify_settings_from"]


#: Other spellings of notify's flags: the former name of --http-timeout.
ALIASES = {"timeout_seconds": ("--timeout",)}

#: metavar and help of each flag (the description, default and environment variable come from NotifySettings)
_FLAG_HELP = {
    "webhooks": ("URL", "repeatable"),
    "slack_webhooks": ("URL", "repeatable"),
    "cooldown_seconds": ("SECONDS", "the workers' alert cooldown is their setting cooldown_seconds"),
    "group_wait_seconds": ("SECONDS", None),
    "lookback_seconds": ("SECONDS", None),
    "max_retries": ("N", None),
    "timeout_seconds": ("SECONDS", "--timeout: the same, its former name"),
    "backoff_seconds": ("SECONDS", None),
    "max_backoff_seconds": ("SECONDS", None),
    "group": ("GROUP", "not the workers' group_id"),
    "model": ("MODEL", None),
    "feature": ("FEATURE", None),
    "kind": ("KIND", None),
    "status": (None, None),
}


def add_notify_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`NotifySettings` (each also ``DRIFTLINE_NOTIFY_<SETTING>`` in the environment)."""
    from driftline.cli.options import choices_of, shown, with_note
    from driftline.notify.settings import NOTIFY_ENV_PREFIX, NotifySettings

    g = parser.add_argument_group("notify (each also DRIFTLINE_NOTIFY_<SETTING> in the environment; no TOML key)")
    for name, flag in FLAGS.items():
        field = NotifySettings.model_fields[name]
        metavar, extra = _FLAG_HELP[name]
        default = field.get_default(call_default_factory=True)
        text = with_note(field.description or "", extra)
        text += f" [default: {shown(default)}; env {NOTIFY_ENV_PREFIX}{name.upper()}]"
        kind = {int: int, float: float}.get(field.annotation)  # type: ignore[call-overload]
        many = name in ("webhooks", "slack_webhooks")
        g.add_argument(flag, *ALIASES.get(name, ()), dest=f"notify_{name}", default=None, metavar=metavar,
                       help=text.replace("%", "%%"), action="append" if many else "store", type=kind,
                       choices=choices_of(field.annotation))


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
