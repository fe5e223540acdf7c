"""The accounts table's batched restore (streams/live/restore.py), against an in-memory changelog.

What Faust's recovery would read is told by ``persisted_offset``; what the batched restore reads and applies,
and what it lets through from Faust (standby records), decides the rows. The Kafka side (the reader's
``getmany`` loop, a standby taking over) is tested on the broker in tests/test_restore_kafka.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.types import TP

from streams.live.restore import ApplyRecords, ChangelogReader, RestoredTable, RestoringStore

TOPIC = "restore-test-accounts-changelog"


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None


class LogReader(ChangelogReader):
    """A changelog in memory: ``log[partition]`` is its records at offsets 0, 1, ..."""

    def __init__(self, log: dict[int, list[tuple[bytes, bytes | None]]], *, batch: int = 2) -> None:
        super().__init__({})
        self.log = log
        self.batch = batch
        self.reads: list[dict[int, int]] = []
        self.gate = asyncio.Event()  # cleared: reads wait
        self.gate.set()

    async def ends(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log[tp.partition]) for tp in tps}

    async def read(
        self,
        starts: Mapping[TopicPartition, int],
        apply: ApplyRecords,
        *,
        ends: Mapping[TopicPartition, int],
        abandoned: Callable[[], bool],
    ) -> bool:
        self.reads.append({tp.partition: offset for tp, offset in starts.items()})
        for tp, start in starts.items():
            await self.gate.wait()
            records = [Record(i, k, v) for i, (k, v) in enumerate(self.log[tp.partition])][start : ends[tp]]
            for first in range(0, len(records), self.batch):
                if abandoned():
                    return False
                apply(tp, records[first : first + self.batch])  # type: ignore[arg-type]
        return True

    async def stop(self) -> None:
        return None


@dataclass
class Assignment:
    actives: set[TP] = field(default_factory=set)
    standbys: set[TP] = field(default_factory=set)

    def assigned_actives(self) -> set[TP]:
        return self.actives

    def assigned_standbys(self) -> set[TP]:
        return self.standbys


def tp(partition: int) -> TP:
    return TP(TOPIC, partition)


def store_over(reader: LogReader, assignment: Assignment) -> RestoringStore:
    app = faust.App("restore-test", broker="kafka://127.0.0.1:1", store="memory://")
    app.__dict__["assignor"] = assignment
    table = RestoredTable(app, "accounts", reader=reader, partitions=2, key_type=bytes, value_type=bytes)
    store = table.data
    assert isinstance(store, RestoringStore)
    return store


def faust_event(partition: int, offset: int, key: bytes, value: bytes | None) -> Any:
    """What Faust's recovery hands a store: an event with its message."""
    message = SimpleNamespace(tp=tp(partition), offset=offset, value=value, partition=partition)
    return SimpleNamespace(key=key, value=value, message=message)


def same(value: Any) -> Any:
    return value


async def assign(
    store: RestoringStore, assignment: Assignment, actives: set[int], standbys: set[int]
) -> None:
    """A rebalance as Faust runs it: the assignment callback, then (recovery done) the completion."""
    assignment.actives = {tp(p) for p in actives}
    assignment.standbys = {tp(p) for p in standbys}
    await store.on_rebalance(set(), set(), set())
    await store.on_recovery_completed(assignment.actives, assignment.standbys)
    if store._running:  # standby partitions are restored in the background
        await asyncio.wait(store._running)


