"""The gateway while Kafka is away: 503 with Retry-After, then the client's retries land once.

A private broker (as in tests/test_faults.py), so stopping it disturbs no other test.
"""

from __future__ import annotations

import uuid
from collections import Counter
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest

from streams.dev import kafka_local
from tests.gateway_harness import GatewayFactory, basic
from tests.kafka_harness import KafkaForTests, WorkerFactory, start_private_broker, wait_until

pytestmark = pytest.mark.kafka


def batch(account: str, first: int, count: int) -> dict[str, object]:
    return {
        "batch": [
            {
                "type": "track",
                "userId": "u",
                "event": "e",
                "messageId": f"{account}-{i}",
                "context": {"groupId": account},
            }
            for i in range(first, first + count)
        ]
    }


def test_kafka_stopped_answers_503_and_retried_requests_land_once(tmp_path: Path) -> None:
    broker = start_private_broker(tmp_path / "kafka-home")
    workers = WorkerFactory(
        KafkaForTests(bootstrap=broker.bootstrap, broker=broker), tmp_path, name="gw-faults"
    )
    factory = GatewayFactory(workers)
    account = f"acme-{uuid.uuid4().hex[:6]}"
    try:
        gateway = factory.start(CHURNWATCH_INGEST_ACK_TIMEOUT_SECONDS="2")
        before = gateway.post("/v1/batch", batch(account, 0, 50), Authorization=basic())
        assert before.status_code == 200, before.text

        assert kafka_local.stop(broker)
        refused = [
            gateway.post("/v1/batch", batch(account, 50 + 50 * i, 50), Authorization=basic())
            for i in range(3)
        ]
        assert [r.status_code for r in refused] == [503, 503, 503]
        assert all(r.headers["Retry-After"].isdigit() for r in refused)
        assert refused[0].json()["code"] == "kafka_unavailable"
        assert gateway.get("/healthz").status_code == 200  # the process rides out the outage
        assert (
            gateway.metric("churnwatch_ingest_rejections_total", source="segment", reason="kafka_unavailable")
            == 3
        )

        kafka_local.start(broker)

        def retried(i: int) -> bool:
            try:
                response = gateway.post("/v1/batch", batch(account, 50 + 50 * i, 50), Authorization=basic())
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        for i in range(3):  # the sender's retries, as Segment's SDKs do after a 503
            wait_until(partial(retried, i), timeout=120, what=f"retry {i} acknowledged", interval=1)
        assert gateway.post("/v1/batch", batch(account, 200, 10), Authorization=basic()).status_code == 200

        def written() -> Counter[str]:
            return Counter(orjson.loads(bytes(r.value))["event_id"] for r in factory.read("usage"))

        expected = {f"segment:{account}-{i}" for i in range(210)}

        def complete() -> Counter[str] | None:
            ids = written()
            return ids if set(ids) == expected else None

        ids = wait_until(complete, timeout=60, what="every event on the topic")
        assert max(ids.values()) == 1, [k for k, v in ids.items() if v > 1][:5]
        assert gateway.process.poll() is None
    finally:
        factory.stop_all()
        if kafka_local.status(broker) is not None:
            kafka_local.stop(broker)
