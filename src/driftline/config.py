"""Worker configuration: one frozen settings model.

Sources, highest priority first: command-line flags, environment variables
(prefix ``DRIFTLINE_``), a TOML file (``--config`` or ``DRIFTLINE_CONFIG``),
then the defaults below.  Every setting is documented where it is defined;
``docs/configuration.md`` lists them.

librdkafka properties pass through unchanged: ``[kafka]`` in TOML
(``"security.protocol" = "SASL_SSL"``), ``-X key=value`` on the command
line, or ``DRIFTLINE_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` in the environment
(underscores become dots).  Passwords go in the secret fields, which never
appear in logs or reprs; properties that hold credentials (``sasl.password``,
``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``ssl.key.pem``, ...,
see :func:`driftline.redact.is_secret_property`) are treated as secret too.

A bad setting is a :class:`ConfigError` with one line per problem, naming the
setting, where its value came from and the ways it can really be set
(:func:`setting_ways`); secret values and whole inputs are never printed, other
values are bounded and escaped (:mod:`driftline.config_errors`).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError

from driftline.config_errors import (INT32_MAX, SettingsConflict, describe_validation_error, read_toml, setting_ways,
                                     settings_error_line, source_origins)
from driftline.errors import ConfigError
from driftline.redact import REDACTED, is_secret_property, register_secrets, shown

__all__ = ["Settings", "load_settings", "ENV_PREFIX", "NO_FLAG", "MANAGED_KAFKA_PROPERTIES", "setting_ways"]

ENV_PREFIX = "DRIFTLINE_"
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("driftline_toml_data", default=None)

#: Settings without a command-line flag (mappings): ``kafka`` has ``-X``, ``models`` only TOML and the environment.
NO_FLAG = ("kafka", "models")

#: librdkafka properties driftline sets itself, with the setting to use instead (None: not settable).
MANAGED_KAFKA_PROPERTIES: dict[str, str | None] = {
    "bootstrap.servers": "bootstrap_servers", "group.id": "group_id", "enable.auto.commit": None,
    "auto.offset.reset": "auto_offset_reset", "session.timeout.ms": "session_timeout_ms",
    "heartbeat.interval.ms": "heartbeat_interval_ms", "transactional.id": "transactional_id",
    "transaction.timeout.ms": "transaction_timeout_ms",
}

#: librdkafka's default max.poll.interval.ms; session.timeout.ms may not exceed it.
_MAX_POLL_INTERVAL_MS = 300_000


class ModelRulesConfig(BaseModel):
    """Per-model output semantics and rules: ``[models.<name>]`` in TOML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["auto", "classification", "regression"] = Field("auto", description="auto: string labels, or a score in [0, 1] against 0/1 labels, mean classification; other numbers regression.")
    prediction: str = Field("prediction", description="Output holding the predicted value or class ('prediction', or 'prediction.<name>' for named outputs).")
    score: str | None = Field(None, description="Output holding the probability of the positive class, if not the prediction itself.")
    positive_class: str | None = Field(None, description="Positive class for precision / recall / F1 and scores (default '1' for scores against 0/1 labels).")
    decision_threshold: float = Field(0.5, ge=0, le=1, description="A score at or above it predicts the positive class.")
    valid_range: tuple[float, float] | None = Field(None, description="[low, high] the numeric prediction must lie in.")
    allowed_classes: tuple[str, ...] | None = Field(None, description="Classes the prediction may take.")
    probability_outputs: tuple[str, ...] = Field((), description="Outputs that must lie in [0, 1].")
    confidence_threshold: float = Field(0.9, gt=0.5, le=1, description="Confidence (max(p, 1 - p)) from which a wrong prediction counts as a confident error.")
    max_confident_error_rate: float = Field(0.05, ge=0, le=1, description="Confident errors above this rate (significantly) raise output_quality.")
    max_violation_rate: float = Field(0.0, ge=0, le=1, description="Output-rule violations above this share of a window's inferences raise output_quality.")
    max_disagreement: float = Field(0.05, ge=0, le=1, description="Champion / challenger disagreement above this rate (significantly) raises version_divergence.")
    max_mean_difference_sd: float = Field(0.2, gt=0, description="Champion / challenger mean prediction difference (in champion sd) above this raises version_divergence.")


    @model_validator(mode="after")
    def _range(self) -> "ModelRulesConfig":
        if self.valid_range is not None and self.valid_range[0] > self.valid_range[1]:
            raise ValueError(f"valid_range low bound {self.valid_range[0]} is above its high bound {self.valid_range[1]}")
        return self