def test_a_start_restores_the_last_value_of_each_key_and_tells_faust_nothing_is_left() -> None:
    log: dict[int, list[tuple[bytes, bytes | None]]] = {
        0: [(b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2"), (b"c", b"c1"), (b"c", None)],
        1: [(b"d", b"d1")],
    }
    reader, assignment = LogReader(log), Assignment()
    store = store_over(reader, assignment)

    async def scenario() -> None:
        assignment.actives = {tp(0), tp(1)}
        await store.on_rebalance(set(), set(), set())
        # Faust's recovery, run between the two, finds every record persisted: it reads nothing itself.
        assert store.persisted_offset(tp(0)) == 4 and store.persisted_offset(tp(1)) == 0
        await store.on_recovery_completed(assignment.actives, set())

    asyncio.run(scenario())
    assert dict(store.data) == {b"a": b"a2", b"b": b"b1", b"d": b"d1"}  # the tombstone removed c
    assert store.applied == {tp(0): 4, tp(1): 0}
    assert store.persisted_offset(tp(0)) == 4  # what the rows reflect now
    assert store.restored_records == 6


def test_a_partition_kept_or_stood_by_is_read_on_from_its_applied_offset_not_from_the_start() -> None:
    log: dict[int, list[tuple[bytes, bytes | None]]] = {0: [(b"a", b"a1")], 1: [(b"b", b"b1"), (b"b", b"b2")]}
    reader, assignment = LogReader(log), Assignment()
    store = store_over(reader, assignment)
    asyncio.run(assign(store, assignment, {0}, {1}))
    # Faust applies the standby's records in buffers; a late buffer repeats one already applied.
    store.apply_changelog_batch(
        [faust_event(1, 0, b"b", b"b1"), faust_event(1, 1, b"b", b"b2"), faust_event(1, 0, b"b", b"b1")],
        same,
        same,
    )
    assert store.data[b"b"] == b"b2" and store.applied[tp(1)] == 1
    log[0].append((b"a", b"a2"))  # the owner writes on
    log[1].append((b"b", b"b3"))  # the standby's owner too, then dies: the standby takes over
    asyncio.run(assign(store, assignment, {0, 1}, set()))
    assert reader.reads[-1] == {0: 1, 1: 2}  # only what the rows do not reflect yet
    assert dict(store.data) == {b"a": b"a2", b"b": b"b3"}


def test_records_faust_hands_over_for_a_partition_being_restored_never_overwrite_newer_rows() -> None:
    log: dict[int, list[tuple[bytes, bytes | None]]] = {0: [(b"a", b"a1"), (b"a", b"a2"), (b"a", b"a3")]}
    reader, assignment = LogReader(log), Assignment()
    store = store_over(reader, assignment)

    async def scenario() -> None:
        assignment.actives = {tp(0)}
        await store.on_rebalance(set(), set(), set())
        # A standby buffer of an earlier assignment, flushed by Faust after the batched restore was planned.
        store.apply_changelog_batch([faust_event(0, 0, b"a", b"a1")], same, same)
        await store.on_recovery_completed(assignment.actives, set())
        store.apply_changelog_batch([faust_event(0, 1, b"a", b"a2")], same, same)  # and after it

    asyncio.run(scenario())
    assert store.data[b"a"] == b"a3"


def test_a_partition_that_leaves_is_restored_from_the_start_when_it_comes_back() -> None:
    log: dict[int, list[tuple[bytes, bytes | None]]] = {0: [(b"a", b"a1")], 1: [(b"b", b"b1")]}
    reader, assignment = LogReader(log), Assignment()
    store = store_over(reader, assignment)
    asyncio.run(assign(store, assignment, {0, 1}, set()))
    asyncio.run(assign(store, assignment, {0}, set()))
    assert tp(1) not in store.applied and store.persisted_offset(tp(1)) is None
    store.data.pop(b"b")  # the app drops rows of partitions it neither owns nor stands by for
    asyncio.run(assign(store, assignment, {0, 1}, set()))
    assert reader.reads[-1] == {1: 0}
    assert dict(store.data) == {b"a": b"a1", b"b": b"b1"}


def test_a_restore_stopped_by_a_new_assignment_goes_on_from_where_it_stopped() -> None:
    log: dict[int, list[tuple[bytes, bytes | None]]] = {0: [(b"k%d" % i, b"v%d" % i) for i in range(6)]}
    reader, assignment = LogReader(log, batch=2), Assignment()
    store = store_over(reader, assignment)
    batches = 0
    original = reader.read

    async def interrupted(
        starts: Any, apply: ApplyRecords, *, ends: Any, abandoned: Callable[[], bool]
    ) -> bool:
        def counting(tp_: TopicPartition, records: list[Any]) -> None:
            nonlocal batches
            apply(tp_, records)
            batches += 1
            if batches == 2:
                store.assignment += 1  # what a new assignment's on_rebalance does first

        return await original(starts, counting, ends=ends, abandoned=abandoned)

    reader.read = interrupted  # type: ignore[method-assign]
    asyncio.run(assign(store, assignment, {0}, set()))
    assert store.applied[tp(0)] == 3 and store.pending  # two batches applied, then it stopped
    reader.read = original  # type: ignore[method-assign]
    asyncio.run(assign(store, assignment, {0}, set()))
    assert reader.reads[-1] == {0: 4}
    assert len(store.data) == 6 and not store.pending


def test_standby_partitions_are_restored_after_the_worker_is_ready_holding_what_faust_reads_meanwhile() -> (
    None
):
    log: dict[int, list[tuple[bytes, bytes | None]]] = {0: [(b"a", b"a1")], 1: [(b"b", b"b1"), (b"b", b"b2")]}
    reader, assignment = LogReader(log), Assignment()
    store = store_over(reader, assignment)

    async def scenario() -> None:
        assignment.actives, assignment.standbys = {tp(0)}, {tp(1)}
        await store.on_rebalance(set(), set(), set())
        assert store.persisted_offset(tp(1)) == 1  # Faust's standby reading starts after the batched part
        await store.on_recovery_completed(assignment.actives, assignment.standbys)
        reader.gate.clear()  # the standby restore has not read yet, and waits
        assert store.data.get(b"a") == b"a1" and store.standby_backlog() == 2  # ready: the actives are in
        # Faust reads on from the end the store gave it: the record written meanwhile is held, not applied.
        log[1].append((b"b", b"b3"))
        store.apply_changelog_batch(
            [faust_event(1, 1, b"b", b"b2"), faust_event(1, 2, b"b", b"b3")], same, same
        )
        assert b"b" not in store.data
        reader.gate.set()
        await asyncio.wait(store._running)

    asyncio.run(scenario())
    assert store.data[b"b"] == b"b3" and store.applied[tp(1)] == 2 and not store.held
    assert store.standby_backlog() == 0
