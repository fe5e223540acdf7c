"""Segment's tracking API (``track``, ``group``, ``identify``, ``page``, ``screen``, ``batch``) to events.

``track``, ``page`` and ``screen`` become usage events of the account named by ``context.groupId`` or, failing
that, of the account the user was last ``group``-ed into. ``group`` records that user -> account mapping and,
when its traits carry ``plan``, ``mrr`` or ``seats``, becomes a ``plan_changed`` billing event. The
``messageId`` is the canonical ``event_id`` (prefixed ``segment:``), so retried deliveries are deduplicated.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

from detectors.vocabulary import BillingKind, EventType
from streams.gateway.model import Mapped, Rejection, RequestError

USAGE_KINDS = ("track", "page", "screen")
KINDS = frozenset({*USAGE_KINDS, "group", "identify", "alias"})
ID_PREFIX = "segment:"


def write_key_of(authorization: str | None) -> str | None:
    """The write key of a ``Basic base64(key:)`` header (None when absent or not Basic).

    >>> write_key_of("Basic " + base64.b64encode(b"k3y:").decode())
    'k3y'
    >>> write_key_of("Bearer x") is None
    True
    """
    if not authorization or not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0]


def check_write_key(expected: str, authorization: str | None, body: Any) -> None:
    """Raise a 401 :class:`RequestError` unless the header's (or else the body's ``writeKey``) key matches."""
    given = write_key_of(authorization)
    if given is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        given = body["writeKey"]
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestError(401, Rejection.UNAUTHORIZED, "wrong or missing write key")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # Segment ids may be numbers
        return str(value)
    return None


class SegmentMapper:
    """Maps Segment messages, remembering user -> account assignments as it goes (batches are in order)."""

    def __init__(self, accounts: Mapping[str, str], now_iso: str) -> None:
        self.accounts = accounts
        self.learnt: dict[str, str] = {}
        self.now_iso = now_iso  # receivedAt: the time of messages without a timestamp

    def batch(self, body: Any) -> Mapped:
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            raise RequestError(400, Rejection.INVALID_BODY, "a batch must be an object with a 'batch' array")
        mapped = Mapped()
        for message in body["batch"]:
            kind = message.get("type") if isinstance(message, dict) else None
            self.one(kind, message, mapped)
        return mapped

    def one(self, kind: Any, message: Any, mapped: Mapped | None = None) -> Mapped:
        """Map one message into ``mapped`` (a new :class:`Mapped` when None) and return it."""
        mapped = Mapped() if mapped is None else mapped
        if not isinstance(message, dict):
            mapped.dead_letter(Rejection.INVALID_BODY, "a Segment message must be a JSON object", message)
        elif kind not in KINDS or kind == "alias":
            mapped.ignored.append(Rejection.UNKNOWN_TYPE)
        elif kind == "group":
            self._group(message, mapped)
        elif kind == "identify":
            self._identify(message, mapped)
        else:
            self._usage(kind, message, mapped)
        return mapped

    def account_of(self, message: dict[str, Any]) -> str | None:
        context = message.get("context")
        group = _text(context.get("groupId")) if isinstance(context, dict) else None
        if group is not None:
            return group
        user = _text(message.get("userId"))
        if user is None:
            return None
        return self.learnt.get(user) or self.accounts.get(user)

    def _common(self, message: dict[str, Any], account_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "account_id": account_id,
            "ts": message.get("timestamp") or message.get("originalTimestamp") or self.now_iso,
        }
        message_id = _text(message.get("messageId"))
        if message_id is not None:
            body["event_id"] = ID_PREFIX + message_id
        return body

    def _usage(self, kind: str, message: dict[str, Any], mapped: Mapped) -> None:
        account_id = self.account_of(message)
        if account_id is None:
            detail = f"{kind}: no context.groupId and the user was never grouped into an account"
            mapped.dead_letter(Rejection.NO_ACCOUNT, detail, message)
            return
        if kind == "track":
            name = message.get("event")
        else:
            page = _text(message.get("name"))
            name = f"{kind}:{page}" if page else kind
        user = _text(message.get("userId")) or _text(message.get("anonymousId"))
        body = {"type": EventType.USAGE, **self._common(message, account_id), "event": name, "count": 1}
        if user is not None:
            body["user_id"] = user
        mapped.events.append(body)

    def _group(self, message: dict[str, Any], mapped: Mapped) -> None:
        account_id = _text(message.get("groupId"))
        if account_id is None:
            mapped.dead_letter(Rejection.NO_ACCOUNT, "group: missing 'groupId'", message)
            return
        user = _text(message.get("userId"))
        if user is not None and self.learnt.get(user, self.accounts.get(user)) != account_id:
            self.learnt[user] = account_id
            mapped.identities.append((user, account_id))
        traits = message.get("traits")
        if not isinstance(traits, dict) or not {"plan", "mrr", "seats"} & traits.keys():
            return
        body = {
            "type": EventType.BILLING,
            **self._common(message, account_id),
            "kind": BillingKind.PLAN_CHANGED,
        }
        for name in ("plan", "mrr", "seats"):
            if traits.get(name) is not None:
                body[name] = traits[name]
        mapped.events.append(body)

    def _identify(self, message: dict[str, Any], mapped: Mapped) -> None:
        # identify carries user traits, not usage: no event; it assigns an account only via context.groupId.
        context = message.get("context")
        account_id = _text(context.get("groupId")) if isinstance(context, dict) else None
        user = _text(message.get("userId"))
        if (
            account_id is not None
            and user is not None
            and self.learnt.get(user, self.accounts.get(user)) != account_id
        ):
            self.learnt[user] = account_id
            mapped.identities.append((user, account_id))
