"""All of churnwatch's settings in one frozen object.

Values come from keyword arguments, then ``CHURNWATCH_*`` environment variables, then a TOML config file named
by ``CHURNWATCH_CONFIG_FILE``, then the defaults. Secrets are :class:`pydantic.SecretStr` (never printed) and
may be read from files (``CHURNWATCH_SASL_PASSWORD_FILE=/run/secrets/...``).

Size: ~400 lines, at the ~400 aim: one field per setting with its bound and description. Issue 13 nests the
settings by concern (Kafka, windows, detection, delivery), which splits this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from detectors.answers import AnswerPolicy
from detectors.vocabulary import EventType
from detectors.windows import WindowConfig
from streams.config_file import read_config_file
from streams.errors import ConfigError
from streams.events import InvalidEventError, parse_ts
from streams.sinks import SinksConfig

SECRET_FILE_SUFFIX = "_FILE"
ENV_PREFIX = "CHURNWATCH_"


class Settings(BaseSettings):
    """churnwatch settings (env prefix ``CHURNWATCH_``; see docs/configuration.md)."""

    # hide_input_in_errors: a validation error must never print a secret value.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", hide_input_in_errors=True
    )

    # -- Kafka connection --------------------------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...). Unset: start the embedded local broker."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (or CHURNWATCH_SASL_PASSWORD_FILE)."
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle for TLS (SSL / SASL_SSL).")
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")

    # -- embedded local broker ---------------------------------------------------------------------------
    kafka_port: int = Field(9092, ge=1, le=65535, description="Port of the embedded local broker.")
    kafka_home: Path = Field(
        Path(".kafka"), description="Where the embedded broker keeps its jars, config, data and log."
    )

    # -- topics --------------------------------------------------------------------------------------------
    app_id: str = Field(
        "churnwatch", min_length=1, description="Consumer group id and prefix of table topics."
    )
    topic_usage: str = Field("churnwatch.usage", min_length=1, description="Usage events topic.")
    topic_support: str = Field("churnwatch.support", min_length=1, description="Support events topic.")
    topic_billing: str = Field("churnwatch.billing", min_length=1, description="Billing events topic.")
    topic_alerts: str = Field("churnwatch.alerts", min_length=1, description="Alerts topic (the outbox).")
    topic_deadletter: str = Field("churnwatch.deadletter", min_length=1, description="Dead-letter topic.")
    partitions: int = Field(8, ge=1, le=10_000, description="Partitions of every churnwatch topic.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    standby_replicas: int = Field(0, ge=0, description="Standby table replicas kept by other workers.")

    # -- validation and windows ----------------------------------------------------------------------------
    max_event_bytes: int = Field(65_536, ge=64, description="Larger records are dead-lettered (too_large).")
    max_future_skew_seconds: float = Field(
        86_400, gt=0, description="Events further than this ahead of the wall clock are dead-lettered."
    )
    min_event_ts: str = Field(
        "2000-01-01T00:00:00Z",
        description="Live events before this time (RFC 3339) are dead-lettered as invalid_ts (zeroed clocks, "
        "epoch seconds sent as milliseconds); `churnwatch replay` accepts any time that parses.",
    )
    allowed_lateness_seconds: float = Field(
        2 * 86_400, ge=0, description="Out-of-order allowance behind an account's newest event."
    )
    retention_days: int = Field(56, ge=7, le=3_650, description="Days of daily buckets kept per account.")
    top_events: int = Field(5, ge=1, le=50, description="Event names counted per day for each account.")
    event_dedup_max_keys: int = Field(
        250_000,
        ge=0,
        description="Event ids (or content hashes) remembered to drop duplicate events, for the lateness "
        "allowance at most, about 200 bytes each (0: no deduplication).",
    )

    # -- worker ------------------------------------------------------------------------------------------
    batch_max_events: int = Field(2_000, ge=1, description="Events folded per micro-batch at most.")
    batch_within_seconds: float = Field(0.25, gt=0, description="Longest wait to fill a micro-batch.")
    checkpoint_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="How often changed account states and the consumed offsets are written to the changelog "
        "(a crash re-reads at most this much, harmlessly).",
    )
    state_cache_accounts: int = Field(
        50_000, ge=0, description="Decoded account states kept in memory between batches, at most."
    )
    web_host: str = Field("127.0.0.1", description="Bind address of the worker's HTTP server (API, metrics).")
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the worker's HTTP server.")
    data_dir: Path = Field(Path(".churnwatch"), description="Worker data directory (faust's datadir).")
    session_timeout_seconds: float = Field(30, gt=0, description="Kafka consumer group session timeout.")
    heartbeat_interval_seconds: float = Field(3, gt=0, description="Kafka consumer heartbeat interval.")
    rebalance_timeout_seconds: float = Field(60, gt=0, description="Kafka consumer group rebalance timeout.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    shutdown_timeout_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="A stopping worker (SIGTERM/SIGINT or a fatal error) that has not exited after this long "
        "exits anyway with code 1; a second signal exits at once. Keep it below the grace period of the "
        "orchestrator.",
    )
    ready_read_within_seconds: float = Field(
        30.0,
        gt=0,
        description="Ready only if the broker answered a fetch of the event reader (or nothing was assigned) "
        "within this long.",
    )
    liveness_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="Live only if the event loop and the event reader's loop turned within this long.",
    )

    # -- detection -----------------------------------------------------------------------------------------
    evaluation_clock: Literal["wall", "event"] = Field(
        "wall",
        description="Clock of detector sweeps: 'wall' (live: a timer sweeps on wall-clock time) or 'event' "
        "(the event-time watermark: each UTC midnight it crosses sweeps, as replay does; for backfills).",
    )
    sweep_interval_seconds: float = Field(60.0, gt=0, description="Wall-clock sweep period ('wall' clock).")
    alert_threshold: float = Field(0.5, gt=0, lt=1, description="Risk at which an account's episode opens.")
    top_accounts_export: int = Field(
        0, ge=0, le=1_000, description="Export the N riskiest accounts as a labelled metric (0: off)."
    )

    # -- alert delivery ------------------------------------------------------------------------------------
    slack_webhook_url: SecretStr | None = Field(
        None,
        description="Slack incoming-webhook URL (or CHURNWATCH_SLACK_WEBHOOK_URL_FILE). Unset: no Slack.",
    )
    webhook_url: SecretStr | None = Field(
        None, description="CRM/workflow webhook URL, signed per Standard Webhooks (or ..._FILE)."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="The webhook's 'whsec_...' signing secret (or CHURNWATCH_WEBHOOK_SECRET_FILE)."
    )
    alerts_jsonl_path: Path | None = Field(None, description="Append delivered alerts to this JSONL file.")
    slack_digest_threshold: int = Field(
        3, ge=1, description="More alerts than this at once: one Slack digest."
    )
    delivery_max_attempts: int = Field(8, ge=1, description="Delivery attempts per alert batch and sink.")
    delivery_base_delay_seconds: float = Field(
        1.0, ge=0, description="First retry delay (doubles each time)."
    )
    delivery_max_delay_seconds: float = Field(60.0, ge=0, description="Longest delay between retries.")
    delivery_budget_seconds: float = Field(
        900.0, gt=0, description="Give up (dead-letter) a batch after retrying this long."
    )
    dedup_retention_days: float = Field(
        14.0, gt=0, description="How long delivered idempotency keys are remembered."
    )
    holdout_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of accounts whose alerts are recorded but not delivered (holdout).",
    )
    holdout_experiment: str = Field(
        "default", min_length=1, description="Experiment name hashed with the account id to pick the holdout."
    )

    # -- ingest gateway (`churnwatch ingest`, docs/ingest.md) ----------------------------------------------
    ingest_listen: str = Field(
        "127.0.0.1:8080", description="host:port the ingest gateway (`churnwatch ingest`) listens on."
    )
    ingest_write_key: SecretStr | None = Field(
        None,
        description="Segment-compatible write key (or CHURNWATCH_INGEST_WRITE_KEY_FILE). "
        "Unset: /v1/* answer 404.",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None,
        description="Stripe endpoint signing secret 'whsec_...' (or ..._FILE). "
        "Unset: /webhooks/stripe answers 404.",
    )
    zendesk_webhook_secret: SecretStr | None = Field(
        None,
        description="Zendesk webhook signing secret (or ..._FILE). Unset: /webhooks/zendesk answers 404.",
    )
    intercom_client_secret: SecretStr | None = Field(
        None,
        description="Intercom app client secret (or ..._FILE). Unset: /webhooks/intercom answers 404.",
    )
    ingest_max_body_bytes: int = Field(
        524_288, ge=1_024, description="Larger request bodies (after decompression) are refused with 413."
    )
    ingest_ack_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for Kafka to acknowledge a request's events before a 503."
    )
    topic_identities: str = Field(
        "churnwatch.identities",
        min_length=1,
        description="Compacted topic of the gateway's user -> account mapping (from Segment group calls).",
    )
    stripe_account_map: Path | None = Field(
        None, description='JSON file mapping Stripe customer ids to account ids ({"cus_...": "acme"}).'
    )
    # -- answers to alerts (issue #18, docs/alerts.md) ------------------------------------------------------
    topic_feedback: str = Field(
        "churnwatch.feedback",
        min_length=1,
        description="Compacted topic of answers to alerts (real, false alarm, handled, snooze), by account.",
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        description="Slack app signing secret (or ..._FILE). Unset: /slack/interactions answers 404.",
    )
    feedback_token: SecretStr | None = Field(
        None,
        description="Bearer token for POST /churnwatch/feedback/ (or ..._FILE).",
    )
    feedback_webhook_secret: SecretStr | None = Field(
        None,
        description="Standard Webhooks 'whsec_...' secret for POST /churnwatch/feedback/ (or ..._FILE). "
        "Neither this nor the token set: the route answers 404.",
    )
    feedback_alert_memory_days: float = Field(
        30.0, gt=0, description="The gateway accepts answers to alerts detected within this many days."
    )
    feedback_alert_memory_max: int = Field(
        500_000, ge=1, description="Most alerts the gateway remembers for answers (oldest forgotten first)."
    )
    feedback_suppress_days: float = Field(
        30.0, ge=0, description="A false alarm mutes the alert's reasons for that account this many days."
    )
    feedback_damping: float = Field(
        0.8,
        ge=0,
        le=1,
        description="After the mute, a false alarm's reasons weigh (1 - this) for the account (decaying).",
    )
    feedback_damping_half_life_days: float = Field(
        365.0, gt=0, description="Half-life of what a false alarm taught an account (its damping)."
    )
    feedback_label_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of a 'real' or 'false alarm' answer as a label for the risk model (a "
        "cancellation weighs 1; 0: answers teach the model nothing).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        if config_file:
            values = read_config_file(Path(config_file), settings_cls.model_fields)
            sources.append(InitSettingsSource(settings_cls, init_kwargs=values))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: dict[str, object]) -> dict[str, object]:
        """``CHURNWATCH_<SECRET>_FILE`` points at a file holding the secret (Docker/Kubernetes secrets)."""
        for name in (
            "sasl_password",
            "slack_webhook_url",
            "webhook_url",
            "webhook_secret",
            "ingest_write_key",
            "stripe_webhook_secret",
            "zendesk_webhook_secret",
            "intercom_client_secret",
            "slack_signing_secret",
            "feedback_token",
            "feedback_webhook_secret",
        ):
            path = os.environ.get(f"{ENV_PREFIX}{name.upper()}{SECRET_FILE_SUFFIX}")
            if path and values.get(name) is None:
                try:
                    values[name] = Path(path).read_text().strip()
                except OSError as exc:
                    raise ValueError(f"cannot read {ENV_PREFIX}{name.upper()}_FILE: {exc.strerror}") from None
        return values

    @field_validator("min_event_ts")
    @classmethod
    def _check_min_event_ts(cls, value: str) -> str:
        try:
            parse_ts(value, min_ts_ms=None)
        except InvalidEventError:
            raise ValueError("must be RFC 3339 with a UTC offset, e.g. 2000-01-01T00:00:00Z") from None
        return value

    @field_validator("ingest_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @property
    def min_event_ts_ms(self) -> int:
        """``min_event_ts`` in epoch milliseconds (the live path's lower bound on event times)."""
        return parse_ts(self.min_event_ts, min_ts_ms=None)

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError("sasl_mechanism is required when security_protocol is SASL_*")
            if not self.sasl_username:
                raise ValueError("sasl_username is required for SASL")
            if self.sasl_password is None:
                raise ValueError("sasl_password is required for SASL")
        return self

    def sinks_config(self) -> SinksConfig:
        """The notification sinks these settings enable (raises ConfigError naming a bad setting)."""
        try:
            return SinksConfig(
                slack_webhook_url=self.slack_webhook_url,
                webhook_url=self.webhook_url,
                webhook_secret=self.webhook_secret,
                jsonl_path=self.alerts_jsonl_path,
                slack_digest_threshold=self.slack_digest_threshold,
                max_attempts=self.delivery_max_attempts,
                base_delay_s=self.delivery_base_delay_seconds,
                max_delay_s=self.delivery_max_delay_seconds,
                total_budget_s=self.delivery_budget_seconds,
            )
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            field = message.split(":")[0].split()[0]  # every SinksConfig message starts with its field
            raise ConfigError(f"{ENV_PREFIX}{field.upper()}", message) from None

    @property
    def embedded_kafka(self) -> bool:
        """True when no external Kafka is configured and churnwatch runs its own local broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    def answer_policy(self) -> AnswerPolicy:
        """How answers to alerts act on accounts and the risk model (live worker and replay alike)."""
        return AnswerPolicy(
            suppress_days=self.feedback_suppress_days,
            damping=self.feedback_damping,
            damping_half_life_days=self.feedback_damping_half_life_days,
            label_weight=self.feedback_label_weight,
        )

    def window_config(self) -> WindowConfig:
        """The windows' retention, lateness and top-events settings (live worker and replay alike)."""
        return WindowConfig(
            retention_days=self.retention_days,
            allowed_lateness_ms=int(self.allowed_lateness_seconds * 1000),
            top_events=self.top_events,
        )

    @property
    def event_topics(self) -> dict[EventType, str]:
        """Event type -> topic name."""
        return {
            EventType.USAGE: self.topic_usage,
            EventType.SUPPORT: self.topic_support,
            EventType.BILLING: self.topic_billing,
        }


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into a :class:`ConfigError` naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        location = ".".join(str(part) for part in first["loc"])
        if not location:
            # Checks across several settings carry no location: name the first setting the message names.
            named = sorted((message.find(name), name) for name in Settings.model_fields if name in message)
            location = named[0][1] if named else ""
        setting = f"{ENV_PREFIX}{location.upper()}" if location else "settings"
        raise ConfigError(setting, message) from None
