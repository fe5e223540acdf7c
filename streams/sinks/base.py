"""The sink contract, its delivery errors, and the HTTP plumbing shared by the HTTP sinks.

A sink turns a batch of :class:`~detectors.alerts.Alert` into notifications. It either returns (every alert in
the batch was accepted), or raises :class:`RetryableDeliveryError` / :class:`PermanentDeliveryError`; the
retry loop in :mod:`streams.sinks.delivery` decides what happens next. When a sink sends several requests per
batch and some succeed before one fails, the error carries ``pending`` (the alerts not yet delivered) so a
retry does not re-send what the receiver already has.

Response classification (issue #4): 2xx delivered; 429, 5xx, 408, timeouts and connection errors retryable;
any other status (other 4xx, and 3xx since redirects are not followed with signed bodies) permanent.

Secret URLs never leave :class:`HttpTarget` except into the request itself: logs, reprs and error messages
only ever see :func:`redact_url`'s scheme + host.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import httpx
import orjson
import structlog
from pydantic import SecretStr

from detectors.alerts import Alert
from streams.errors import ConfigError, DeliveryError

log = structlog.get_logger(__name__)

__all__ = [
    "HttpTarget",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Sink",
    "alert_json",
    "install_httpx_log_redaction",
    "parse_retry_after",
    "redact_url",
]


class RetryableDeliveryError(DeliveryError):
    """A transient failure (429, 5xx, timeout, connection error): try again later.

    Parameters
    ----------
    reason
        Human-readable cause; never contains a secret.
    retry_after
        Seconds the receiver asked us to wait (``Retry-After``), if it said so.
    pending
        Alerts of the batch that are still undelivered; ``None`` means the whole batch.

    Examples
    --------
    >>> err = RetryableDeliveryError("HTTP 429 Too Many Requests", retry_after=2.0)
    >>> str(err), err.retry_after
    ('HTTP 429 Too Many Requests (retry after 2s)', 2.0)
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, pending: Sequence[Alert] | None = None
    ) -> None:
        suffix = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        super().__init__(f"{reason}{suffix}")
        self.reason = reason
        self.retry_after = retry_after
        self.pending: tuple[Alert, ...] | None = None if pending is None else tuple(pending)

    def with_pending(self, pending: Sequence[Alert]) -> RetryableDeliveryError:
        """The same failure, narrowed to the alerts still undelivered."""
        return RetryableDeliveryError(self.reason, retry_after=self.retry_after, pending=pending)


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying will not fix (a 4xx other than 408/429, a bad URL): dead-letter it.

    Parameters
    ----------
    reason
        Human-readable cause; never contains a secret.
    pending
        Alerts of the batch that are undelivered; ``None`` means the whole batch.

    Examples
    --------
    >>> str(PermanentDeliveryError("HTTP 404 Not Found"))
    'HTTP 404 Not Found'
    """

    def __init__(self, reason: str, *, pending: Sequence[Alert] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pending: tuple[Alert, ...] | None = None if pending is None else tuple(pending)

    def with_pending(self, pending: Sequence[Alert]) -> PermanentDeliveryError:
        """The same failure, narrowed to the alerts still undelivered."""
        return PermanentDeliveryError(self.reason, pending=pending)


@runtime_checkable
class Sink(Protocol):
    """Where alerts go. ``send`` returns when every alert was accepted, else raises a DeliveryError."""

    name: str

    async def send(self, alerts: Sequence[Alert]) -> None: ...

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        """How ``send`` splits ``alerts`` into requests the receiver accepts one by one (in order)."""
        ...


def _json_default(value: object) -> Any:
    # `extra` is free-form; an odd value must not turn into a permanent delivery failure.
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def alert_json(alert: Alert) -> bytes:
    """Serialise an alert the way every sink writes it: ``orjson.dumps(alert.to_dict())``, never failing.

    Examples
    --------
    >>> from detectors.alerts import AlertKind, Severity, Transition
    >>> a = Alert(kind=AlertKind.ACCOUNT_RISK, account_id="acme", episode_id="acme:1",
    ...           transition=Transition.OPENED, severity=Severity.HIGH, risk=0.5,
    ...           event_ts_ms=1, detected_ts_ms=2, extra={"seen": {1}})
    >>> orjson.loads(alert_json(a))["extra"]
    {'seen': [1]}
    """
    return orjson.dumps(alert.to_dict(), default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def redact_url(url: str | SecretStr | httpx.URL) -> str:
    """Scheme, host and port of a URL, with the path (where webhook secrets live) replaced by an ellipsis.

    Examples
    --------
    >>> redact_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
    'https://hooks.slack.com/…'
    >>> redact_url(SecretStr("http://user:pw@127.0.0.1:8080/hook?token=abc"))
    'http://127.0.0.1:8080/…'
    >>> redact_url("not a url")
    '<invalid url>'
    """
    raw = url.get_secret_value() if isinstance(url, SecretStr) else str(url)
    try:
        parsed = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    if not parsed.scheme or not parsed.host:
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent/bad.

    Examples
    --------
    >>> parse_retry_after("1")
    1.0
    >>> parse_retry_after("Wed, 26 Nov 2025 10:00:30 GMT", now=datetime(2025, 11, 26, 10, 0, 0, tzinfo=UTC))
    30.0
    >>> parse_retry_after("Wed, 26 Nov 2025 09:00:00 GMT", now=datetime(2025, 11, 26, 10, 0, 0, tzinfo=UTC))
    0.0
    >>> parse_retry_after("soon") is None, parse_retry_after("-3") is None, parse_retry_after(None) is None
    (True, True, True)
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # nan/inf/negative are not valid delta-seconds; ignore rather than wait forever.
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


# Secret URLs of every HttpTarget built in this process, so the httpx log filter can recognise them.
_SECRET_URLS: set[str] = set()


class _RedactSecretUrls(logging.Filter):
    """Rewrite httpx's ``HTTP Request: POST <url> ...`` INFO records so a secret webhook URL is not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and _SECRET_URLS:
            record.args = tuple(
                redact_url(arg)
                if isinstance(arg, httpx.URL | str) and any(str(arg).startswith(u) for u in _SECRET_URLS)
                else arg
                for arg in record.args
            )
        return True


