"""The notifier records each accepted request in the ledger before sending the next (no Kafka needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import orjson
import pytest

from detectors.alerts import Alert, Severity, Transition
from streams.sinks import RetryPolicy
from streams.sinks.notifier import LedgerEntry, Notifier, OutboxRecord
from tests.kafka_harness import make_alert


class WorkerKilled(Exception):
    """Stands for a kill -9 while a request is in flight."""


class OneAlertPerRequest:
    """Accepts ``accept`` requests, then the worker "dies" during the next one."""

    name = "webhook"

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.received: list[str] = []

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        return [(alert,) for alert in alerts]

    async def send(self, alerts: Sequence[Alert]) -> None:
        if len(self.received) >= self.accept:
            raise WorkerKilled
        self.received.extend(alert.idempotency_key for alert in alerts)


def outbox(alerts: list[Alert]) -> list[OutboxRecord]:
    return [
        OutboxRecord(alert.account_id.encode(), orjson.dumps(alert.to_dict()), 0, offset)
        for offset, alert in enumerate(alerts)
    ]


def notifier(sink: OneAlertPerRequest, ledger: dict[bytes, bytes]) -> Notifier:
    async def store(entries: dict[bytes, LedgerEntry]) -> None:
        ledger.update({key: entry.to_bytes() for key, entry in entries.items()})

    return Notifier([sink], RetryPolicy(max_attempts=1), load=ledger.get, store=store, clock=lambda: 0)


def test_a_crash_mid_batch_resends_only_the_request_in_flight() -> None:
    alerts = [make_alert(f"acct-{i}") for i in range(5)]
    ledger: dict[bytes, bytes] = {}
    first = OneAlertPerRequest(accept=3)
    with pytest.raises(WorkerKilled):
        asyncio.run(notifier(first, ledger).handle(outbox(alerts)))
    assert first.received == [alert.idempotency_key for alert in alerts[:3]]

    # The successor re-reads the whole uncommitted batch with the ledger the first worker left.
    second = OneAlertPerRequest(accept=100)
    result = asyncio.run(notifier(second, ledger).handle(outbox(alerts)))
    assert second.received == [alert.idempotency_key for alert in alerts[3:]]
    assert result.duplicates == 3
    assert result.delivered == {"webhook": 2}


def test_an_episode_escalating_twice_delivers_both_escalations() -> None:
    """high, then critical: two transitions of one episode, neither a duplicate of the other."""
    opened = make_alert("acme")
    high = replace(opened, transition=Transition.ESCALATED, severity=Severity.HIGH, risk=0.6)
    critical = replace(high, severity=Severity.CRITICAL, risk=0.8)
    ledger: dict[bytes, bytes] = {}
    sink = OneAlertPerRequest(accept=100)
    result = asyncio.run(notifier(sink, ledger).handle(outbox([opened, high, critical])))
    assert len(set(sink.received)) == 3
    assert (result.duplicates, result.delivered) == (0, {"webhook": 3})
    # Each escalation is still deduplicated against itself.
    again = asyncio.run(notifier(OneAlertPerRequest(accept=100), ledger).handle(outbox([critical])))
    assert (again.duplicates, again.delivered) == (1, {})
