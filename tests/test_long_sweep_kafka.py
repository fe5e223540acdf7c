"""A sweep longer than the readiness bound and the Kafka session timeout, on the real broker: the worker's
endpoints answer while it sweeps (streams/engine/steps.py), ready and live while the sweep progresses even
though its reader fetches nothing meanwhile; it stays in its group, and every event is folded once.

Before, a sweep ran as one call on the event loop: at ~0.1-0.3 ms an account, 100 k accounts held it for
22-41 s, and no health, stats or metrics request was answered meanwhile (this test's requests timed out).
The group itself survived such a block (Faust heartbeats from its consumer's own thread): the last
assertion guards that, it did not fail before.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.kafka_harness import WorkerFactory, metric_value, wait_until
from tests.test_faults import (
    DUPLICATES_METRIC,
    fold_offline,
    produce_events,
    simulated_events,
    wait_for_windows,
)
from tests.test_health_kafka import health

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT_S = 6  # the broker's smallest (group.min.session.timeout.ms)
ACCOUNTS = 240
OBSERVE_S = 0.05  # per account: a sweep of the 240 takes 12 s, twice the session timeout
READ_WITHIN_S = 2  # CHURNWATCH_READY_READ_WITHIN_SECONDS


def test_a_worker_answers_ready_and_live_through_a_sweep_longer_than_the_session_timeout(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    mark = tmp_path / "sweeping"
    worker = workers.start(
        module="tests.slow_sweep_worker",
        SWEEP_MARK=str(mark),
        SLOW_OBSERVE_SECONDS=str(OBSERVE_S),
        CHURNWATCH_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT_S),
        CHURNWATCH_HEARTBEAT_INTERVAL_SECONDS="1",
        CHURNWATCH_READY_READ_WITHIN_SECONDS=str(READ_WITHIN_S),
    )
    events = simulated_events(accounts=ACCOUNTS, days=2, seed=61)
    produce_events(workers, events)
    wait_until(mark.exists, timeout=120, what="a sweep begun")
    began = float(mark.read_text())
    # Past the readiness bound: no fetch since the sweep began, but its steps progress (~8 s to go).
    wait_until(lambda: time.time() > began + READ_WITHIN_S + 2, timeout=30, what="the sweep under way")
    # The worker answers meanwhile (an HTTP timeout of 5 s), ready and live.
    assert health(worker, "/churnwatch/live/") == 200, worker.log()[-3000:]
    assert health(worker, "/churnwatch/ready/") == 200, worker.log()[-3000:]
    assert (worker.stats() or {}).get("events_folded") is not None
    wait_for_windows(worker, fold_offline(events), timeout=180)
    metrics = worker.get("/metrics").text
    assert (metric_value(metrics, "churnwatch_sweep_duration_seconds_count") or 0) >= 1
    assert (metric_value(metrics, "churnwatch_sweep_duration_seconds_sum") or 0) > SESSION_TIMEOUT_S
    assert metric_value(metrics, DUPLICATES_METRIC) == 0
    # The first assignment only (the event and outbox readers each log it): no eviction, no rebalance.
    assert "assigned partitions [0, 1, 2, 3] (generation 1)" in worker.log()
    assert "(generation 2)" not in worker.log(), worker.log()[-3000:]
