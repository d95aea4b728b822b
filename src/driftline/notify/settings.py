"""Settings of ``driftline notify``: where to post, how often, how hard to retry.

A frozen pydantic-settings model like :class:`driftline.config.Settings`, with
its own environment prefix ``DRIFTLINE_NOTIFY_`` so the worker's settings
stay the worker's (Kafka connection, topics and the rest still come from
``Settings``).  Sources, highest priority first: the flags of ``driftline
notify`` (:data:`FLAGS`), ``DRIFTLINE_NOTIFY_<FIELD>`` environment variables,
the defaults below.  Webhook URLs carry credentials (a Slack URL *is* the
token), so they are secrets: never logged, never in a repr, and best passed
in the environment rather than on a command line others can read.  Errors
name a bad URL by its position and :func:`driftline.redact.url_origin`
(``https://hooks.slack.com/…``), never by the URL; other values are shown
bounded and escaped, and the input of a cross-field check never.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from driftline.errors import ConfigError
from driftline.notify.retry import RetryPolicy
from driftline.redact import bounded, escape, register_secrets, shown, url_origin, url_secrets

__all__ = ["NotifySettings", "load_notify_settings", "NOTIFY_ENV_PREFIX", "FLAGS"]

NOTIFY_ENV_PREFIX = "DRIFTLINE_NOTIFY_"

#: The command-line flag of each setting (the issue fixes the short names).
FLAGS = {
    "webhooks": "--webhook",
    "slack_webhooks": "--slack-webhook",
    "cooldown_seconds": "--cooldown",
    "group_wait_seconds": "--group-wait",
    "lookback_seconds": "--lookback",
    "max_retries": "--max-retries",
    "timeout_seconds": "--http-timeout",  # formerly --timeout, still accepted
    "backoff_seconds": "--backoff",
    "max_backoff_seconds": "--max-backoff",
    "group": "--group",
    "model": "--model",
    "feature": "--feature",
    "kind": "--kind",
    "status": "--status",
}

_Urls = Annotated[list[SecretStr], NoDecode]


class NotifySettings(BaseSettings):
    """Everything ``driftline notify`` adds to the Kafka settings."""

    model_config = SettingsConfigDict(env_prefix=NOTIFY_ENV_PREFIX, frozen=True, extra="forbid", allow_inf_nan=False)

    webhooks: _Urls = Field(default_factory=list, description="Generic JSON webhooks: each alert record is POSTed as is (comma-separated in the environment).")
    slack_webhooks: _Urls = Field(default_factory=list, description="Slack-compatible incoming webhooks (comma-separated in the environment).")
    cooldown_seconds: float = Field(300.0, ge=0, description="At most one firing message per alert key per this many seconds (between the alerts' detected_at); for incidents, no reminder message within this span of the incident's last message; 0 = every firing.")
    group_wait_seconds: float = Field(5.0, ge=0, le=3600, description="Wall-clock seconds to wait after an incident's first firing record (and after the first feature joining it) before posting, so the features of one upstream break, which arrive as records of their own within seconds, are one message; 0 = post at once.")
    lookback_seconds: float = Field(604_800.0, ge=0, le=31_536_000, description="How far back, before the committed offset, a process re-reads the alerts topic when it is assigned a partition, to rebuild open incidents and cooldowns without posting (at least two cooldowns); incidents opened earlier are unknown to it.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries of one delivery after its first attempt (connection errors, timeouts, 408, 425, 429, 5xx); then it is given up and counted.")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Timeout of one HTTP request.")
    backoff_seconds: float = Field(1.0, gt=0, le=3600, description="Longest wait before the first retry; doubled for each further retry (waits are jittered to half to all of it).")
    max_backoff_seconds: float = Field(30.0, gt=0, le=3600, description="Cap of one wait, also of a server's Retry-After.")
    group: str = Field("driftline-notify", min_length=1, description="Consumer group: instances in one group share the alerts topic's partitions and resume at its committed offsets.")
    model: str | None = Field(None, description="Only alerts of this model.")
    feature: str | None = Field(None, description="Only alerts of this feature (or output).")
    kind: str | None = Field(None, description="Only alerts of this kind (data_drift, concept_drift, ...).")
    status: Literal["firing", "resolved"] | None = Field(None, description="Only firing or only resolved alerts.")

    @field_validator("webhooks", "slack_webhooks", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("webhooks", "slack_webhooks")
    @classmethod
    def _http_urls(cls, urls: list[SecretStr]) -> list[SecretStr]:
        # Say what is wrong without echoing a credential-bearing URL: its position and scheme://host only.
        for i, url in enumerate(urls, 1):
            problem = _url_problem(url.get_secret_value())
            if problem is not None:
                raise ValueError(f"URL number {i} ({url_origin(url.get_secret_value())}) {problem}")
        return urls

    @model_validator(mode="after")
    def _check(self) -> "NotifySettings":
        if not self.webhooks and not self.slack_webhooks:
            raise ValueError(f"no endpoint: give --webhook or --slack-webhook (or {NOTIFY_ENV_PREFIX}WEBHOOKS / "
                             f"{NOTIFY_ENV_PREFIX}SLACK_WEBHOOKS)")
        if self.backoff_seconds > self.max_backoff_seconds:
            raise ValueError(f"backoff_seconds ({self.backoff_seconds:g}; flag --backoff or env {NOTIFY_ENV_PREFIX}"
                             f"BACKOFF_SECONDS) must not exceed max_backoff_seconds ({self.max_backoff_seconds:g}; "
                             f"flag --max-backoff or env {NOTIFY_ENV_PREFIX}MAX_BACKOFF_SECONDS)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, first_backoff=self.backoff_seconds,
                           max_backoff=self.max_backoff_seconds)

    def filters(self) -> dict[str, str | None]:
        return {"model": self.model, "feature": self.feature, "kind": self.kind, "status": self.status}


_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f-\x9f]")


def _url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a webhook (None: nothing), in words that do not quote it."""
    if _UNSAFE_IN_URL.search(url):
        return "contains a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError:
        return "does not parse (bad IPv6 address or port)"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL" + ("" if parts.hostname else " with a host")
    if not parts.hostname:
        return "has no host"
    return None


