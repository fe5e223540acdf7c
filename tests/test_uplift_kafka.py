"""The worker's holdout uplift on the real broker: ``/churnwatch/stats/`` (field ``uplift``) and the
``churnwatch_holdout_*`` gauges show what the worker settled once the horizon passed, the same numbers an
analyst redoes from the stamped alerts on the alerts topic and the events' cancellations
(:func:`~streams.offline.uplift.alerted_outcomes`, the replay report's rule); a restarted worker serves the
same counts from its stored states."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import pytest

from detectors.alerts import Alert
from streams.dev.producer import produce_live
from streams.dev.simulator import Simulation, SimulationConfig
from streams.events import parse_ts
from streams.offline.uplift import Uplift, alerted_outcomes
from tests.kafka_harness import WorkerFactory, WorkerProcess, metric_value, read_all, run, wait_until

pytestmark = pytest.mark.kafka

START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday; no simulator holiday in the weeks after it
DAYS = 70
HORIZON_DAYS = 14  # CHURNWATCH_HORIZON_DAYS: settled two weeks after the first alert
PERIOD_DAYS = 14
EXPERIMENT = "uplift-kafka"


def folded(worker: WorkerProcess) -> int:
    return int((worker.stats() or {}).get("events_folded", 0))


def folded_at_least(worker: WorkerProcess, count: int) -> bool:
    return folded(worker) >= count


def first_cancellations(events: list[dict[str, Any]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for event in events:
        if event["type"] == "billing" and event["kind"] == "subscription_canceled":
            ts = parse_ts(event["ts"], min_ts_ms=None)
            found[event["account_id"]] = min(ts, found.get(event["account_id"], ts))
    return found


def test_stats_and_gauges_show_the_uplift_settled_after_the_horizon(workers: WorkerFactory) -> None:
    events = list(Simulation(SimulationConfig(seed=21, accounts=60, days=DAYS, start=START)).events())
    cancellations = first_cancellations(events)
    workers.partitions = 2
    workers.extra_env.update(
        CHURNWATCH_EVALUATION_CLOCK="event",
        CHURNWATCH_HOLDOUT_SHARE="0.5",
        CHURNWATCH_HOLDOUT_EXPERIMENT=EXPERIMENT,
        CHURNWATCH_HORIZON_DAYS=str(HORIZON_DAYS),
    )
    settings = workers.settings()
    worker = workers.start()

    # Two weeks at a time, support and billing before the usage that moves the clock: a sweep then knows
    # every cancellation up to its midnight, as replay of the time-sorted file does (read behind usage, a
    # cancellation folded after the sweep that settles its account would count as stayed: docs/feedback.md).
    produced = 0
    for first_day in range(0, DAYS, PERIOD_DAYS):
        begin, end = START + timedelta(days=first_day), START + timedelta(days=first_day + PERIOD_DAYS)
        part = [e for e in events if begin <= datetime.fromisoformat(e["ts"]) < end]
        for topic_events in (
            [e for e in part if e["type"] != "usage"],
            [e for e in part if e["type"] == "usage"],
        ):
            produced += asyncio.run(produce_live(settings, topic_events, rate=None))
            wait_until(
                partial(folded_at_least, worker, produced), timeout=120, what=f"{produced} events folded"
            )
        if first_day == 0:  # no account alerted yet has had its horizon: nothing to estimate
            early = (worker.stats() or {})["uplift"]
            assert early["experiment"] == EXPERIMENT and early["share"] == 0.5 and early["estimate"] is None

    seen: list[Any] = [None]

    def agreed() -> dict[str, Any] | None:
        """The stats once they equal the analyst's redo from the alerts topic (the alerts of the last sweep
        reach the topic just after the sweep that counted them)."""
        uplift = (worker.stats() or {}).get("uplift")
        if not uplift or uplift["as_of"] is None:
            return None
        records = run(read_all(workers.kafka.bootstrap, settings.topics.alerts))
        alerts = [Alert.from_dict(orjson.loads(record.value)) for record in records]
        cohort = alerted_outcomes(
            alerts,
            cancellations,
            horizon_days=HORIZON_DAYS,
            as_of_ms=parse_ts(uplift["as_of"], min_ts_ms=None),
        )
        expected = Uplift.estimate(cohort)
        body = orjson.loads(orjson.dumps(expected.to_dict())) if expected is not None else None
        seen[0] = (uplift, body, cohort.pending, cohort.unstamped)
        done = cohort.unstamped == 0 and uplift["estimate"] == body and uplift["pending"] == cohort.pending
        return uplift if done and uplift["partitions_counted"] == [0, 1] else None

    try:
        uplift = wait_until(agreed, timeout=90, what="the stats' uplift equal to the redo from the alerts")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; last (stats, redo, pending, unstamped): {seen[0]}") from None
    # Both groups settled, most of the run behind the clock: a real comparison.
    estimate = uplift["estimate"]
    assert (
        estimate is not None
        and estimate["delivered"]["accounts"] >= 1
        and estimate["held_out"]["accounts"] >= 1
    )
    assert parse_ts(uplift["as_of"], min_ts_ms=None) >= int(
        (START + timedelta(days=DAYS - 3)).timestamp() * 1000
    )

    def gauges_agree() -> bool:
        text = worker.get("/metrics").text
        return (
            all(
                metric_value(text, "churnwatch_holdout_settled_accounts", group=group)
                == estimate[group]["accounts"]
                and metric_value(text, "churnwatch_holdout_churned_accounts", group=group)
                == estimate[group]["churned"]
                for group in ("delivered", "held_out")
            )
            and metric_value(text, "churnwatch_holdout_pending_accounts") == uplift["pending"]
        )

    wait_until(gauges_agree, timeout=30, what="the holdout gauges equal to the stats")

    # A restart (final checkpoint, then a new worker) serves the same counts from the stored states, before
    # any new event makes it sweep.
    worker.stop()
    restarted = workers.start()

    def recounted() -> dict[str, Any] | None:
        again = (restarted.stats() or {}).get("uplift")
        return again if again and again["partitions_counted"] == [0, 1] else None

    again = wait_until(recounted, timeout=90, what="the restarted worker's counts")
    assert again["estimate"] == estimate and again["pending"] == uplift["pending"]
