"""Notification sinks: deliver alerts to Slack, a signed CRM webhook and a JSONL file (issue #4).

Typical use, from the notifier::

    sinks = build_sinks(settings.sinks, client)
    for sink in sinks:
        outcome = await deliver(sink, batch, settings.sinks.retry_policy())
        if outcome.dead_lettered:
            ...  # park outcome.undelivered with outcome.reason

Secrets (webhook URLs, the signing secret) stay :class:`pydantic.SecretStr` until the request is made; logs,
reprs and errors only show the sink name and the scheme + host. Note for embedding :class:`SinksConfig` in
the app settings: pydantic renders a validation error with the *outer* model's config, so the settings model
should also set ``hide_input_in_errors=True`` or a bad value's error could print the secrets.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.errors import ConfigError
from streams.sinks.base import (
    HttpTarget,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Sink,
    parse_retry_after,
    redact_url,
)
from streams.sinks.delivery import (
    AlertOutcome,
    DeliveryOutcome,
    RateLimiter,
    RetryAttempt,
    RetryPolicy,
    Sleep,
    deliver,
)
from streams.sinks.jsonl import JsonlSink
from streams.sinks.slack import SlackSink
from streams.sinks.webhook import WebhookSink, signer_from_secret

__all__ = [
    "AlertOutcome",
    "DeliveryOutcome",
    "HttpTarget",
    "JsonlSink",
    "PermanentDeliveryError",
    "RateLimiter",
    "RetryAttempt",
    "RetryPolicy",
    "RetryableDeliveryError",
    "Sink",
    "SinksConfig",
    "SlackSink",
    "WebhookSink",
    "build_sinks",
    "deliver",
    "parse_retry_after",
    "redact_url",
    "sample_alert",
    "send_test_alert",
]


class SinksConfig(BaseModel):
    """Which sinks are enabled and how delivery behaves. A sink is enabled when its URL/path is set.

    Examples
    --------
    >>> cfg = SinksConfig(slack_webhook_url="https://hooks.slack.com/services/T/B/sekrit")
    >>> cfg  # doctest: +ELLIPSIS
    SinksConfig(slack_webhook_url=SecretStr('**********'), webhook_url=None, ...)
    >>> SinksConfig(webhook_url="https://crm.example.com/hooks/abc", webhook_secret="not-whsec")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SinksConfig
      Value error, webhook_secret: a 'whsec_...' secret is required when webhook_url is set ...
    >>> SinksConfig(slack_webhook_url="").slack_webhook_url is None  # an empty env var means "off"
    True
    """

    # hide_input_in_errors: a ValidationError would otherwise print the raw secret strings.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    slack_webhook_url: SecretStr | None = None
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    jsonl_path: Path | None = None
    slack_digest_threshold: int = Field(
        default=3, ge=1, description="Batches larger than this become a digest."
    )
    slack_min_interval_s: float = Field(default=1.0, ge=0, description="Minimum gap between Slack messages.")
    max_attempts: int = Field(default=5, ge=1)
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1, description="Fraction of each backoff that is randomised.")
    total_budget_s: float = Field(default=300.0, gt=0, description="Give up on a batch after this long.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)

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
    def _consistent(self) -> SinksConfig:
        if self.webhook_url is not None:
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not secret.startswith("whsec_"):
                raise ValueError("webhook_secret: a 'whsec_...' secret is required when webhook_url is set")
            try:
                signer_from_secret(SecretStr(secret))
            except ConfigError:
                raise ValueError("webhook_secret: not valid base64 after the 'whsec_' prefix") from None
        if self.max_delay_s < self.base_delay_s:
            raise ValueError("max_delay_s must be >= base_delay_s")
        return self

    def retry_policy(self) -> RetryPolicy:
        """The :class:`RetryPolicy` these settings describe."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.base_delay_s,
            max_delay_s=self.max_delay_s,
            jitter=self.jitter,
            total_budget_s=self.total_budget_s,
        )

    def http_timeout(self) -> httpx.Timeout:
        """Per-request timeout for the HTTP sinks."""
        return httpx.Timeout(self.request_timeout_s, connect=self.connect_timeout_s)


def build_sinks(
    config: SinksConfig,
    client: httpx.AsyncClient,
    *,
    clock: Any = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> list[Sink]:
    """Instantiate every configured sink, in the order slack, webhook, jsonl.

    ``clock``/``sleep`` drive the Slack rate limiter (injectable for tests).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     cfg = SinksConfig(slack_webhook_url="https://hooks.slack.com/services/T/B/sekrit",
    ...                       jsonl_path=Path(tmp) / "alerts.jsonl")
    ...     [s.name for s in build_sinks(cfg, httpx.AsyncClient())]
    ['slack', 'jsonl']
    """
    timeout = config.http_timeout()
    sinks: list[Sink] = []
    if config.slack_webhook_url is not None:
        limiter = RateLimiter(config.slack_min_interval_s, clock=clock, sleep=sleep)
        sinks.append(
            SlackSink(
                client,
                config.slack_webhook_url,
                digest_threshold=config.slack_digest_threshold,
                rate_limiter=limiter,
                timeout=timeout,
            )
        )
    if config.webhook_url is not None:
        assert config.webhook_secret is not None  # enforced by SinksConfig's validator
        sinks.append(WebhookSink(client, config.webhook_url, config.webhook_secret, timeout=timeout))
    if config.jsonl_path is not None:
        sinks.append(JsonlSink(config.jsonl_path))
    return sinks


def sample_alert(now_ms: int | None = None) -> Alert:
    """A harmless, clearly labelled alert for ``churnwatch alerts test``; a fresh episode id every call.

    Examples
    --------
    >>> sample_alert(1764151200000).idempotency_key
    'churnwatch-test:1764151200000:opened'
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return Alert(
        kind=AlertKind.ACCOUNT_RISK,
        account_id="churnwatch-test",
        episode_id=f"churnwatch-test:{now_ms}",
        transition=Transition.OPENED,
        severity=Severity.MEDIUM,
        risk=0.42,
        plan="test",
        mrr=100.0,
        reasons=("Test alert sent by `churnwatch alerts test`: no action needed.",),
        event_ts_ms=now_ms,
        detected_ts_ms=now_ms,
        extra={"test": True},
    )


# Quick feedback for a human at a terminal: a couple of retries, never more than ~15 s.
_TEST_POLICY = RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=5.0, jitter=0.1, total_budget_s=15.0)


async def send_test_alert(
    sink: Sink, *, policy: RetryPolicy | None = None, sleep: Sleep = asyncio.sleep
) -> str:
    """Send :func:`sample_alert` through ``sink`` and describe the outcome in one line (no secrets).

    Examples
    --------
    >>> import tempfile
    >>> from structlog.testing import capture_logs
    >>> with tempfile.TemporaryDirectory() as tmp, capture_logs():
    ...     asyncio.run(send_test_alert(JsonlSink(Path(tmp) / "a.jsonl")))  # doctest: +ELLIPSIS
    'jsonl (/.../a.jsonl): test alert delivered (1 attempt)'
    """
    outcome: DeliveryOutcome = await deliver(sink, [sample_alert()], policy or _TEST_POLICY, sleep=sleep)
    where = getattr(sink, "target", None)
    label = f"{sink.name} ({where})" if where else sink.name
    attempts = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    if outcome.delivered:
        return f"{label}: test alert delivered ({attempts})"
    return f"{label}: test alert FAILED after {attempts}: {outcome.reason}"
