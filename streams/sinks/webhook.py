"""Generic CRM webhook sink: one signed POST per alert, per the Standard Webhooks spec.

Each request body is ``alert.to_dict()`` as JSON. Headers: ``webhook-id`` (the alert's idempotency key, so the
receiver can drop replays), ``webhook-timestamp`` (unix seconds, fresh on every attempt since receivers reject
stale ones), ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` from the ``standardwebhooks`` package) and
``content-type: application/json``. The signing secret is a ``whsec_<base64>`` string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
import structlog
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from detectors.alerts import Alert
from streams.errors import ConfigError
from streams.sinks.base import HttpTarget, PermanentDeliveryError, RetryableDeliveryError, alert_json

log = structlog.get_logger(__name__)

__all__ = ["WebhookSink", "signer_from_secret", "signing_headers"]

SECRET_PREFIX = "whsec_"


def signer_from_secret(secret: SecretStr) -> Webhook:
    """A Standard Webhooks signer; :class:`ConfigError` naming ``webhook_secret`` (never its value) if bad."""
    raw = secret.get_secret_value()
    if not raw.startswith(SECRET_PREFIX):
        raise ConfigError("webhook_secret", "must be a Standard Webhooks secret starting with 'whsec_'")
    try:
        return Webhook(raw)
    except Exception:
        # The library's messages are harmless, but a decode error must not echo the secret.
        raise ConfigError("webhook_secret", "is not valid base64 after the 'whsec_' prefix") from None


def signing_headers(signer: Webhook, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for ``body``.

    Examples
    --------
    >>> w = Webhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    >>> h = signing_headers(w, "ep:opened", '{"a":1}', datetime(2025, 11, 26, tzinfo=UTC))
    >>> h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"].startswith("v1,")
    ('ep:opened', '1764115200', True)
    """
    now = now.astimezone(UTC)  # the library stamps tzinfo=UTC without converting
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
        "content-type": "application/json",
    }


class WebhookSink:
    """POST each alert, signed, to a CRM webhook.

    Alerts of a batch are sent in order; on a failure the error's ``pending`` holds that alert and the
    ones after it, so a retry never re-sends an alert that was already accepted.

    Parameters
    ----------
    client
        The shared, injected HTTP client.
    url
        The secret endpoint URL.
    secret
        The ``whsec_...`` signing secret.
    name
        Sink name for logs and ``churnwatch alerts test``.
    timeout
        Per-request timeout (``None``: the client's).
    now
        Clock for ``webhook-timestamp`` (injectable for tests).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: SecretStr,
        secret: SecretStr,
        *,
        name: str = "webhook",
        timeout: httpx.Timeout | float | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self._client = client
        self._signer = signer_from_secret(secret)
        self._target = HttpTarget(
            url,
            sink_name=name,
            setting="webhook_url",
            timeout=timeout,
            extra_secrets=[secret.get_secret_value()],
        )
        self._now = now

    @property
    def target(self) -> str:
        """Redacted endpoint (scheme and host only)."""
        return self._target.redacted

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, target={self.target!r})"

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        return [(alert,) for alert in alerts]

    async def send(self, alerts: Sequence[Alert]) -> None:
        for i, alert in enumerate(alerts):
            body = alert_json(alert)
            headers = signing_headers(self._signer, alert.idempotency_key, body.decode(), self._now())
            try:
                await self._target.post(self._client, body, headers)
            except (RetryableDeliveryError, PermanentDeliveryError) as exc:
                raise exc.with_pending(alerts[i:]) from None
            log.debug("webhook.sent", sink=self.name, target=self.target, webhook_id=alert.idempotency_key)
