"""What every source mapping produces: canonical events, identity updates, dead letters and ignored items."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from detectors.vocabulary import EventType
from streams.events import InvalidEventError, validate


class Rejection(StrEnum):
    """Why the gateway refused a request or set an item aside (the ``reason`` label of the metrics)."""

    UNAUTHORIZED = "unauthorized"  # wrong or missing write key / signature
    EXPIRED = "expired"  # signature timestamp outside the tolerance (replay protection)
    INVALID_JSON = "invalid_json"  # body is not JSON (400)
    INVALID_BODY = "invalid_body"  # JSON, but not the shape the route takes (400)
    TOO_LARGE = "too_large"  # body over CHURNWATCH_INGEST_MAX_BODY_BYTES (413)
    KAFKA_UNAVAILABLE = "kafka_unavailable"  # 503
    INVALID_EVENT = "invalid_event"  # mapped, but not a valid canonical event: dead-lettered
    NO_ACCOUNT = "no_account"  # no account id could be found: dead-lettered
    UNKNOWN_TYPE = "unknown_type"  # event type the gateway does not map: 2xx, counted
    DUPLICATE = "duplicate"  # event id already acknowledged by this process: 2xx, not produced again
    UNKNOWN_ALERT = "unknown_alert"  # an answer to an alert the gateway does not know (404)


class RequestError(Exception):
    """A request refused as a whole: HTTP ``status`` and the reason named in the response."""

    def __init__(self, status: int, reason: Rejection, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class DeadItem:
    """An item of a request that maps to no valid canonical event: kept on the dead-letter topic."""

    reason: Rejection
    detail: str
    raw: bytes


@dataclass(slots=True)
class Mapped:
    """The outcome of mapping one request."""

    events: list[dict[str, Any]] = field(default_factory=list)  # canonical event bodies, not yet validated
    identities: list[tuple[str, str]] = field(default_factory=list)  # (user id, account id) updates
    dead: list[DeadItem] = field(default_factory=list)
    ignored: list[Rejection] = field(default_factory=list)  # unknown types, duplicates: 2xx, counted

    def dead_letter(self, reason: Rejection, detail: str, item: object) -> None:
        self.dead.append(DeadItem(reason, detail, orjson.dumps(item)))


@dataclass(frozen=True, slots=True)
class Bounds:
    """The live path's time bounds on event timestamps (as the worker applies them)."""

    min_ts_ms: int
    max_future_skew_ms: int


def checked(mapped: Mapped, bounds: Bounds, now_ms: int) -> list[tuple[EventType, dict[str, Any]]]:
    """``(event type, body)`` of the mapped events that are valid canonical events; the others go to ``dead``.

    >>> m = Mapped(events=[{"type": "usage", "account_id": "a", "ts": 1795687200000, "event": "x"},
    ...                    {"type": "usage", "account_id": "a", "ts": 5, "event": "x"}])
    >>> valid = checked(m, Bounds(946_684_800_000, 86_400_000), 1795687200000)
    >>> [t.value for t, _ in valid], m.dead[0].reason.value
    (['usage'], 'invalid_event')
    """
    valid: list[tuple[EventType, dict[str, Any]]] = []
    for body in mapped.events:
        try:
            validate(body, max_ts_ms=now_ms + bounds.max_future_skew_ms, min_ts_ms=bounds.min_ts_ms)
        except InvalidEventError as exc:
            mapped.dead_letter(Rejection.INVALID_EVENT, str(exc), body)
            continue
        valid.append((EventType(body["type"]), body))
    return valid
