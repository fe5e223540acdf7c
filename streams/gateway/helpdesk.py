"""Zendesk and Intercom webhooks to support events (tickets, priority, status, satisfaction ratings).

Zendesk signs ``timestamp + body`` with HMAC-SHA256 (base64, ``X-Zendesk-Webhook-Signature`` and
``X-Zendesk-Webhook-Signature-Timestamp``); a timestamp more than 300 s off is refused. Intercom signs the
body with HMAC-SHA1 of the app's client secret (``X-Hub-Signature: sha1=<hex>``) and no timestamp: its
replays are dropped by notification id. Field mappings: docs/ingest.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from detectors.vocabulary import EventType, Priority, SupportKind
from streams.gateway.model import Mapped, Rejection, RequestError

TOLERANCE_S = 300
SOLVED_STATUSES = frozenset({"solved", "closed"})
ZENDESK_RATINGS = {"good": 5, "bad": 1}
PRIORITY_VALUES = frozenset(Priority)


def verify_zendesk(
    body: bytes, signature: str | None, timestamp: str | None, secret: str, now_s: float
) -> int:
    """Check the signature and its freshness; returns the signed timestamp in epoch ms."""
    if not signature or not timestamp:
        raise RequestError(401, Rejection.UNAUTHORIZED, "missing X-Zendesk-Webhook-Signature(-Timestamp)")
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    if not hmac.compare_digest(base64.b64encode(digest), signature.strip().encode()):
        raise RequestError(401, Rejection.UNAUTHORIZED, "wrong X-Zendesk-Webhook-Signature")
    try:
        signed_s = datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        raise RequestError(401, Rejection.EXPIRED, "unreadable signature timestamp") from None
    if abs(now_s - signed_s) > TOLERANCE_S:
        raise RequestError(401, Rejection.EXPIRED, "signature timestamp outside 300 s")
    return int(signed_s * 1000)


def verify_intercom(body: bytes, signature: str | None, secret: str) -> None:
    expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    if not signature or not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise RequestError(401, Rejection.UNAUTHORIZED, "wrong or missing X-Hub-Signature")


def _lower(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def map_zendesk(payload: Any, ts_ms: int) -> Mapped:
    """Support events of one Zendesk trigger payload (the template in docs/ingest.md)."""
    if not isinstance(payload, dict):
        raise RequestError(400, Rejection.INVALID_BODY, "a Zendesk payload must be a JSON object")
    mapped = Mapped()
    ticket = payload.get("ticket_id")
    account_id = payload.get("account_id")
    if not isinstance(account_id, str | int) or isinstance(account_id, bool) or account_id == "":
        mapped.dead_letter(Rejection.NO_ACCOUNT, "zendesk: missing 'account_id'", payload)
        return mapped
    base = {"type": EventType.SUPPORT, "account_id": str(account_id), "ts": ts_ms}
    priority = _lower(payload.get("priority"))
    priority = priority if priority in PRIORITY_VALUES else None
    found: list[dict[str, Any]] = []
    if _lower(payload.get("action")) == "created":
        found.append({"kind": SupportKind.TICKET_OPENED, "priority": priority})
    elif priority == Priority.URGENT:
        found.append({"kind": SupportKind.ESCALATED, "priority": priority})
    if _lower(payload.get("status")) in SOLVED_STATUSES:
        found.append({"kind": SupportKind.TICKET_SOLVED})
    rating = _lower(payload.get("satisfaction"))
    if rating in ZENDESK_RATINGS:
        found.append({"kind": SupportKind.CSAT, "score": ZENDESK_RATINGS[rating], "rating": rating})
    for fields in found:
        suffix = fields["kind"] + (f":{fields['rating']}" if "rating" in fields else "")
        event_id = {"event_id": f"zendesk:{ticket}:{suffix}"} if ticket not in (None, "") else {}
        mapped.events.append({**base, **event_id, **{k: v for k, v in fields.items() if v is not None}})
    if not found:
        mapped.ignored.append(Rejection.UNKNOWN_TYPE)
    return mapped


def intercom_account(item: Mapping[str, Any], accounts: Mapping[str, str]) -> str | None:
    """``custom_attributes.account_id``, else the account a contact's ``external_id`` was grouped into."""
    attributes = item.get("custom_attributes")
    if (
        isinstance(attributes, dict)
        and isinstance(attributes.get("account_id"), str)
        and attributes["account_id"]
    ):
        return str(attributes["account_id"])
    contacts = item.get("contacts")
    listed = contacts.get("contacts") if isinstance(contacts, dict) else None
    for contact in listed if isinstance(listed, list) else []:
        user = contact.get("external_id") if isinstance(contact, dict) else None
        if isinstance(user, str) and user in accounts:
            return accounts[user]
    return None


def _intercom_fields(topic: str, item: Mapping[str, Any]) -> dict[str, Any] | None:
    high = Priority.HIGH if item.get("priority") == "priority" else None
    if topic in ("conversation.user.created", "ticket.created"):
        return {"kind": SupportKind.TICKET_OPENED, "priority": high}
    if topic == "conversation.admin.closed":
        return {"kind": SupportKind.TICKET_SOLVED}
    if topic == "conversation.priority.updated" and high:
        return {"kind": SupportKind.ESCALATED, "priority": high}
    rating = item.get("conversation_rating")
    score = rating.get("rating") if isinstance(rating, dict) else None
    if topic == "conversation.rating.added" and isinstance(score, int) and not isinstance(score, bool):
        return {"kind": SupportKind.CSAT, "score": score}
    return None


def map_intercom(payload: Any, accounts: Mapping[str, str]) -> Mapped:
    """The support event (if any) of one Intercom notification."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise RequestError(400, Rejection.INVALID_BODY, "not an Intercom notification")
    mapped = Mapped()
    item = payload["data"].get("item")
    item = item if isinstance(item, dict) else {}
    fields = _intercom_fields(str(payload.get("topic")), item)
    if fields is None:
        mapped.ignored.append(Rejection.UNKNOWN_TYPE)
        return mapped
    account_id = intercom_account(item, accounts)
    if account_id is None:
        detail = f"intercom {payload.get('topic')}: no custom_attributes.account_id or grouped contact"
        mapped.dead_letter(Rejection.NO_ACCOUNT, detail, payload)
        return mapped
    created = payload.get("created_at")
    body = {
        "type": EventType.SUPPORT,
        "account_id": account_id,
        "ts": created * 1000 if isinstance(created, int) and not isinstance(created, bool) else None,
        **{name: value for name, value in fields.items() if value is not None},
    }
    if isinstance(payload.get("id"), str) and payload["id"]:
        body["event_id"] = "intercom:" + payload["id"]
    mapped.events.append(body)
    return mapped
