"""Slack incoming-webhook sink: one Block Kit message per alert, or one digest when a batch is large.

The messages are rendered by :mod:`streams.sinks.slack_blocks`. Sends go through a per-webhook
:class:`RateLimiter` (Slack allows about one message per second per webhook).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import structlog
from pydantic import SecretStr

from detectors.alerts import Alert
from streams.errors import ConfigError
from streams.sinks.base import HttpTarget, PermanentDeliveryError, RetryableDeliveryError
from streams.sinks.delivery import RateLimiter
from streams.sinks.slack_blocks import render_alert, render_digest

log = structlog.get_logger(__name__)

__all__ = ["SlackSink"]


class SlackSink:
    """Deliver alerts to a Slack incoming webhook.

    A batch of more than ``digest_threshold`` alerts becomes one digest message; a smaller batch becomes one
    message per alert, each waiting its turn on the rate limiter. If message *k* fails, the error's
    ``pending`` holds the alerts of messages *k..n*, so a retry does not repeat messages Slack already shows.

    Parameters
    ----------
    client
        The shared HTTP client (injected; this sink never creates one).
    webhook_url
        The secret incoming-webhook URL.
    name
        Sink name used in logs and by ``churnwatch alerts test``.
    digest_threshold
        Batches larger than this are digested.
    rate_limiter
        Defaults to one message per second.
    timeout
        Per-request timeout (``None``: the client's).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        webhook_url: SecretStr,
        *,
        name: str = "slack",
        digest_threshold: int = 3,
        rate_limiter: RateLimiter | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> None:
        if digest_threshold < 1:
            raise ConfigError("slack_digest_threshold", "must be >= 1")
        self.name = name
        self._client = client
        self._target = HttpTarget(webhook_url, sink_name=name, setting="slack_webhook_url", timeout=timeout)
        self.digest_threshold = digest_threshold
        self.rate_limiter = rate_limiter or RateLimiter(1.0)

    @property
    def target(self) -> str:
        """Redacted webhook (scheme and host only)."""
        return self._target.redacted

    def __repr__(self) -> str:
        return (
            f"SlackSink(name={self.name!r}, target={self.target!r}, digest_threshold={self.digest_threshold})"
        )

    def render(self, alerts: Sequence[Alert]) -> list[tuple[dict[str, Any], tuple[Alert, ...]]]:
        """The messages ``send`` would post, each with the alerts it covers."""
        if len(alerts) > self.digest_threshold:
            return [(render_digest(alerts), tuple(alerts))]
        return [(render_alert(a), (a,)) for a in alerts]

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        return [covered for _, covered in self.render(alerts)]

    async def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        messages = self.render(alerts)
        for i, (payload, covered) in enumerate(messages):
            await self.rate_limiter.acquire()
            try:
                await self._target.post(
                    self._client, orjson.dumps(payload), {"content-type": "application/json; charset=utf-8"}
                )
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                if i == 0:
                    raise
                # Messages before i are in the channel already: only the rest is still pending.
                raise exc.with_pending([a for _, cov in messages[i:] for a in cov]) from None
            log.debug(
                "slack.sent", sink=self.name, target=self.target, alerts=len(covered), digest=len(covered) > 1
            )
