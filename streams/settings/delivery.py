"""Settings of alert delivery: the sinks (Slack, a signed CRM webhook, a JSONL file), retries and the ledger.

The retry defaults are :class:`~streams.sinks.RetryPolicy`'s, so a policy built without settings (tests, the
library) retries as a worker with default settings does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from streams.errors import ConfigError
from streams.settings.kafka import GROUP_CONFIG
from streams.sinks.delivery import RetryPolicy
from streams.sinks.webhook import signer_from_secret

_RETRY = RetryPolicy()


class DeliverySettings(BaseModel):
    """Which sinks are enabled (a sink is when its URL/path is set) and how hard delivery tries.

    Examples
    --------
    >>> DeliverySettings(slack_webhook_url="https://hooks.slack.com/services/T/B/sekrit")
    ... # doctest: +ELLIPSIS
    DeliverySettings(slack_webhook_url=SecretStr('**********'), webhook_url=None, ...)
    >>> DeliverySettings(webhook_url="https://crm.example.com/hooks/abc", webhook_secret="not-whsec")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DeliverySettings
      Value error, webhook_secret: a 'whsec_...' secret is required when webhook_url is set ...
    >>> DeliverySettings(slack_webhook_url="").slack_webhook_url is None  # an empty env var means "off"
    True
    """

    model_config = GROUP_CONFIG

    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming-webhook URL (or CHURNWATCH_SLACK_WEBHOOK_URL_FILE). Unset: no Slack.",
    )
    webhook_url: SecretStr | None = Field(
        default=None, description="CRM/workflow webhook URL, signed per Standard Webhooks (or ..._FILE)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The webhook's 'whsec_...' signing secret (or CHURNWATCH_WEBHOOK_SECRET_FILE).",
    )
    jsonl_path: Path | None = Field(
        default=None,
        validation_alias="alerts_jsonl_path",
        description="Append delivered alerts to this JSONL file.",
    )
    slack_digest_threshold: int = Field(
        default=3, ge=1, description="More alerts than this at once: one Slack digest."
    )
    max_attempts: int = Field(
        default=_RETRY.max_attempts,
        ge=1,
        validation_alias="delivery_max_attempts",
        description="Delivery attempts per alert batch and sink.",
    )
    base_delay_s: float = Field(
        default=_RETRY.base_delay_s,
        ge=0,
        validation_alias="delivery_base_delay_seconds",
        description="First retry delay (doubles each time).",
    )
    max_delay_s: float = Field(
        default=_RETRY.max_delay_s,
        ge=0,
        validation_alias="delivery_max_delay_seconds",
        description="Longest delay between retries.",
    )
    total_budget_s: float = Field(
        default=_RETRY.total_budget_s,
        gt=0,
        validation_alias="delivery_budget_seconds",
        description="Give up (dead-letter) a batch after retrying this long.",
    )
    dedup_retention_days: float = Field(
        default=14.0, gt=0, description="How long delivered idempotency keys are remembered."
    )

    @field_validator("slack_webhook_url", "webhook_url", "webhook_secret", "jsonl_path", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        if value is not None:
            try:
                url = httpx.URL(value.get_secret_value())
            except (httpx.InvalidURL, TypeError):
                url = None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                # Name the setting, never the value.
                raise ValueError(f"{info.field_name} must be an http(s) URL with a host")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeliverySettings:
        if self.webhook_url is not None:
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not secret.startswith("whsec_"):
                raise ValueError("webhook_secret: a 'whsec_...' secret is required when webhook_url is set")
            try:
                signer_from_secret(SecretStr(secret))
            except ConfigError:
                raise ValueError("webhook_secret: not valid base64 after the 'whsec_' prefix") from None
        if self.max_delay_s < self.base_delay_s:
            raise ValueError("delivery_max_delay_seconds must be >= delivery_base_delay_seconds")
        return self

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these settings describe (its jitter is the policy's own)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
            total_budget_s=self.total_budget_s,
        )