_SECRET_FIELDS = ("webhooks", "slack_webhooks")


def _ways(field: str) -> str:
    flag = FLAGS.get(field)
    env = f"env {NOTIFY_ENV_PREFIX}{field.upper()}"
    return f"flag {flag} or {env}" if flag else env


def _origin(field: str, given: Mapping[str, Any], from_flags: bool) -> str | None:
    if field in given:
        return f"flag {FLAGS[field]}" if from_flags and field in FLAGS else f"argument {field}"
    env = f"{NOTIFY_ENV_PREFIX}{field.upper()}".lower()
    return next((f"env {escape(v)}" for v in os.environ if v.lower() == env), None)


def _line(err: Mapping[str, Any], given: Mapping[str, Any], from_flags: bool) -> str:
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    msg = escape(bounded(msg[len("Value error, "):] if msg.startswith("Value error, ") else msg, 300))
    if not loc:  # a cross-field check: its message names the settings; never the input (every URL)
        return f"invalid notify settings: {msg}"
    field = str(loc[0])
    if field not in NotifySettings.model_fields:
        return f"unknown notify setting {escape(bounded(field, 80))}"
    origin = _origin(field, given, from_flags)
    got = "value hidden" if field in _SECRET_FIELDS else f"got {shown(err.get('input'))}"
    got += (", from " if field in _SECRET_FIELDS else " from ") + origin if origin else ""
    return f"invalid setting {field}: {msg} ({got}; set it with {_ways(field)})"


def load_notify_settings(*, overrides_from: Literal["flags", "arguments"] = "arguments", **overrides: Any) -> NotifySettings:
    """Build the settings (``None`` overrides are ignored), or raise :class:`ConfigError` with one line
    per bad one (``overrides_from="flags"``: the overrides are ``driftline notify``'s flags)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = NotifySettings(**given)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            line = _line(err, given, overrides_from == "flags")
            if line not in lines:
                lines.append(line)
        raise ConfigError("\n".join(lines)) from None
    register_secrets(part for url in settings.webhooks + settings.slack_webhooks for part in url_secrets(url.get_secret_value()))
    return settings
