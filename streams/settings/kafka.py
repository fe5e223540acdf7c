"""Settings of the Kafka connection (with the embedded local broker) and of churnwatch's topics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from detectors.vocabulary import EventType

# Every group: immutable, no unknown keys, a field readable by its name or by its flat setting name (alias),
# and a bad value's error never echoes the input (it may be a secret).
GROUP_CONFIG = ConfigDict(
    frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True
)


class KafkaSettings(BaseModel):
    """Where Kafka is and how to talk to it; unset ``bootstrap_servers`` runs the embedded local broker."""

    model_config = GROUP_CONFIG

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port,...). Unset: start the embedded local broker.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (or CHURNWATCH_SASL_PASSWORD_FILE)."
    )
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for TLS (SSL / SASL_SSL).")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(default=None, description="Client private key for mutual TLS.")
    session_timeout_seconds: float = Field(
        default=30, gt=0, description="Kafka consumer group session timeout."
    )
    heartbeat_interval_seconds: float = Field(
        default=3, gt=0, description="Kafka consumer heartbeat interval."
    )
    rebalance_timeout_seconds: float = Field(
        default=60, gt=0, description="Kafka consumer group rebalance timeout."
    )
    # -- the embedded local broker (docs/configuration.md "Embedded local broker") --
    local_port: int = Field(
        default=9092,
        ge=1,
        le=65535,
        validation_alias="kafka_port",
        description="Port of the embedded local broker.",
    )
    local_home: Path = Field(
        default=Path(".kafka"),
        validation_alias="kafka_home",
        description="Where the embedded broker keeps its jars, config, data and log.",
    )

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError("sasl_mechanism is required when security_protocol is SASL_*")
            if not self.sasl_username:
                raise ValueError("sasl_username is required for SASL")
            if self.sasl_password is None:
                raise ValueError("sasl_password is required for SASL")
        return self

    @property
    def embedded(self) -> bool:
        """True when no external Kafka is configured and churnwatch runs its own local broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.local_port}"


class TopicsSettings(BaseModel):
    """The topics churnwatch reads and writes, and how they are created."""

    model_config = GROUP_CONFIG

    app_id: str = Field(
        default="churnwatch", min_length=1, description="Consumer group id and prefix of table topics."
    )
    usage: str = Field(
        default="churnwatch.usage",
        min_length=1,
        validation_alias="topic_usage",
        description="Usage events topic.",
    )
    support: str = Field(
        default="churnwatch.support",
        min_length=1,
        validation_alias="topic_support",
        description="Support events topic.",
    )
    billing: str = Field(
        default="churnwatch.billing",
        min_length=1,
        validation_alias="topic_billing",
        description="Billing events topic.",
    )
    alerts: str = Field(
        default="churnwatch.alerts",
        min_length=1,
        validation_alias="topic_alerts",
        description="Alerts topic (the outbox).",
    )
    deadletter: str = Field(
        default="churnwatch.deadletter",
        min_length=1,
        validation_alias="topic_deadletter",
        description="Dead-letter topic.",
    )
    partitions: int = Field(default=8, ge=1, le=10_000, description="Partitions of every churnwatch topic.")
    replication_factor: int = Field(default=1, ge=1, description="Replication factor of created topics.")
    standby_replicas: int = Field(
        default=0, ge=0, description="Standby table replicas kept by other workers."
    )
    identities: str = Field(
        default="churnwatch.identities",
        min_length=1,
        validation_alias="topic_identities",
        description="Compacted topic of the gateway's user -> account mapping (from Segment group calls).",
    )
    feedback: str = Field(
        default="churnwatch.feedback",
        min_length=1,
        validation_alias="topic_feedback",
        description="Compacted topic of answers to alerts (real, false alarm, handled, snooze), by account.",
    )

    @property
    def events(self) -> dict[EventType, str]:
        """Event type -> topic name."""
        return {EventType.USAGE: self.usage, EventType.SUPPORT: self.support, EventType.BILLING: self.billing}
