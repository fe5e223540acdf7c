"""On the real broker: answers produced to the feedback topic are folded by the worker owning the account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from detectors.reasons import reason_kind
from streams.dev.producer import produce_live
from streams.dev.simulator import Simulation, SimulationConfig
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource
from tests.kafka_harness import WorkerFactory, WorkerProcess, metric_value, read_all, run, wait_until

pytestmark = pytest.mark.kafka

START = datetime(2026, 2, 2, tzinfo=UTC)


def answers_of(worker: WorkerProcess, account: str) -> dict[str, Any] | None:
    try:
        body = worker.get(f"/churnwatch/accounts/{account}/").json()
    except Exception:  # not answering yet
        return None
    return body.get("answers")


def opened_alerts(workers: WorkerFactory) -> list[dict[str, Any]]:
    records = run(read_all(workers.kafka.bootstrap, f"{workers.prefix}.alerts"))
    return [orjson.loads(r.value) for r in records]


def test_worker_folds_answers_from_the_feedback_topic(workers: WorkerFactory) -> None:
    events = list(Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=START)).events())
    workers.partitions = 2
    workers.extra_env["CHURNWATCH_EVALUATION_CLOCK"] = "event"
    settings = workers.settings()
    worker = workers.start()
    sent = asyncio.run(produce_live(settings, events, rate=2_500))
    wait_until(
        lambda: int((worker.stats() or {}).get("events_folded", 0)) >= sent - 50,
        timeout=180,
        what="events folded",
    )

    def listed() -> dict[str, Any] | None:
        try:
            rows = worker.get("/churnwatch/at-risk/?limit=5").json()["accounts"]
        except Exception:  # not answering yet
            return None
        return rows[0] if rows else None

    row = wait_until(listed, timeout=120, what="an account in an open episode")
    account, alert_id = row["account_id"], f"{row['episode_id']}:opened"
    alert = wait_until(
        lambda: next((a for a in opened_alerts(workers) if a["idempotency_key"] == alert_id), None),
        timeout=60,
        what="its opened alert on the alerts topic",
    )
    before = answers_of(worker, account)
    assert before is not None and alert_id in before["alerts"] and before["answers_seen"] == 0

    def feedback(label: FeedbackLabel, user: str) -> tuple[str, bytes, bytes]:
        answer = Feedback(
            account_id=account,
            alert_id=alert_id,
            label=label,
            user=user,
            source=FeedbackSource.API,
            answered_ts_ms=alert["event_ts_ms"],
        )
        return settings.topics.feedback, account.encode(), answer.to_bytes()

    false_alarm = feedback(FeedbackLabel.FALSE_ALARM, "ana")
    # One account, one partition: once the last answer is folded, the ones before it are too.
    workers.produce(
        [false_alarm, false_alarm, feedback(FeedbackLabel.REAL, "bo"), feedback(FeedbackLabel.HANDLED, "cy")]
    )

    def folded_answers() -> dict[str, Any] | None:
        answers = answers_of(worker, account)
        return answers if answers is not None and answers["answers_seen"] >= 3 else None

    answers = wait_until(folded_answers, timeout=60, what="the answers folded")
    kinds = {reason_kind(r) for r in alert["reasons"]} - {"base_rate", "other"}
    assert set(answers["muted_until_ms"]) == kinds and set(answers["damping"]) == kinds
    assert answers["answers_seen"] == 3  # the same false alarm twice counted once

    def resolution() -> list[dict[str, Any]] | None:
        resolved = [
            a
            for a in opened_alerts(workers)
            if a["episode_id"] == row["episode_id"] and a["transition"] == "resolved"
        ]
        return resolved or None

    resolved = wait_until(resolution, timeout=60, what="the handled episode's resolution on the alerts topic")
    assert len(resolved) == 1 and resolved[0]["extra"]["outcome"] == "action taken"
    assert "marked handled by cy" in resolved[0]["reasons"][0]
    # The worker counts what it folded: each answer once, the repeat as a duplicate, nothing unknown.
    text = worker.get("/metrics").text
    folded = {
        (label, outcome): metric_value(text, "churnwatch_answers_folded_total", label=label, outcome=outcome)
        for label in ("false-alarm", "real", "handled", "snooze")
        for outcome in ("applied", "duplicate", "unknown")
    }
    expected = {key: 0.0 for key in folded}
    expected |= {
        ("false-alarm", "applied"): 1.0,
        ("false-alarm", "duplicate"): 1.0,
        ("real", "applied"): 1.0,
        ("handled", "applied"): 1.0,
    }
    assert folded == expected
