"""Worker configuration: one frozen settings model.

Sources, highest priority first: command-line flags, environment variables
(prefix ``DRIFTLINE_``), a TOML file (``--config`` or ``DRIFTLINE_CONFIG``),
then the defaults below.  Every setting is documented where it is defined;
``docs/configuration.md`` lists them.

librdkafka properties pass through unchanged: ``[kafka]`` in TOML
(``"security.protocol" = "SASL_SSL"``), ``-X key=value`` on the command
line, or ``DRIFTLINE_KAFKA__SECURITY_PROTOCOL=SASL_SSL`` in the environment
(underscores become dots).  Passwords go in the secret fields, which never
appear in logs or reprs.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from driftline.errors import ConfigError

__all__ = ["Settings", "load_settings", "ENV_PREFIX"]

ENV_PREFIX = "DRIFTLINE_"
_toml_file: ContextVar[Path | None] = ContextVar("driftline_toml_file", default=None)


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

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid")

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
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field("exactly_once", description="exactly_once: outputs, checkpoints and offsets commit in one Kafka transaction; at_least_once: outputs are flushed, then offsets committed (duplicates after a crash carry the same alert_id).")
    transactional_id: str = Field("", description="Transactional id of this worker (exactly_once); must be unique per worker and stable across its restarts. '' = driftline-<group_id>-<hostname>-<metrics_port> (the bound port), or -slot<N> with metrics_port 0 (a per-host lock, see docs/operations.md).")
    transaction_timeout_ms: int = Field(10_000, ge=1000, description="Kafka aborts a transaction of a worker that died after this long, releasing its partitions' outputs to read_committed readers.")
    state_secret: SecretStr | None = Field(None, description="Key that signs checkpoints (HMAC-SHA256); workers reject unsigned or differently signed ones.")
    create_topics: bool = Field(True, description="Create missing output topics (and the compacted references topic) at start-up.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of output topics created by the worker.")
    topic_replication_factor: int = Field(-1, description="Replication factor of created topics; -1 = the broker's default.")
    kafka: dict[str, str] = Field(default_factory=dict, description="librdkafka properties passed through (security.protocol, sasl.*, ssl.*, ...).")
    sasl_password: SecretStr | None = Field(None, description="sasl.password, kept secret.")
    ssl_key_password: SecretStr | None = Field(None, description="ssl.key.password, kept secret.")
    batch_size: int = Field(5000, ge=1, le=100_000, description="Records consumed per batch.")
    poll_timeout_seconds: float = Field(0.5, gt=0, le=60, description="How long one consume call waits for records.")
    broker_timeout_seconds: float = Field(15.0, gt=0, description="How long start-up waits for the broker before reporting it unreachable.")
    session_timeout_ms: int = Field(45_000, ge=1000, description="Consumer group session timeout.")
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="Consumer group heartbeat interval; must be below session_timeout_ms / 3.")

    # --- Input contract ------------------------------------------------------
    max_record_bytes: int = Field(1_000_000, ge=64, description="Larger record values are dead-lettered (reason too_large).")

    # --- Detection ---------------------------------------------------------
    warmup: int = Field(2000, ge=50, description="Values per feature that form its warm-up reference (no drift alerts before).")
    window_events: int = Field(5000, ge=0, description="Records per tumbling window (summaries and windowed tests); 0 = by event time only.")
    window_seconds: float = Field(60.0, ge=0, description="A window also closes after this much event time; 0 = count only.")
    false_alarm_rate: float = Field(2e-7, gt=0, lt=1e-2, description="Design false alarms per event per model version, split over its features and their checks.")
    design_shift: float = Field(0.5, gt=0, le=5, description="Smallest mean shift (reference sd) the detectors are tuned to find quickly.")
    detector_block: int = Field(32, ge=2, le=1024, description="Values per detector block (Python calls per value = 2 / block).")
    cooldown_seconds: float = Field(300.0, ge=0, description="An alert key fires at most once per this span of event time.")
    resolve_after_seconds: float = Field(600.0, ge=0, description="A firing key resolves after this much quiet event time.")
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
    progress_timeout_seconds: float = Field(300.0, ge=0, description="/healthz answers 503 when no input offset was committed for this long while the consumer lag did not shrink (a stuck worker); 0 turns this check off.")
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        outputs = {self.alerts_topic, self.metrics_topic, self.deadletter_topic, self.references_topic}
        if len(outputs) != 4:
            raise ValueError("alerts_topic, metrics_topic, deadletter_topic and references_topic must differ")
        if self.state_topic:
            if self.state_topic in outputs | {self.labels_topic}:
                raise ValueError("state_topic must differ from the other topics")
            outputs.add(self.state_topic)
        if self.labels_topic:
            n = len(outputs)
            outputs.add(self.labels_topic)
            if len(outputs) != n + 1:
                raise ValueError("labels_topic must differ from the output topics")
        clash = outputs & set(self.input_topics)
        if clash:
            raise ValueError(f"input_topics must not include an output topic: {sorted(clash)}")
        if self.window_events == 0 and not self.window_seconds:
            raise ValueError("window_events and window_seconds cannot both be 0: windows would never close")
        if 0 < self.window_events < 50:
            raise ValueError("window_events must be 0 (by event time only) or at least 50")
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        for key in self.kafka:
            if key in ("bootstrap.servers", "group.id", "enable.auto.commit"):
                raise ValueError(f"kafka property {key!r} is managed by driftline; use its own setting")
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
        sources: list[PydanticBaseSettingsSource] = [
            _DottedKafkaKeys(settings_cls, init_settings), _DottedKafkaKeys(settings_cls, env_settings)]
        toml = _toml_file.get()
        if toml is not None:
            sources.append(_DottedKafkaKeys(settings_cls, TomlConfigSettingsSource(settings_cls, toml_file=toml)))
        return tuple(sources)

    def worker_transactional_id(self) -> str:
        """``transactional_id``, or ``driftline-<group_id>-<hostname>-<metrics_port>`` (two workers on one
        host need two metrics ports, so the id is unique per worker and stays the same when it restarts)."""
        if self.transactional_id:
            return self.transactional_id
        import socket

        return f"driftline-{self.group_id}-{socket.gethostname()}-{self.metrics_port}"

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


def _setting_name(loc: tuple[Any, ...]) -> str:
    field = str(loc[0]) if loc else "settings"
    rest = "".join(f"[{p}]" for p in loc[1:])
    env = ENV_PREFIX + field.upper()
    return f"{field}{rest} (env {env}, flag --{field.replace('_', '-')})"


def load_settings(*, config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise :class:`ConfigError` naming each bad setting."""
    path = config_file or os.environ.get(f"{ENV_PREFIX}CONFIG")
    toml: Path | None = None
    if path:
        toml = Path(path)
        if not toml.is_file():
            raise ConfigError(f"config file {str(toml)!r} (--config / {ENV_PREFIX}CONFIG) does not exist")
    token = _toml_file.set(toml)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = _setting_name(tuple(err.get("loc", ())))
            if not err.get("loc"):
                name = "settings"
            lines.append(f"invalid setting {name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None
    except ValueError as exc:  # e.g. malformed TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
    finally:
        _toml_file.reset(token)
