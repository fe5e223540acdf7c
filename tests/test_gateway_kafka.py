"""The ingest gateway end to end on the real broker: request -> `churnwatch ingest` -> topics.

One gateway process serves the module's tests (each uses its own account ids); tests that need other settings
start their own. Covers Segment (with the real `segment-analytics-python` client), Stripe, Zendesk and
Intercom routes, signatures valid/invalid/expired/replayed, bad input, metrics, 404 for unset secrets,
secrets from files and never in logs, and the OpenAPI description.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe
from segment.analytics.client import Client as SegmentClient

from tests.gateway_harness import (
    INTERCOM_SECRET,
    SECRETS,
    STRIPE_SECRET,
    WRITE_KEY,
    GatewayFactory,
    GatewayProcess,
    basic,
    gateway_factory,
    intercom_headers,
    unique,
    wait_records,
    zendesk_headers,
)
from tests.kafka_harness import KafkaForTests

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def factory(kafka: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    with gateway_factory(kafka, tmp_path_factory.mktemp("gateway"), "gateway") as gateways:
        yield gateways


@pytest.fixture(scope="module")
def gateway(factory: GatewayFactory) -> GatewayProcess:
    return factory.start(CHURNWATCH_INGEST_MAX_BODY_BYTES="65536")


def deadletters(factory: GatewayFactory, reason: str) -> list[tuple[dict[str, str], bytes]]:
    found = []
    for record in factory.read("deadletter"):
        headers = {name: bytes(value).decode() for name, value in record.headers}
        if headers.get("churnwatch.error.reason") == reason:
            found.append((headers, bytes(record.value)))
    return found


# -- Segment ------------------------------------------------------------------------------------------------


def test_segment_client_calls_arrive_as_canonical_events(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    account, other, user = unique("acme"), unique("globex"), unique("user")
    errors: list[Exception] = []
    client = SegmentClient(
        write_key=WRITE_KEY,
        host=gateway.url,
        on_error=lambda e, _: errors.append(e),
        max_retries=1,
        upload_interval=0.05,
    )
    client.group(
        user_id=user,
        group_id=account,
        traits={"plan": "pro", "mrr": 99, "seats": 5},
        message_id="g1" + account,
    )
    client.identify(user_id=user, traits={"email": "a@example.com"})
    client.track(
        user_id=user, event="report_exported", message_id="t1" + account
    )  # account from the group call
    client.page(user_id=user, name="Dashboard")
    client.track(user_id=user, event="login", context={"groupId": other})  # context.groupId wins
    client.flush()
    client.join()
    assert errors == []

    usage = wait_records(factory, "usage", account, 2)
    by_event = {value["event"]: value for value in usage}
    assert set(by_event) == {"report_exported", "page:Dashboard"}
    track = by_event["report_exported"]
    assert track["user_id"] == user and track["count"] == 1 and track["event_id"] == f"segment:t1{account}"
    assert datetime.fromisoformat(track["ts"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert [value["event"] for value in wait_records(factory, "usage", other, 1)] == ["login"]
    billing = wait_records(factory, "billing", account, 1)
    assert billing == [
        {
            "type": "billing",
            "account_id": account,
            "ts": billing[0]["ts"],
            "event_id": f"segment:g1{account}",
            "kind": "plan_changed",
            "plan": "pro",
            "mrr": 99,
            "seats": 5,
        }
    ]
    identities = {bytes(r.key).decode(): bytes(r.value).decode() for r in factory.read("identities")}
    assert identities[user] == account
    assert gateway.metric("churnwatch_ingest_events_produced_total", source="segment", type="usage") >= 3


def test_group_mapping_is_loaded_by_a_gateway_started_later(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    account, user = unique("initech"), unique("user")
    group = {"type": "group", "userId": user, "groupId": account, "messageId": unique("m")}
    assert gateway.post("/v1/group", group, Authorization=basic()).status_code == 200
    later = factory.start()
    try:
        track = {"type": "track", "userId": user, "event": "search", "messageId": unique("m")}
        response = later.post("/v1/track", track, Authorization=basic())
        assert response.status_code == 200 and response.json()["events"] == 1, response.text
        assert [value["event"] for value in wait_records(factory, "usage", account, 1)] == ["search"]
    finally:
        later.stop()


def test_identities_topic_is_compacted(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def cleanup_policy() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=factory.workers.kafka.bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, factory.topic("identities"))]
            )
            entries = response.resources[0][4]
            return next(entry[1] for entry in entries if entry[0] == "cleanup.policy")
        finally:
            await admin.close()

    from tests.kafka_harness import run

    assert run(cleanup_policy()) == "compact"


def test_segment_refuses_bad_requests_and_writes_nothing(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    account = unique("hooli")
    track = {"type": "track", "userId": "u", "event": "x", "context": {"groupId": account}}
    before = gateway.metric("churnwatch_ingest_rejections_total", source="segment", reason="unauthorized")
    assert gateway.post("/v1/track", track, Authorization=basic("wrong")).status_code == 401
    assert gateway.post("/v1/track", track).status_code == 401  # no key at all
    assert gateway.post("/v1/track", {**track, "writeKey": "wrong"}).status_code == 401
    after = gateway.metric("churnwatch_ingest_rejections_total", source="segment", reason="unauthorized")
    assert after - before == 3

    malformed = gateway.post("/v1/track", b'{"type": "track",', Authorization=basic())
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "invalid_json" and "malformed JSON" in malformed.json()["message"]
    assert gateway.post("/v1/batch", {"batch": "nope"}, Authorization=basic()).status_code == 400
    too_big = gateway.post("/v1/track", {**track, "properties": {"x": "y" * 70_000}}, Authorization=basic())
    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"
    assert gateway.metric("churnwatch_ingest_rejections_total", source="segment", reason="too_large") >= 1
    # The body's own writeKey is what Segment's HTTP API also accepts.
    assert gateway.post("/v1/track", {**track, "writeKey": "wk_test_0123456789"}).status_code == 200
    assert len(wait_records(factory, "usage", account, 1)) == 1


def test_segment_items_without_account_or_valid_event_are_dead_lettered(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    account, stranger = unique("umbrella"), unique("nobody")
    batch = {
        "batch": [
            {"type": "track", "userId": stranger, "event": "orphan", "messageId": unique("m")},
            {
                "type": "track",
                "userId": "u",
                "event": "old",
                "timestamp": 1_000,
                "context": {"groupId": account},
            },
            {"type": "alias", "userId": "u", "previousId": "p"},
            {"type": "track", "userId": "u", "event": "fine", "context": {"groupId": account}},
        ]
    }
    response = gateway.post("/v1/batch", batch, Authorization=basic())
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "events": 1, "dead_lettered": 2, "ignored": 1}
    assert [value["event"] for value in wait_records(factory, "usage", account, 1)] == ["fine"]
    orphans = [(h, v) for h, v in deadletters(factory, "no_account") if stranger.encode() in v]
    assert len(orphans) == 1 and orphans[0][0]["churnwatch.source.route"] == "/v1/batch"
    invalid = [(h, v) for h, v in deadletters(factory, "invalid_event") if account.encode() in v]
    assert len(invalid) == 1 and "invalid_ts" in invalid[0][0]["churnwatch.error.detail"]
    assert gateway.metric("churnwatch_ingest_rejections_total", source="segment", reason="unknown_type") >= 1


# -- Stripe -------------------------------------------------------------------------------------------------


def stripe_event(
    event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": unique("evt"),
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": data,
    }


def subscription(customer: str, *, quantity: int, unit: int = 2000, **extra: Any) -> dict[str, Any]:
    price = {
        "id": "price_pro",
        "nickname": "pro",
        "unit_amount": unit,
        "currency": "usd",
        "recurring": {"interval": "month", "interval_count": 1},
    }
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": customer,
        "items": {"data": [{"price": price, "quantity": quantity}]},
        **extra,
    }


def post_stripe(
    gateway: GatewayProcess, event: dict[str, Any], *, secret: str = STRIPE_SECRET, at: int | None = None
) -> Any:
    payload = orjson.dumps(event).decode()
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=at)
    return gateway.post("/webhooks/stripe", payload.encode(), **{"Stripe-Signature": header})


def test_stripe_events_map_to_billing_events(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    customer = unique("cus")
    events = [
        stripe_event("customer.subscription.created", subscription(customer, quantity=2)),
        stripe_event(
            "customer.subscription.updated",
            subscription(customer, quantity=5),
            {"items": subscription(customer, quantity=2)["items"]},
        ),
        stripe_event(
            "customer.subscription.updated",
            subscription(customer, quantity=5, cancel_at_period_end=True),
            {"cancel_at_period_end": False},
        ),
        stripe_event("invoice.payment_failed", {"object": "invoice", "customer": customer}),
        stripe_event("invoice.paid", {"object": "invoice", "customer": customer}),
        stripe_event("customer.subscription.trial_will_end", subscription(customer, quantity=5)),
        stripe_event("charge.dispute.created", {"object": "dispute", "charge": {"customer": customer}}),
        stripe_event("customer.subscription.deleted", subscription(customer, quantity=5)),
    ]
    for event in events:
        response = post_stripe(gateway, event)
        assert response.status_code == 200 and response.json()["events"] == 1, response.text
    billing = wait_records(factory, "billing", customer, len(events))
    assert [(b["kind"], b.get("mrr"), b["event_id"]) for b in billing] == [
        ("subscription_created", 40.0, f"stripe:{events[0]['id']}"),
        ("plan_changed", 100.0, f"stripe:{events[1]['id']}"),
        ("cancellation_scheduled", 100.0, f"stripe:{events[2]['id']}"),
        ("payment_failed", None, f"stripe:{events[3]['id']}"),
        ("payment_succeeded", None, f"stripe:{events[4]['id']}"),
        ("trial_ending", 100.0, f"stripe:{events[5]['id']}"),
        ("dispute_opened", None, f"stripe:{events[6]['id']}"),
        ("subscription_canceled", 0.0, f"stripe:{events[7]['id']}"),
    ]
    assert (
        billing[1]["change"] == "upgrade"
        and billing[1]["previous_mrr"] == 40.0
        and billing[1]["plan"] == "pro"
    )
    assert billing[0]["ts"] == events[0]["created"] * 1000


def test_stripe_metadata_account_wins_over_customer(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    account = unique("acct")
    event = stripe_event(
        "invoice.payment_failed", {"customer": unique("cus"), "metadata": {"account_id": account}}
    )
    assert post_stripe(gateway, event).status_code == 200
    assert [b["kind"] for b in wait_records(factory, "billing", account, 1)] == ["payment_failed"]


def test_stripe_signatures_invalid_expired_and_replayed(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    customer = unique("cus")
    event = stripe_event("invoice.payment_failed", {"customer": customer})
    wrong = post_stripe(gateway, event, secret="whsec_wrong")
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    missing = gateway.post("/webhooks/stripe", orjson.dumps(event))
    assert missing.status_code == 401
    expired = post_stripe(gateway, event, at=int(time.time()) - 400)
    assert expired.status_code == 401 and expired.json()["code"] == "expired"
    assert gateway.metric("churnwatch_ingest_rejections_total", source="stripe", reason="expired") >= 1
    # Signed correctly: accepted once; Stripe's retry of the same event (same id, fresh signature) is answered
    # 200 (Stripe must stop retrying) without a second record.
    assert post_stripe(gateway, event).json()["events"] == 1
    replay = post_stripe(gateway, event)
    assert replay.status_code == 200 and replay.json() == {
        "success": True,
        "events": 0,
        "dead_lettered": 0,
        "ignored": 1,
    }
    unknown = post_stripe(gateway, stripe_event("customer.created", {"id": customer}))
    assert unknown.status_code == 200 and unknown.json()["ignored"] == 1
    marker = stripe_event("invoice.paid", {"customer": customer})
    assert post_stripe(gateway, marker).status_code == 200
    billing = wait_records(factory, "billing", customer, 2)  # the marker comes after everything above
    assert [b["kind"] for b in billing] == ["payment_failed", "payment_succeeded"]


# -- helpdesks ----------------------------------------------------------------------------------------------


def test_zendesk_tickets_and_ratings(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    account = unique("org")
    created = orjson.dumps(
        {"ticket_id": 7, "account_id": account, "action": "created", "status": "new", "priority": "High"}
    )
    solved = orjson.dumps(
        {
            "ticket_id": 7,
            "account_id": account,
            "action": "updated",
            "status": "Solved",
            "priority": "High",
            "satisfaction": "Bad",
        }
    )
    assert gateway.post("/webhooks/zendesk", created, **zendesk_headers(created)).status_code == 200
    wrong = gateway.post("/webhooks/zendesk", solved, **zendesk_headers(solved, secret="nope"))
    assert wrong.status_code == 401
    stale = gateway.post(
        "/webhooks/zendesk", solved, **zendesk_headers(solved, at=datetime.now(UTC) - timedelta(minutes=6))
    )
    assert stale.status_code == 401 and stale.json()["code"] == "expired"
    assert gateway.post("/webhooks/zendesk", solved, **zendesk_headers(solved)).status_code == 200
    support = wait_records(factory, "support", account, 3)
    assert [(s["kind"], s.get("priority"), s.get("score")) for s in support] == [
        ("ticket_opened", "high", None),
        ("ticket_solved", None, None),
        ("csat", None, 1),
    ]
    assert support[0]["event_id"] == "zendesk:7:ticket_opened"


def test_intercom_conversations(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    account, user = unique("company"), unique("user")
    group = {"type": "group", "userId": user, "groupId": account}
    assert gateway.post("/v1/group", group, Authorization=basic()).status_code == 200

    def notification(topic: str, item: dict[str, Any]) -> bytes:
        contacts = {"type": "contact.list", "contacts": [{"type": "contact", "external_id": user}]}
        return orjson.dumps(
            {
                "type": "notification_event",
                "id": unique("notif"),
                "topic": topic,
                "created_at": int(time.time()),
                "data": {"item": {"contacts": contacts, **item}},
            }
        )

    opened = notification("conversation.user.created", {"priority": "priority"})
    rated = notification("conversation.rating.added", {"conversation_rating": {"rating": 2}})
    wrong = gateway.post("/webhooks/intercom", opened, **intercom_headers(opened, secret="nope"))
    assert wrong.status_code == 401
    for body in (opened, rated):
        assert gateway.post("/webhooks/intercom", body, **intercom_headers(body)).status_code == 200
    support = wait_records(factory, "support", account, 2)
    assert [(s["kind"], s.get("priority"), s.get("score")) for s in support] == [
        ("ticket_opened", "high", None),
        ("csat", None, 2),
    ]
    assert INTERCOM_SECRET not in gateway.log()


# -- configuration ------------------------------------------------------------------------------------------


def test_unset_secrets_answer_404_and_secrets_come_from_files(
    factory: GatewayFactory, tmp_path: Path
) -> None:
    key_file = tmp_path / "write-key"
    key_file.write_text("from-a-file\n")
    gateway = factory.start(
        drop=(
            "CHURNWATCH_STRIPE_WEBHOOK_SECRET",
            "CHURNWATCH_ZENDESK_WEBHOOK_SECRET",
            "CHURNWATCH_INTERCOM_CLIENT_SECRET",
            "CHURNWATCH_INGEST_WRITE_KEY",
        ),
        CHURNWATCH_INGEST_WRITE_KEY_FILE=str(key_file),
    )
    try:
        for route in ("/webhooks/stripe", "/webhooks/zendesk", "/webhooks/intercom"):
            assert gateway.post(route, {}).status_code == 404, route
        track = {"type": "identify", "userId": "u"}
        assert gateway.post("/v1/identify", track, Authorization=basic("from-a-file")).status_code == 200
        assert gateway.post("/v1/identify", track, Authorization=basic()).status_code == 401
    finally:
        assert gateway.stop() == 0
    assert "from-a-file" not in gateway.log()


def test_bad_listen_setting_fails_at_start_naming_it(factory: GatewayFactory) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "streams", "ingest"],
        capture_output=True,
        text=True,
        env=factory.env(CHURNWATCH_INGEST_LISTEN="8080"),
        timeout=120,
    )
    assert result.returncode == 2 and "CHURNWATCH_INGEST_LISTEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_secret_in_any_log(gateway: GatewayProcess, factory: GatewayFactory) -> None:
    gateway.post("/v1/track", {"type": "track"}, Authorization=basic("guess"))
    for started in factory.started:
        log = started.log()
        assert not [secret for secret in SECRETS if secret in log]


def test_openapi_served_equals_checked_in_and_covers_every_route(gateway: GatewayProcess) -> None:
    from prometheus_client import CollectorRegistry

    from streams.gateway.alert_index import AlertIndex
    from streams.gateway.app import Gateway, build_app
    from streams.gateway.feedback import FeedbackRoutes
    from streams.settings import load_settings

    checked_in = json.loads((REPO / "docs" / "ingest-openapi.json").read_text())
    assert gateway.get("/openapi.json").json() == checked_in
    settings = load_settings(
        ingest_write_key="k",
        stripe_webhook_secret="s",
        zendesk_webhook_secret="z",
        intercom_client_secret="i",
    )
    gateway_object = Gateway(settings, None, {}, CollectorRegistry())  # type: ignore[arg-type]
    answers = FeedbackRoutes(
        AlertIndex(max_alerts=1, memory_ms=1, clock_ms=lambda: 0),
        produce=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
        clock=time.time,
        topic_feedback="f",
        topic_alerts="a",
        slack_secret="s",
        bearer_token="t",
    )
    app = build_app(gateway_object, answers)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {(method, path) for path, item in checked_in["paths"].items() for method in item}
    assert routes == described


def test_gzip_bodies_are_read_and_a_gzip_bomb_is_413(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    import gzip

    account = unique("gzip")
    track = {"type": "track", "userId": "u", "event": "zipped", "context": {"groupId": account}}
    headers = {"Authorization": basic(), "Content-Encoding": "gzip"}
    assert gateway.post("/v1/track", gzip.compress(orjson.dumps(track)), **headers).status_code == 200
    assert [value["event"] for value in wait_records(factory, "usage", account, 1)] == ["zipped"]
    bomb = gzip.compress(b'{"batch":[' + b" " * 5_000_000 + b"]}")  # 5 kB on the wire, 5 MB inflated
    assert len(bomb) < 65_536
    assert gateway.post("/v1/batch", bomb, **headers).status_code == 413
