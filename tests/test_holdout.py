"""Holdout accounts: membership by hash, stamped alerts, held back by the notifier (unit, on the broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from detectors.alerts import Alert, AlertKind
from streams.dev.producer import produce_live
from streams.dev.simulator import Simulation, SimulationConfig
from streams.live.holdout import Holdout, held_out
from streams.sinks import RetryPolicy
from streams.sinks.notifier import LedgerEntry, Notifier, OutboxRecord
from tests.http_recorder import HTTPRecorder
from tests.kafka_harness import WorkerFactory, make_alert, metric_value, read_all, run, wait_until


def test_membership_is_stable_sized_by_the_share_and_independent_between_experiments() -> None:
    accounts = [f"account-{i}" for i in range(20_000)]
    first = Holdout(0.3, "q1")
    members = {a for a in accounts if first.member(a)}
    assert abs(len(members) / len(accounts) - 0.3) < 0.02
    assert members == {a for a in accounts if Holdout(0.3, "q1").member(a)}
    assert members < {a for a in accounts if Holdout(0.6, "q1").member(a)}  # a larger share keeps the group
    other = {a for a in accounts if Holdout(0.3, "q2").member(a)}
    assert abs(len(members & other) / len(accounts) - 0.09) < 0.02  # independent: 0.3 * 0.3
    assert not [a for a in accounts if Holdout(0.0, "q1").member(a)]


def test_every_account_alert_is_stamped_with_its_membership() -> None:
    holdout = Holdout(0.5, "q1")
    for i in range(20):
        alert = holdout.stamp(make_alert(f"acct-{i}"))
        stamp = alert.to_dict()["extra"]["holdout"]
        assert stamp == {"experiment": "q1", "share": 0.5, "held_out": holdout.member(f"acct-{i}")}
        assert held_out(Alert.from_dict(orjson.loads(orjson.dumps(alert.to_dict())))) is stamp["held_out"]
    incident = replace(make_alert("lag"), kind=AlertKind.PIPELINE_INCIDENT)
    assert Holdout(1.0, "q1").stamp(incident) == incident


class Recording:
    name = "webhook"

    def __init__(self) -> None:
        self.received: list[str] = []

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        return [(alert,) for alert in alerts]

    async def send(self, alerts: Sequence[Alert]) -> None:
        self.received.extend(alert.account_id for alert in alerts)


def test_notifier_records_held_out_alerts_without_sending_them() -> None:
    holdout = Holdout(0.5, "q1")
    alerts = [holdout.stamp(make_alert(f"acct-{i}")) for i in range(30)]
    ledger: dict[bytes, bytes] = {}

    async def store(entries: dict[bytes, LedgerEntry]) -> None:
        ledger.update({key: entry.to_bytes() for key, entry in entries.items()})

    sink = Recording()
    notifier = Notifier([sink], RetryPolicy(max_attempts=1), load=ledger.get, store=store, clock=lambda: 0)
    records = [
        OutboxRecord(a.account_id.encode(), orjson.dumps(a.to_dict()), 0, i) for i, a in enumerate(alerts)
    ]
    result = asyncio.run(notifier.handle(records))
    held = [a for a in alerts if held_out(a)]
    assert 0 < len(held) < len(alerts)
    assert sink.received == [a.account_id for a in alerts if not held_out(a)]
    assert result.held_out == len(held)
    assert {LedgerEntry.from_bytes(ledger[a.idempotency_key.encode()]).sinks["webhook"] for a in held} == {
        "held_out"
    }


@pytest.mark.kafka
def test_worker_holds_back_held_out_alerts_and_counts_them(workers: WorkerFactory) -> None:
    holdout = Holdout(0.5, "broker")
    alerts = [holdout.stamp(make_alert(f"hold-{i}")) for i in range(12)]
    held = sum(held_out(a) for a in alerts)
    assert 0 < held < len(alerts)
    with HTTPRecorder() as crm:
        workers.extra_env.update(
            CHURNWATCH_WEBHOOK_URL=crm.url_for("/hooks/crm"),
            CHURNWATCH_WEBHOOK_SECRET="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        worker = workers.start()
        topic = workers.settings().topics.alerts
        workers.produce((topic, a.account_id.encode(), orjson.dumps(a.to_dict())) for a in alerts)
        wait_until(
            lambda: metric_value(worker.get("/metrics").text, "churnwatch_alerts_held_out_total") == held,
            timeout=90,
            what=f"{held} held-out alerts counted",
        )
        delivered = crm.wait_for_sync(len(alerts) - held, timeout=60)
        assert sorted(r.json()["account_id"] for r in delivered) == sorted(
            a.account_id for a in alerts if not held_out(a)
        )
        assert all(r.json()["extra"]["holdout"]["held_out"] is False for r in delivered)


@pytest.mark.kafka
def test_live_worker_stamps_every_alert_and_delivers_only_the_rest(workers: WorkerFactory) -> None:
    start = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday with no simulator holidays in the weeks after it
    events = list(Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=start)).events())
    holdout = Holdout(0.5, "live")
    with HTTPRecorder() as crm:
        workers.partitions = 1
        workers.extra_env.update(
            CHURNWATCH_EVALUATION_CLOCK="event",
            CHURNWATCH_HOLDOUT_SHARE="0.5",
            CHURNWATCH_HOLDOUT_EXPERIMENT="live",
            CHURNWATCH_WEBHOOK_URL=crm.url_for("/hooks/crm"),
            CHURNWATCH_WEBHOOK_SECRET="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        settings = workers.settings()
        worker = workers.start()
        sent = asyncio.run(produce_live(settings, events, rate=None))
        wait_until(
            lambda: int((worker.stats() or {}).get("events_folded", 0)) >= sent - 50,
            timeout=180,
            what="events folded",
        )

        def settled() -> list[dict[str, Any]] | None:
            alerts = [
                orjson.loads(r.value) for r in run(read_all(workers.kafka.bootstrap, settings.topics.alerts))
            ]
            # One per idempotency key: the ledger handles a key once (a repeat is a suppressed duplicate).
            accounts = list({a["idempotency_key"]: a for a in alerts if a["kind"] == "account_risk"}.values())
            held = sum(a["extra"]["holdout"]["held_out"] for a in accounts)
            counted = metric_value(worker.get("/metrics").text, "churnwatch_alerts_held_out_total") or 0
            done = accounts and counted == held and len(crm.requests) == len(accounts) - held
            return accounts if done else None

        accounts = wait_until(settled, timeout=120, what="every alert delivered or held out")
        for alert in accounts:
            assert alert["extra"]["holdout"] == {
                "experiment": "live",
                "share": 0.5,
                "held_out": holdout.member(alert["account_id"]),
            }
        delivered = sorted(r.json()["idempotency_key"] for r in crm.requests)
        assert delivered == sorted(
            a["idempotency_key"] for a in accounts if not a["extra"]["holdout"]["held_out"]
        )
        assert 0 < len(delivered) < len(accounts)  # both groups are represented
