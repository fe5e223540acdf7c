"""The accounts table's batched restore on the real broker: a scale-out, and a standby taking over a kill -9.

The state a worker serves after either must equal the offline fold of every event; the standby that takes
over restores only the changelog records after those it already holds, not its new partitions from the start.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kafka_harness import WorkerFactory, WorkerProcess, end_offsets, run, wait_until
from tests.test_faults import (
    ALL_PARTITIONS,
    fold_offline,
    owns_everything,
    produce_events,
    simulated_events,
    wait_for_windows,
)

pytestmark = pytest.mark.kafka


def restore(worker: WorkerProcess) -> dict[str, Any]:
    stats = worker.stats()
    assert stats is not None, worker.log()[-3000:]
    return stats["restore"]  # type: ignore[no-any-return]


def changelog_records(workers: WorkerFactory, partitions: list[int]) -> int:
    topic = f"{workers.settings().topics.app_id}-accounts-changelog"
    ends = run(end_offsets(workers.kafka.bootstrap, topic))
    return sum(ends.get(partition, 0) for partition in partitions)


def test_a_standby_takes_over_a_kill_9_with_every_state_reading_only_what_it_lacked(
    workers: WorkerFactory,
) -> None:
    workers.extra_env["CHURNWATCH_STANDBY_REPLICAS"] = "1"
    events = simulated_events(accounts=40, days=6, seed=71)
    expected = fold_offline(events)
    first = workers.start()
    produce_events(workers, events)
    wait_for_windows(first, expected, timeout=60)
    assert restore(first)["records"] == 0  # a fresh start: nothing to restore

    # Scale out: the second worker restores its two partitions in batches, and stands by for the other two.
    survivor = workers.start(wait_ready=False)

    def split() -> bool:
        a, b = first.stats() or {}, survivor.stats() or {}
        # "partitions" follow the assignment at once; "ready" waits for the restore.
        owned = (a.get("partitions") or []) + (b.get("partitions") or [])
        halves = len(a.get("partitions") or []) == len(b.get("partitions") or []) == 2
        return bool(a.get("ready") and b.get("ready") and halves and sorted(owned) == ALL_PARTITIONS)

    wait_until(split, timeout=90, what="both workers ready with the partitions split")
    moved = (survivor.stats() or {})["partitions"]
    assert restore(survivor)["records"] >= changelog_records(workers, moved) > 0
    wait_until(
        lambda: restore(survivor)["standby_records_left"] == 0,
        timeout=60,
        what="the survivor's standby partitions caught up",
    )
    restored_before = restore(survivor)["records"]
    victim, victim_partitions = first, (first.stats() or {})["partitions"]
    victim_records = changelog_records(workers, victim_partitions)
    assert victim_records > 0

    victim.kill()
    wait_until(lambda: owns_everything(survivor), timeout=60, what="the survivor owning every partition")
    wait_for_windows(survivor, expected, timeout=30)
    # Promoted standbys hold their rows: the takeover restores at most what was written after they caught
    # up (the victim's last checkpoint), not the victim's partitions from the start.
    read_at_takeover = restore(survivor)["records"] - restored_before
    assert read_at_takeover < victim_records, (read_at_takeover, victim_records)
    print(f"\n[standby takeover] read {read_at_takeover} of the victim's {victim_records} changelog records")
