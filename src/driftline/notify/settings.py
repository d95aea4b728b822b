"""Settings of ``driftline notify``: where to post, how often, how hard to retry.

A frozen pydantic-settings model like :class:`driftline.config.Settings`, with
its own environment prefix ``DRIFTLINE_NOTIFY_`` so the worker's settings
stay the worker's (Kafka connection, topics and the rest still come from
``Settings``).  Sources, highest priority first: the flags of ``driftline
notify`` (:data:`FLAGS`), ``DRIFTLINE_NOTIFY_<FIELD>`` environment variables,
the defaults below.  Webhook URLs carry credentials (a Slack URL *is* the
token), so they are secrets: never logged, never in a repr, and best passed
in the environment rather than on a command line others can read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from driftline.errors import ConfigError
from driftline.notify.retry import RetryPolicy

__all__ = ["NotifySettings", "load_notify_settings", "NOTIFY_ENV_PREFIX", "FLAGS"]

NOTIFY_ENV_PREFIX = "DRIFTLINE_NOTIFY_"

#: The command-line flag of each setting (the issue fixes the short names).
FLAGS = {
    "webhooks": "--webhook",
    "slack_webhooks": "--slack-webhook",
    "cooldown_seconds": "--cooldown",
    "max_retries": "--max-retries",
    "timeout_seconds": "--timeout",
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

    model_config = SettingsConfigDict(env_prefix=NOTIFY_ENV_PREFIX, frozen=True, extra="forbid")

    webhooks: _Urls = Field(default_factory=list, description="Generic JSON webhooks: each alert record is POSTed as is (comma-separated in the environment).")
    slack_webhooks: _Urls = Field(default_factory=list, description="Slack-compatible incoming webhooks (comma-separated in the environment).")
    cooldown_seconds: float = Field(300.0, ge=0, description="At most one firing message per alert key per this many seconds (between the alerts' detected_at); 0 = every firing.")
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
        for url in urls:
            parts = urlsplit(url.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # Say what is wrong without echoing a credential-bearing URL.
                raise ValueError(f"a webhook must be an http:// or https:// URL with a host (got scheme "
                                 f"{parts.scheme!r}{'' if parts.hostname else ' and no host'})")
        return urls

    @model_validator(mode="after")
    def _check(self) -> "NotifySettings":
        if not self.webhooks and not self.slack_webhooks:
            raise ValueError(f"no endpoint: give --webhook or --slack-webhook (or {NOTIFY_ENV_PREFIX}WEBHOOKS / "
                             f"{NOTIFY_ENV_PREFIX}SLACK_WEBHOOKS)")
        if self.backoff_seconds > self.max_backoff_seconds:
            raise ValueError("backoff_seconds (--backoff) must not exceed max_backoff_seconds (--max-backoff)")
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


def _name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "settings"
    field = str(loc[0])
    if field not in FLAGS:
        return field
    return f"{field} (env {NOTIFY_ENV_PREFIX}{field.upper()}, flag {FLAGS[field]})"


def load_notify_settings(**overrides: Any) -> NotifySettings:
    """Build the settings (``None`` overrides are ignored), or raise :class:`ConfigError` naming each bad one."""
    try:
        return NotifySettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            shown = "<hidden>" if loc and loc[0] in ("webhooks", "slack_webhooks") else repr(err.get("input"))
            lines.append(f"invalid setting {_name(loc[:1])}: {err['msg']} (got {shown})")
        raise ConfigError("\n".join(lines)) from None
