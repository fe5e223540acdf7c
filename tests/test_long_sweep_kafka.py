"""A sweep longer than the Kafka session timeout, on the real broker: the worker stays in its group and its
endpoints answer while it sweeps (streams/engine/steps.py), and every event is folded once.

Before, a sweep ran as one call on the event loop: at ~0.2 ms an account, 100 k accounts held it ~22 s (and
40 s on a loaded machine), past the 30 s session timeout: no heartbeat, the broker evicted the worker and the
group rebalanced; no health or metrics answer either.
"""

from __future__ import annotations

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


def test_a_sweep_longer_than_the_session_timeout_keeps_the_worker_in_its_group(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    mark = tmp_path / "sweeping"
    worker = workers.start(
        module="tests.slow_sweep_worker",
        SWEEP_MARK=str(mark),
        SLOW_OBSERVE_SECONDS=str(OBSERVE_S),
        CHURNWATCH_SESSION_TIMEOUT_SECONDS=str(SESSION_TIMEOUT_S),
        CHURNWATCH_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    events = simulated_events(accounts=ACCOUNTS, days=2, seed=61)
    produce_events(workers, events)
    wait_until(mark.exists, timeout=120, what="a sweep begun")
    # The sweep has ~12 s to go: the worker answers meanwhile (an HTTP timeout of 5 s).
    assert health(worker, "/churnwatch/live/") == 200, worker.log()[-3000:]
    assert (worker.stats() or {}).get("events_folded") is not None
    wait_for_windows(worker, fold_offline(events), timeout=180)
    metrics = worker.get("/metrics").text
    assert (metric_value(metrics, "churnwatch_sweep_duration_seconds_count") or 0) >= 1
    assert (metric_value(metrics, "churnwatch_sweep_duration_seconds_sum") or 0) > SESSION_TIMEOUT_S
    assert metric_value(metrics, DUPLICATES_METRIC) == 0
    # The first assignment only (the event and outbox readers each log it): no eviction, no rebalance.
    assert "assigned partitions [0, 1, 2, 3] (generation 1)" in worker.log()
    assert "(generation 2)" not in worker.log(), worker.log()[-3000:]
