"""Notification sinks: deliver alerts to Slack, a signed CRM webhook and a JSONL file (issue #4).

Typical use, from the notifier::

    sinks = build_sinks(settings.delivery, client)
    for sink in sinks:
        outcome = await deliver(sink, batch, settings.delivery.retry_policy())
        if outcome.dead_lettered:
            ...  # park outcome.undelivered with outcome.reason

Secrets (webhook URLs, the signing secret) stay :class:`pydantic.SecretStr` until the request is made; logs,
reprs and errors only show the sink name and the scheme + host. Which sinks are enabled and the retry policy
are settings (:class:`streams.settings.DeliverySettings`, validated at start-up).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httpx

from detectors.alerts import Alert, AlertKind, Severity, Transition
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
from streams.sinks.webhook import WebhookSink

if TYPE_CHECKING:
    from streams.settings import DeliverySettings

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
    "SlackSink",
    "WebhookSink",
    "build_sinks",
    "deliver",
    "parse_retry_after",
    "redact_url",
    "sample_alert",
    "send_test_alert",
]


# Not settings: Slack's documented rate (about one message a second per webhook) and per-request timeouts.
SLACK_MIN_INTERVAL_S = 1.0
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def build_sinks(
    config: DeliverySettings,
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
    >>> from pathlib import Path
    >>> from streams.settings import DeliverySettings
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     cfg = DeliverySettings(slack_webhook_url="https://hooks.slack.com/services/T/B/sekrit",
    ...                            jsonl_path=Path(tmp) / "alerts.jsonl")
    ...     [s.name for s in build_sinks(cfg, httpx.AsyncClient())]
    ['slack', 'jsonl']
    """
    timeout = HTTP_TIMEOUT
    sinks: list[Sink] = []
    if config.slack_webhook_url is not None:
        limiter = RateLimiter(SLACK_MIN_INTERVAL_S, clock=clock, sleep=sleep)
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
        assert config.webhook_secret is not None  # enforced by DeliverySettings' validator
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
    >>> from pathlib import Path
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
