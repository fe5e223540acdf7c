"""RudderStack's Python server SDK pointed at the gateway: its calls arrive as canonical events (real broker).

`rudder-sdk-python` (module `rudderstack.analytics`) posts Segment-shaped batches to `<host>/v1/batch` with
the write key as HTTP Basic user, gzip-compressed by default, and puts `identify` traits under
`context.traits`: the same routes as Segment's SDK (tests/test_gateway_kafka.py) with its own encoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from rudderstack.analytics.client import Client as RudderClient

from tests.gateway_harness import (
    WRITE_KEY,
    GatewayFactory,
    GatewayProcess,
    gateway_factory,
    unique,
    wait_records,
)
from tests.kafka_harness import KafkaForTests

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def factory(kafka: KafkaForTests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    with gateway_factory(kafka, tmp_path_factory.mktemp("rudder"), "rudderstack") as gateways:
        yield gateways


@pytest.fixture(scope="module")
def gateway(factory: GatewayFactory) -> GatewayProcess:
    return factory.start()


def test_rudderstack_client_calls_arrive_as_canonical_events(
    gateway: GatewayProcess, factory: GatewayFactory
) -> None:
    account, other, user, colleague = unique("acme"), unique("globex"), unique("user"), unique("user")
    errors: list[Exception] = []
    client = RudderClient(
        write_key=WRITE_KEY,
        host=gateway.url,
        on_error=lambda error, _: errors.append(error),
        max_retries=5,  # a busy machine may answer 503 (Kafka slow to acknowledge): retried, lands once
        upload_interval=0.05,
    )
    assert client.gzip  # the SDK's default: the gateway must read gzip bodies
    client.group(
        user_id=user,
        group_id=account,
        traits={"plan": "team", "mrr": 49.5, "seats": 3},
        message_id="g" + account,
    )
    client.identify(user_id=colleague, traits={"email": "b@example.com"}, context={"groupId": other})
    client.track(user_id=user, event="invoice_sent", message_id="t" + account)  # account from the group call
    client.track(user_id=colleague, event="login", message_id="t" + other)  # account from the identify call
    client.flush()
    client.join()
    assert errors == []

    [track] = wait_records(factory, "usage", account, 1)
    assert track["event"] == "invoice_sent" and track["user_id"] == user and track["count"] == 1
    assert track["event_id"] == f"segment:t{account}"
    assert datetime.fromisoformat(track["ts"]) > datetime.now(UTC) - timedelta(minutes=5)
    [login] = wait_records(factory, "usage", other, 1)
    assert login["event"] == "login" and login["user_id"] == colleague
    [billing] = wait_records(factory, "billing", account, 1)
    assert billing == {
        "type": "billing",
        "account_id": account,
        "ts": billing["ts"],
        "event_id": f"segment:g{account}",
        "kind": "plan_changed",
        "plan": "team",
        "mrr": 49.5,
        "seats": 3,
    }
    identities = {bytes(r.key).decode(): bytes(r.value).decode() for r in factory.read("identities")}
    assert identities[user] == account and identities[colleague] == other
