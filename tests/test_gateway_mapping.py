"""The gateway's source mappings and signature checks as plain functions (no broker, no HTTP).

The end-to-end tests (tests/test_gateway_kafka.py) show each route reaching the topics; these pin the mapping
rules the docs' tables state, including the edge cases that are slow to reach through HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
import stripe

from streams.gateway import helpdesk, segment, stripe_events
from streams.gateway.model import Bounds, Mapped, Rejection, RequestError, checked

NOW_ISO = "2026-12-01T12:00:00+00:00"
NOW_MS = 1_796_126_400_000
BOUNDS = Bounds(946_684_800_000, 86_400_000)


def price(unit: int, interval: str = "month", currency: str = "usd", count: int = 1) -> dict[str, Any]:
    return {
        "unit_amount": unit,
        "currency": currency,
        "recurring": {"interval": interval, "interval_count": count},
    }


@pytest.mark.parametrize(
    ("items", "mrr"),
    [
        ([{"price": price(2000), "quantity": 3}], 60.0),
        ([{"price": price(120_000, "year"), "quantity": 1}], 100.0),
        ([{"price": price(3000, "month", count=3), "quantity": 1}], 10.0),  # quarterly
        ([{"price": price(1200, "week"), "quantity": 1}], 52.0),
        ([{"price": price(5000, currency="JPY"), "quantity": 2}], 10_000.0),  # zero-decimal currency
        ([{"plan": {"amount": 990, "interval": "month"}, "quantity": 1}], 9.9),  # legacy plan object
        (
            [{"price": {"unit_amount": None, "recurring": {"interval": "month"}}, "quantity": 4}],
            0.0,
        ),  # tiered
    ],
)
def test_stripe_mrr(items: list[dict[str, Any]], mrr: float) -> None:
    assert stripe_events.monthly_amount({"items": {"data": items}}) == mrr


def event(event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {"id": "evt_1", "type": event_type, "created": NOW_MS // 1000, "data": data}


def subscription(quantity: int, **extra: Any) -> dict[str, Any]:
    item = {"price": {**price(1000), "nickname": "team"}, "quantity": quantity}
    return {"customer": "cus_1", "items": {"data": [item]}, **extra}


def billing(stripe_event: dict[str, Any], accounts: dict[str, str] | None = None) -> Mapped:
    return stripe_events.map_event(stripe_event, accounts or {})


def test_stripe_downgrade_and_reactivation_and_irrelevant_update() -> None:
    down = billing(
        event("customer.subscription.updated", subscription(2), {"items": subscription(5)["items"]})
    )
    assert down.events[0] | {"ts": 0} == {
        "type": "billing",
        "account_id": "cus_1",
        "ts": 0,
        "event_id": "stripe:evt_1",
        "kind": "plan_changed",
        "mrr": 20.0,
        "plan": "team",
        "change": "downgrade",
        "previous_mrr": 50.0,
    }
    back = billing(
        event(
            "customer.subscription.updated",
            subscription(2, cancel_at_period_end=False),
            {"cancel_at_period_end": True},
        )
    )
    assert back.events[0]["change"] == "reactivated"
    other = billing(
        event("customer.subscription.updated", subscription(2), {"default_payment_method": "pm_1"})
    )
    assert other.events == [] and other.ignored == [Rejection.UNKNOWN_TYPE]


def test_stripe_account_resolution() -> None:
    assert (
        billing(event("invoice.paid", {"customer": "cus_9"}), {"cus_9": "acme"}).events[0]["account_id"]
        == "acme"
    )
    tagged = event("invoice.paid", {"customer": "cus_9", "metadata": {"account_id": "globex"}})
    assert billing(tagged, {"cus_9": "acme"}).events[0]["account_id"] == "globex"
    assert billing(event("invoice.paid", {"customer": {"id": "cus_x"}})).events[0]["account_id"] == "cus_x"
    dispute = billing(event("charge.dispute.created", {"charge": "ch_1"}))  # charge not expanded: no customer
    assert dispute.events == [] and dispute.dead[0].reason is Rejection.NO_ACCOUNT


def test_stripe_signature_check_uses_the_stripe_package() -> None:
    payload = orjson.dumps(event("invoice.paid", {"customer": "cus_1"})).decode()
    good = stripe.WebhookSignature.generate_signature_header(payload, "whsec_s")
    assert stripe_events.verify(payload.encode(), good, "whsec_s")["id"] == "evt_1"
    old = stripe.WebhookSignature.generate_signature_header(
        payload, "whsec_s", timestamp=int(time.time()) - 301
    )
    with pytest.raises(RequestError) as expired:
        stripe_events.verify(payload.encode(), old, "whsec_s")
    assert (expired.value.status, expired.value.reason) == (401, Rejection.EXPIRED)
    for header in (None, "garbage", good.replace("v1=", "v1=0")):
        with pytest.raises(RequestError) as refused:
            stripe_events.verify(payload.encode(), header, "whsec_s")
        assert (refused.value.status, refused.value.reason) == (401, Rejection.UNAUTHORIZED)
    tampered = payload.replace("cus_1", "cus_2").encode()
    with pytest.raises(RequestError):
        stripe_events.verify(tampered, good, "whsec_s")


def test_segment_write_key_from_header_or_body() -> None:
    header = "Basic " + base64.b64encode(b"key:").decode()
    segment.check_write_key("key", header, None)
    segment.check_write_key("key", None, {"writeKey": "key"})
    for authorization, body in ((None, None), ("Basic !!!", None), (header, None), (None, {"writeKey": "k"})):
        with pytest.raises(RequestError):
            segment.check_write_key("other" if authorization == header else "key", authorization, body)


def test_segment_batch_learns_groups_in_order_and_keeps_known_mappings() -> None:
    mapper = segment.SegmentMapper({"u-old": "initech"}, NOW_ISO)
    mapped = mapper.batch(
        {
            "batch": [
                {"type": "track", "userId": "u1", "event": "before", "messageId": "m0"},  # not grouped yet
                {"type": "group", "userId": "u1", "groupId": "acme"},
                {"type": "track", "userId": "u1", "event": "after", "messageId": "m1"},
                {"type": "track", "userId": "u-old", "event": "known"},
                {"type": "group", "userId": "u-old", "groupId": "initech"},  # unchanged: no identity record
                {"type": "screen", "anonymousId": "anon", "name": "Home", "context": {"groupId": "acme"}},
                "not an object",
            ]
        }
    )
    assert [(e["account_id"], e["event"]) for e in mapped.events] == [
        ("acme", "after"),
        ("initech", "known"),
        ("acme", "screen:Home"),
    ]
    assert mapped.events[0]["event_id"] == "segment:m1" and mapped.events[0]["ts"] == NOW_ISO
    assert mapped.events[2]["user_id"] == "anon" and "event_id" not in mapped.events[1]
    assert mapped.identities == [("u1", "acme")]
    assert [dead.reason for dead in mapped.dead] == [Rejection.NO_ACCOUNT, Rejection.INVALID_BODY]


def test_checked_dead_letters_invalid_events_with_the_validation_message() -> None:
    mapped = Mapped(
        events=[
            {"type": "usage", "account_id": "a", "ts": NOW_MS, "event": "x" * 200},
            {"type": "usage", "account_id": "a", "ts": NOW_MS + 2 * 86_400_000, "event": "x"},
            {"type": "billing", "account_id": "a", "ts": NOW_MS, "kind": "plan_changed", "mrr": "99"},
        ]
    )
    assert checked(mapped, BOUNDS, NOW_MS) == []
    assert [dead.detail.split(":")[0] for dead in mapped.dead] == ["invalid_value", "future_ts", "wrong_type"]


def zendesk_signature(body: bytes, timestamp: str, secret: str = "s") -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()


def test_zendesk_signature_and_tolerance() -> None:
    body, stamp = b'{"a":1}', "2026-12-01T12:00:00Z"
    assert helpdesk.verify_zendesk(body, zendesk_signature(body, stamp), stamp, "s", NOW_MS / 1000) == NOW_MS
    for now_s in (NOW_MS / 1000 + 301, NOW_MS / 1000 - 301):  # stale, or from the future
        with pytest.raises(RequestError) as late:
            helpdesk.verify_zendesk(body, zendesk_signature(body, stamp), stamp, "s", now_s)
        assert late.value.reason is Rejection.EXPIRED
    with pytest.raises(RequestError) as wrong:
        helpdesk.verify_zendesk(
            body, zendesk_signature(body, "2026-12-01T12:00:01Z"), stamp, "s", NOW_MS / 1000
        )
    assert wrong.value.reason is Rejection.UNAUTHORIZED


def test_zendesk_mapping() -> None:
    urgent = helpdesk.map_zendesk(
        {
            "ticket_id": 3,
            "account_id": 42,
            "action": "updated",
            "priority": "Urgent",
            "satisfaction": "Good",
            "status": "open",
        },
        NOW_MS,
    )
    assert [(e["kind"], e.get("priority"), e.get("score"), e["account_id"]) for e in urgent.events] == [
        ("escalated", "urgent", None, "42"),
        ("csat", None, 5, "42"),
    ]
    assert urgent.events[1]["event_id"] == "zendesk:3:csat:good"
    nothing = helpdesk.map_zendesk(
        {"ticket_id": 3, "account_id": "a", "action": "updated", "status": "open", "satisfaction": "offered"},
        NOW_MS,
    )
    assert nothing.events == [] and nothing.ignored == [Rejection.UNKNOWN_TYPE]
    assert (
        helpdesk.map_zendesk({"ticket_id": 3, "action": "created"}, NOW_MS).dead[0].reason
        is Rejection.NO_ACCOUNT
    )
    with pytest.raises(RequestError):
        helpdesk.map_zendesk([1, 2], NOW_MS)


def test_intercom_signature_and_mapping() -> None:
    body = b'{"topic":"x"}'
    helpdesk.verify_intercom(body, "sha1=" + hmac.new(b"s", body, hashlib.sha1).hexdigest(), "s")
    with pytest.raises(RequestError):
        helpdesk.verify_intercom(body, "sha1=" + hmac.new(b"t", body, hashlib.sha1).hexdigest(), "s")

    def note(topic: str, item: dict[str, Any]) -> dict[str, Any]:
        return {"id": "notif_1", "topic": topic, "created_at": NOW_MS // 1000, "data": {"item": item}}

    tagged = {"custom_attributes": {"account_id": "acme"}}
    closed = helpdesk.map_intercom(note("conversation.admin.closed", tagged), {})
    assert closed.events == [
        {
            "type": "support",
            "account_id": "acme",
            "ts": NOW_MS,
            "kind": "ticket_solved",
            "event_id": "intercom:notif_1",
        }
    ]
    not_priority = helpdesk.map_intercom(
        note("conversation.priority.updated", {**tagged, "priority": "not_priority"}), {}
    )
    assert not_priority.events == [] and not_priority.ignored == [Rejection.UNKNOWN_TYPE]
    stranger = {"contacts": {"contacts": [{"external_id": "who"}]}}
    assert (
        helpdesk.map_intercom(note("conversation.user.created", stranger), {}).dead[0].reason
        is Rejection.NO_ACCOUNT
    )