class Settings(BaseSettings):
    """Everything a ``driftline run`` worker can be told."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid",
                                      allow_inf_nan=False)

    #: Where each value came from (see :meth:`origin`), filled by :func:`load_settings`.
    _origins: dict[Any, str] = PrivateAttr(default_factory=dict)

    # --- Kafka -------------------------------------------------------------
    bootstrap_servers: str = Field("localhost:9092", min_length=1, description="Kafka bootstrap servers, host:port[,host:port].")
    input_topics: Annotated[list[str], NoDecode] = Field(["ml.inferences"], min_length=1, description="Topics carrying inference events (comma-separated in the environment).")
    group_id: str = Field("driftline", min_length=1, description="Consumer group of the workers.")
    auto_offset_reset: Literal["earliest", "latest", "error"] = Field("earliest", description="Where a new group starts reading.")
    alerts_topic: str = Field("driftline.alerts", min_length=1, description="Where alert events are published.")
    metrics_topic: str = Field("driftline.metrics", min_length=1, description="Where window summaries are published.")
    deadletter_topic: str = Field("driftline.deadletter", min_length=1, description="Where undecodable records go, with reason headers.")
    labels_topic: str = Field("ml.labels", description="Topic of ground-truth labels, keyed by model and partitioned like the input topics; '' turns labels off.")
    references_topic: str = Field("driftline.references", min_length=1, description="Compacted topic of reference profiles, keyed model/model_version; read at start and followed for hot reload.")
    state_topic: str = Field("driftline.state", description="Compacted topic of worker state checkpoints, keyed group/topic/partition; '' turns checkpoints off.")
    checkpoint_interval_records: int = Field(100_000, ge=0, description="Checkpoint the state of every assigned partition after this many records (0 = by time only); also on revoke and shutdown.")
    checkpoint_interval_seconds: float = Field(60.0, ge=0, description="Checkpoint at least this often (wall clock; 0 = by records only).")
    checkpoint_max_share: float = Field(0.05, ge=0, lt=1, description="Checkpoints due by records wait while checkpointing would take more than this share of the worker's time (only once a checkpoint takes 50 ms or more: large states); 0 = by records regardless. checkpoint_interval_seconds still applies.")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field("exactly_once", description="exactly_once: outputs, checkpoints and offsets commit in one Kafka transaction; at_least_once: outputs are flushed, then offsets committed (duplicates after a crash carry the same alert_id).")
    transactional_id: str = Field("", description="Transactional id of this worker (exactly_once); must be unique per worker and stable across its restarts. '' = driftline-<group_id>-<hostname>-<metrics_port> (the bound port), or -slot<N> with metrics_port 0 (a per-host lock, see docs/operations.md).")
    transaction_timeout_ms: int = Field(10_000, ge=1000, le=INT32_MAX, description="Kafka aborts a transaction of a worker that died after this long, releasing its partitions' outputs to read_committed readers.")
    state_secret: SecretStr | None = Field(None, description="Key that signs checkpoints (HMAC-SHA256); workers reject unsigned or differently signed ones. Unset: checkpoints carry a plain SHA-256 (integrity only: anyone who can write state_topic can change a worker's state). Empty is refused.")
    create_topics: bool = Field(True, description="Create missing output topics (and the compacted references topic) at start-up.")
    topic_partitions: int = Field(3, ge=1, le=100_000, description="Partitions of output topics created by the worker.")
    topic_replication_factor: int = Field(-1, ge=-1, le=10_000, description="Replication factor of created topics (1 to 10000); -1 = the broker's default.")
    kafka: dict[str, str] = Field(default_factory=dict, description="librdkafka properties passed through (security.protocol, sasl.*, ssl.*, ...).")
    sasl_password: SecretStr | None = Field(None, description="sasl.password, kept secret.")
    ssl_key_password: SecretStr | None = Field(None, description="ssl.key.password, kept secret.")
    batch_size: int = Field(5000, ge=1, le=100_000, description="Most records consumed per batch (a backlog fills them; a slower stream gets batches of what came within batch_wait_seconds).")
    poll_timeout_seconds: float = Field(0.5, gt=0, le=60, description="How long one consume call waits for records.")
    batch_wait_seconds: float = Field(0.1, ge=0, le=60, description="Once a batch's first record is in, how much longer the worker waits for the batch to fill before processing what it has (lower: alerts sooner at low rates; higher: fewer, larger transactions).")
    broker_timeout_seconds: float = Field(15.0, gt=0, le=3600, description="How long start-up waits for the broker before reporting it unreachable.")
    session_timeout_ms: int = Field(45_000, ge=1000, le=3_600_000, description="Consumer group session timeout; at most max.poll.interval.ms (librdkafka's default 300000).")
    heartbeat_interval_ms: int = Field(3_000, ge=100, le=3_600_000, description="Consumer group heartbeat interval; must be below session_timeout_ms / 3.")

    # --- Input contract ------------------------------------------------------
    max_record_bytes: int = Field(1_000_000, ge=64, description="Larger record values are dead-lettered (reason too_large).")
    max_name_chars: int = Field(256, ge=32, le=1024, description="Longest feature or output name kept as it is; a longer one (or one not valid UTF-8) is a data-quality finding (invalid_name) and is monitored under its first characters, '~' and 12 hex digits of its SHA-256.")
    max_category_chars: int = Field(256, ge=32, le=1024, description="Longest category value, string label or event id kept as it is; longer ones (or ones not valid UTF-8) are kept as their first characters, '~' and 12 hex digits of their SHA-256 (category values: a data-quality finding, invalid_category).")
    max_event_time_skew_seconds: float = Field(3600.0, ge=0, description="A record whose event time is further ahead of its Kafka timestamp (or of the worker's clock) than this is a data-quality finding (event_time_skew) and gets its Kafka timestamp as event time; 0 = no check.")

    # --- Detection ---------------------------------------------------------
    warmup: int = Field(2000, ge=50, description="Values per feature that form its warm-up reference (no drift alerts before).")
    window_events: int = Field(5000, ge=0, description="Records per tumbling window (summaries and windowed tests); 0 = by event time only.")
    window_seconds: float = Field(60.0, ge=0, description="A window also closes after this much event time; 0 = count only.")
    false_alarm_rate: float = Field(2e-7, gt=0, lt=1e-2, description="Design false alarms per event per model version, split over its features and their checks.")
    design_shift: float = Field(0.5, gt=0, le=5, description="Smallest mean shift (reference sd) the detectors are tuned to find quickly.")
    detector_block: int = Field(32, ge=2, le=1024, description="Values per detector block (Python calls per value = 2 / block).")
    cooldown_seconds: float = Field(300.0, ge=0, description="Span of event time an alert_id is derived over (the same drift found twice in it has one id), and how long a key another worker fired is held here.")
    resolve_after_seconds: float = Field(600.0, ge=0, description="An open incident resolves once its feature has matched its reference for this much event time (drift), or after this much event time without a finding (checks).")
    incident_group_seconds: float = Field(300.0, ge=0, description="Feature incidents of one model version that open within this much event time of each other share an incident_id.")
    reminder_seconds: float = Field(0.0, ge=0, description="Re-announce an open incident (a firing record with reminder: true) every this much event time; 0 = never.")
    max_models: int = Field(100, ge=1, description="Model versions one worker monitors; more are counted as overflow.")
    max_features_per_model: int = Field(500, ge=1, description="Features (and outputs) per model version; more are counted as overflow.")
    max_categories: int = Field(100, ge=2, description="Tracked categories per categorical feature; more go to '__other__'.")
    join_window_seconds: float = Field(86_400.0, gt=0, description="Event time an inference waits for its label (and a label for its inference).")
    join_max_pending: int = Field(50_000, ge=100, description="Inferences (and early labels) kept waiting per model and partition (about 320 bytes each); the oldest are evicted beyond it.")
    label_warmup: int = Field(500, ge=50, description="Labeled records that set the reference error before concept-drift detection starts.")
    models: dict[str, ModelRulesConfig] = Field(default_factory=dict, description="Per-model output rules ([models.<name>] in TOML; env DRIFTLINE_MODELS__<NAME>__<RULE>).")
    reference_files: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Reference profile files loaded at start (comma-separated in the environment); profiles on references_topic replace them.")
    numeric_window_test: Literal["psi", "ks", "wasserstein_sd", "off"] = Field("psi", description="Windowed statistic that alerts for numeric features (when also significant by KS).")
    categorical_window_test: Literal["chi_square", "psi", "jensen_shannon", "off"] = Field("chi_square", description="Windowed statistic that alerts for categorical features (when also significant by chi-square).")
    psi_threshold: float = Field(0.2, gt=0, description="PSI above which a window alerts (0.1 moderate, 0.2 significant shift).")
    ks_threshold: float = Field(0.1, gt=0, le=1, description="KS statistic above which a window alerts.")
    wasserstein_threshold: float = Field(0.1, gt=0, description="Wasserstein-1 distance (in reference sd) above which a window alerts.")
    jensen_shannon_threshold: float = Field(0.01, gt=0, le=1, description="Jensen-Shannon divergence (bits) above which a window alerts; 0.01 bits is a JS distance of 0.083 (natural log).")

    # --- Observability -----------------------------------------------------
    metrics_host: str = Field("0.0.0.0", description="Address of the /metrics, /healthz and /readyz endpoint.")
    metrics_port: int = Field(9188, ge=0, le=65535, description="Port of that endpoint; 0 disables it.")
    metrics_series: Literal["feature", "model"] = Field("feature", description="Prometheus series per feature ('feature': drift statistics, missing ratio, data-quality findings and alerts of each feature: about 440,000 series, 60 MB per scrape at the caps) or per model version only ('model': the largest / smallest statistic over the features, counts per model; no feature label, a few thousand series).")
    progress_timeout_seconds: float = Field(300.0, ge=0, description="/healthz answers 503 when no input offset was committed for this long while the consumer lag did not shrink (a stuck worker); 0 turns this check off.")
    progress_interval_seconds: float = Field(60.0, ge=0, le=86_400, description="Seconds between the worker's one-line progress log (records, events/s, lag, dead letters by reason, open incidents); also the interval within which only the first dead letter of each reason is logged at WARNING (the others are counted in the next progress line); 0 turns the progress line off (dead letters are then limited per 60 s).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["text", "json"] = Field("text", description="'json' for one JSON object per log line.")

    @field_validator("input_topics", "reference_files", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("kafka", mode="before")
    @classmethod
    def _text_values(cls, value: Any) -> Any:
        # Keys are already librdkafka names (see _DottedKafkaKeys); TOML may give numbers.
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("state_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty key would silently mean "not signed" (see docs/state.md, threat model).
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty; an empty key does not sign anything: set a real key "
                             "(e.g. from a secret store) or leave state_secret unset")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("*", mode="after")
    @classmethod
    def _int32(cls, value: Any) -> Any:
        # Integer settings end up in librdkafka, Kafka's protocol or numpy: 32 bits, whatever the field allows.
        if type(value) is int and not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise ValueError(f"must be a 32-bit integer (at most {INT32_MAX})")
        return value

    @field_validator("topic_replication_factor", mode="after")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (the broker's default) or at least 1")
        return value

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        # Each problem names the settings involved (SettingsConflict.fields): load_settings prints where
        # their values came from and how to set them; the raw input is never printed.
        topics = ("alerts_topic", "metrics_topic", "deadletter_topic", "references_topic")
        outputs = {self.alerts_topic, self.metrics_topic, self.deadletter_topic, self.references_topic}
        if len(outputs) != 4:
            raise SettingsConflict(topics, "must be four different topics")
        if self.state_topic:
            if self.state_topic in outputs | {self.labels_topic}:
                raise SettingsConflict(("state_topic",), f"{shown(self.state_topic)} must differ from the other topics")
            outputs.add(self.state_topic)
        if self.labels_topic:
            n = len(outputs)
            outputs.add(self.labels_topic)
            if len(outputs) != n + 1:
                raise SettingsConflict(("labels_topic",), f"{shown(self.labels_topic)} must differ from the output topics")
        clash = outputs & set(self.input_topics)
        if clash:
            raise SettingsConflict(("input_topics",), f"must not include an output or labels topic: {shown(sorted(clash))}")
        if self.window_events == 0 and not self.window_seconds:
            raise SettingsConflict(("window_events", "window_seconds"), "cannot both be 0: windows would never close")
        if 0 < self.window_events < 50:
            raise SettingsConflict(("window_events",), f"must be 0 (by event time only) or at least 50, not {self.window_events}")
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise SettingsConflict(("heartbeat_interval_ms", "session_timeout_ms"),
                                   f"heartbeat_interval_ms must be at most a third of session_timeout_ms "
                                   f"({self.heartbeat_interval_ms} > {self.session_timeout_ms} / 3)")
        for key in self.kafka:
            if key in MANAGED_KAFKA_PROPERTIES:
                instead = MANAGED_KAFKA_PROPERTIES[key]
                raise SettingsConflict(("kafka",), f"property {shown(key)} is managed by driftline"
                                       + (f"; use the setting {instead} ({setting_ways(instead)})" if instead else ""),
                                       kafka_property=key)
        max_poll = self.kafka.get("max.poll.interval.ms", str(_MAX_POLL_INTERVAL_MS))
        if max_poll.strip().isdigit() and self.session_timeout_ms > int(max_poll):
            via = "the kafka property max.poll.interval.ms" if "max.poll.interval.ms" in self.kafka else \
                f"librdkafka's max.poll.interval.ms ({_MAX_POLL_INTERVAL_MS}; raise it with -X max.poll.interval.ms=...)"
            raise SettingsConflict(("session_timeout_ms",), f"{self.session_timeout_ms} exceeds {via}: librdkafka "
                                   "refuses a session timeout above the poll interval",
                                   kafka_property="max.poll.interval.ms" if "max.poll.interval.ms" in self.kafka else None)
        return self

    def __repr_args__(self):
        # SecretStr fields print as '**********'; credentials among the kafka properties likewise.
        for name, value in super().__repr_args__():
            if name == "kafka" and isinstance(value, dict):
                value = {k: (REDACTED if is_secret_property(k) else v) for k, v in value.items()}
            yield name, value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            _DottedKafkaKeys(settings_cls, init_settings), _DottedKafkaKeys(settings_cls, env_settings)]
        toml = _toml_data.get()
        if toml is not None:  # read (and its syntax checked) by load_settings
            sources.append(_DottedKafkaKeys(settings_cls, InitSettingsSource(settings_cls, toml)))
        return tuple(sources)

    def origin(self, name: str, kafka_property: str | None = None) -> str:
        """Where a setting's value (or one kafka property's) came from: ``flag --warmup``,
        ``env DRIFTLINE_WARMUP``, ``TOML key warmup in FILE``, ``-X sasl.mechanism``, ... or ``default``."""
        if kafka_property is not None:
            return self._origins.get(("kafka", kafka_property), "default")
        return self._origins.get(name, "default")

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (secret settings, credential kafka properties), for scrubbing."""
        out = [v.get_secret_value() for v in (self.sasl_password, self.ssl_key_password, self.state_secret) if v is not None]
        return out + [v for k, v in self.kafka.items() if is_secret_property(k)]

    def kafka_properties(self) -> dict[str, str]:
        """librdkafka properties shared by consumer, producer and admin client."""
        props = {"bootstrap.servers": self.bootstrap_servers, **self.kafka}
        if self.sasl_password is not None:
            props["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_key_password is not None:
            props["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return props


def _dotted(key: str) -> str:
    """librdkafka property name: ``SECURITY_PROTOCOL`` → ``security.protocol``."""
    return key if "." in key else key.replace("_", ".").lower()


class _DottedKafkaKeys(PydanticBaseSettingsSource):
    """Normalises ``kafka`` keys inside each source, before the sources are
    merged, so they merge on one spelling and the usual priority
    (flags > env > TOML) holds."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        data = self._inner()
        kafka = data.get("kafka")
        if isinstance(kafka, dict):
            data = {**data, "kafka": {_dotted(str(k)): v for k, v in kafka.items()}}
        return data


def load_settings(*, config_file: str | Path | None = None, overrides_from: Literal["flags", "arguments"] = "arguments",
                  **overrides: Any) -> Settings:
    """Build the settings, or raise :class:`ConfigError` with one line per bad setting.

    ``overrides`` are the highest-priority values (``None`` is ignored); ``overrides_from="flags"`` says they
    came from the command line (``driftline``'s flags and ``-X``), so errors name them that way."""
    path = config_file or os.environ.get(f"{ENV_PREFIX}CONFIG")
    toml_path = Path(path) if path else None
    via = "--config" if config_file else f"env {ENV_PREFIX}CONFIG"
    toml = read_toml(toml_path, via) if toml_path is not None else None
    given = {k: v for k, v in overrides.items() if v is not None}
    origins = source_origins(given, overrides_from, os.environ, toml, toml_path)
    token = _toml_data.set(toml)
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, origins, toml_path)) from None
    except SettingsError as exc:  # a value of the environment that is not valid JSON
        raise ConfigError(settings_error_line(exc, origins)) from None
    finally:
        _toml_data.reset(token)
    settings._origins = origins
    register_secrets(settings.secret_values())
    return settings
