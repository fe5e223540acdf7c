"""Settings of the ingest gateway (``churnwatch ingest``, docs/ingest.md) and of answers to alerts.

Answers (issue #18, docs/alerts.md) come in through the gateway and act on accounts in the worker and in
replay; the holdout decides which accounts' alerts are recorded but not delivered. Defaults that
:class:`~detectors.answers.AnswerPolicy` and :class:`~streams.live.holdout.Holdout` also have are taken from
them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator

from detectors.answers import AnswerPolicy
from streams.live.holdout import Holdout
from streams.settings.kafka import GROUP_CONFIG

_ANSWERS = AnswerPolicy()
_HOLDOUT = Holdout()


class IngestSettings(BaseModel):
    """The gateway's listener, its sources' secrets and its limits."""

    model_config = GROUP_CONFIG

    listen: str = Field(
        default="127.0.0.1:8080",
        validation_alias="ingest_listen",
        description="host:port the ingest gateway (`churnwatch ingest`) listens on.",
    )
    write_key: SecretStr | None = Field(
        default=None,
        validation_alias="ingest_write_key",
        description="Segment-compatible write key (or CHURNWATCH_INGEST_WRITE_KEY_FILE). "
        "Unset: /v1/* answer 404.",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Stripe endpoint signing secret 'whsec_...' (or ..._FILE). "
        "Unset: /webhooks/stripe answers 404.",
    )
    zendesk_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Zendesk webhook signing secret (or ..._FILE). Unset: /webhooks/zendesk answers 404.",
    )
    intercom_client_secret: SecretStr | None = Field(
        default=None,
        description="Intercom app client secret (or ..._FILE). Unset: /webhooks/intercom answers 404.",
    )
    max_body_bytes: int = Field(
        default=524_288,
        ge=1_024,
        validation_alias="ingest_max_body_bytes",
        description="Larger request bodies (after decompression) are refused with 413.",
    )
    ack_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        validation_alias="ingest_ack_timeout_seconds",
        description="Longest wait for Kafka to acknowledge a request's events before a 503.",
    )
    stripe_account_map: Path | None = Field(
        default=None,
        description='JSON file mapping Stripe customer ids to account ids ({"cus_...": "acme"}).',
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value


class FeedbackSettings(BaseModel):
    """How answers to alerts reach churnwatch and what they do to accounts and the risk model."""

    model_config = GROUP_CONFIG

    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="Slack app signing secret (or ..._FILE). Unset: /slack/interactions answers 404.",
    )
    token: SecretStr | None = Field(
        default=None,
        validation_alias="feedback_token",
        description="Bearer token for POST /churnwatch/feedback/ (or ..._FILE).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="feedback_webhook_secret",
        description="Standard Webhooks 'whsec_...' secret for POST /churnwatch/feedback/ (or ..._FILE). "
        "Neither this nor the token set: the route answers 404.",
    )
    alert_memory_days: float = Field(
        default=30.0,
        gt=0,
        validation_alias="feedback_alert_memory_days",
        description="The gateway accepts answers to alerts detected within this many days.",
    )
    alert_memory_max: int = Field(
        default=500_000,
        ge=1,
        validation_alias="feedback_alert_memory_max",
        description="Most alerts the gateway remembers for answers (oldest forgotten first).",
    )
    suppress_days: float = Field(
        default=_ANSWERS.suppress_days,
        ge=0,
        validation_alias="feedback_suppress_days",
        description="A false alarm mutes the alert's reasons for that account this many days.",
    )
    damping: float = Field(
        default=_ANSWERS.damping,
        ge=0,
        le=1,
        validation_alias="feedback_damping",
        description="After the mute, a false alarm's reasons weigh (1 - this) for the account (decaying).",
    )
    damping_half_life_days: float = Field(
        default=_ANSWERS.damping_half_life_days,
        gt=0,
        validation_alias="feedback_damping_half_life_days",
        description="Half-life of what a false alarm taught an account (its damping).",
    )
    label_weight: float = Field(
        default=_ANSWERS.label_weight,
        ge=0,
        validation_alias="feedback_label_weight",
        description="Weight of a 'real' or 'false alarm' answer as a label for the risk model (a "
        "cancellation weighs 1; 0: answers teach the model nothing).",
    )
    plan_prior_answers: float = Field(
        default=_ANSWERS.segment_prior_answers,
        ge=0,
        validation_alias="feedback_plan_prior_answers",
        description="Pseudo-answers a plan's own answers must outweigh before a reason that cries wolf in "
        "that plan is damped for all its accounts (0: answers teach nothing beyond the accounts answered).",
    )

    def answer_policy(self) -> AnswerPolicy:
        """How answers to alerts act on accounts and the risk model (live worker and replay alike)."""
        return AnswerPolicy(
            suppress_days=self.suppress_days,
            damping=self.damping,
            damping_half_life_days=self.damping_half_life_days,
            label_weight=self.label_weight,
            segment_prior_answers=self.plan_prior_answers,
        )


class HoldoutSettings(BaseModel):
    """The holdout experiment: accounts whose alerts are recorded but not delivered."""

    model_config = GROUP_CONFIG

    share: float = Field(
        default=_HOLDOUT.share,
        ge=0,
        le=1,
        validation_alias="holdout_share",
        description="Share of accounts whose alerts are recorded but not delivered (holdout).",
    )
    experiment: str = Field(
        default=_HOLDOUT.experiment,
        min_length=1,
        validation_alias="holdout_experiment",
        description="Experiment name hashed with the account id to pick the holdout.",
    )

    def holdout(self) -> Holdout:
        return Holdout(self.share, self.experiment)