_FILTER = _RedactSecretUrls()


def install_httpx_log_redaction() -> None:
    """Attach the secret-URL filter to the ``httpx`` logger (idempotent; only known secret URLs change)."""
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


# A receiver's short error code (Slack answers e.g. "no_service") helps operators; any other body is dropped,
# since a body may echo the request or carry personal data.
_SAFE_DETAIL = re.compile(r"[a-z][a-z0-9_]{0,63}")


class HttpTarget:
    """A secret URL to POST to, with the issue #4 response classification.

    Parameters
    ----------
    url
        The secret endpoint; only :attr:`redacted` is ever shown.
    sink_name
        For logs.
    setting
        Name of the setting the URL came from, for :class:`~streams.errors.ConfigError`.
    timeout
        Per-request timeout; ``None`` keeps the injected client's default.
    extra_secrets
        Other secret strings (e.g. a signing secret) that must not leak via a response body.

    Examples
    --------
    >>> t = HttpTarget(SecretStr("https://hooks.slack.com/services/T/B/sekrit"), sink_name="slack")
    >>> t
    HttpTarget(sink='slack', target='https://hooks.slack.com/…')
    >>> HttpTarget(SecretStr("ftp://x/sekrit"), sink_name="x", setting="slack_webhook_url")
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: setting 'slack_webhook_url': must be an http(s) URL with a host
    """

    def __init__(
        self,
        url: SecretStr,
        *,
        sink_name: str,
        setting: str = "url",
        timeout: httpx.Timeout | float | None = None,
        extra_secrets: Sequence[str] = (),
    ) -> None:
        raw = url.get_secret_value()
        try:
            parsed = httpx.URL(raw)
        except (httpx.InvalidURL, TypeError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(setting, "must be an http(s) URL with a host")
        self._url = url
        self.sink_name = sink_name
        self.redacted = redact_url(raw)
        self.timeout = timeout
        # Path segments long enough to be tokens, plus the extra secrets: must never be echoed in a reason.
        self._secret_fragments = [seg for seg in parsed.path.split("/") if len(seg) >= 8]
        self._secret_fragments += [s for s in extra_secrets if s]
        _SECRET_URLS.add(str(parsed))
        install_httpx_log_redaction()

    def __repr__(self) -> str:
        return f"HttpTarget(sink={self.sink_name!r}, target={self.redacted!r})"

    def _detail(self, response: httpx.Response) -> str:
        text = response.text.strip()
        if not _SAFE_DETAIL.fullmatch(text) or any(frag in text for frag in self._secret_fragments):
            return ""
        return f": {text}"

    async def post(
        self, client: httpx.AsyncClient, content: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """POST ``content``; return the 2xx response or raise a classified DeliveryError.

        Errors are raised ``from None``: httpx exceptions carry the request (and so the secret URL).
        """
        kwargs: dict[str, Any] = {} if self.timeout is None else {"timeout": self.timeout}
        try:
            response = await client.post(
                self._url.get_secret_value(), content=content, headers=dict(headers), **kwargs
            )
        except httpx.TimeoutException as exc:
            raise RetryableDeliveryError(f"timeout ({type(exc).__name__})") from None
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise PermanentDeliveryError(f"cannot send request ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise RetryableDeliveryError(f"connection error ({type(exc).__name__})") from None
        except httpx.RequestError as exc:  # e.g. a body that fails to decode: unknown, so try again
            raise RetryableDeliveryError(f"request failed ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        reason = f"HTTP {status} {response.reason_phrase}".rstrip() + self._detail(response)
        if status in (408, 429) or status >= 500:
            raise RetryableDeliveryError(
                reason, retry_after=parse_retry_after(response.headers.get("retry-after"))
            )
        raise PermanentDeliveryError(reason)
