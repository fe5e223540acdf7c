"""Fast restore of the ``accounts`` table: its changelog read in batches, not record by record through Faust.

Faust restores a changelog-backed table by iterating every changelog record through its consumer, an event
and a queue (~5-14 k records/s here), so a worker owning 1 M accounts needed minutes before it was ready.
:class:`RestoringStore` (the ``accounts`` table's store, in memory like Faust's own) restores the partitions
this worker becomes active for with a :class:`ChangelogReader`: its own group-less ``AIOKafkaConsumer``
fetching the changelog partitions with ``getmany`` (hundreds of thousands of records/s), each record's raw
key and value put into the rows as they are (nothing decoded).

Faust stays the group and assignment engine, and its recovery still runs; the store only tells it, through
the ``persisted_offset`` a persistent store (RocksDB) would report, that there is nothing for it to read:

1. **At the assignment** (``on_rebalance``, inside the group's assignment callback, so it must be quick: no
   heartbeats are sent meanwhile) the store asks the broker for each active changelog partition's end offset
   (one request) and reports ``end - 1`` as persisted. Faust's recovery then finds nothing to read for them.
2. **Before the rebalance ends** (``on_recovery_completed``, which Faust awaits before it marks the rebalance
   finished) the store reads each such partition from the first offset its rows do not reflect to the
   partition's end *as of then* (at least the end Faust saw), and records the last offset applied. The worker
   is not ready and its event reader does not start until this returns (``app.rebalancing`` is still set), so
   the reader resumes from checkpointed offsets that are never ahead of the state restored.
3. **Standby replicas** stay Faust's: it reads their changelog partitions and applies records in buffers
   through :meth:`RestoringStore.apply_changelog_batch`, which records the last offset applied per partition.
   So a standby that becomes active restores only the records after what it already holds, and a standby
   whose assignment stays resumes where it was (Faust's in-memory store re-read standbys from the start at
   every rebalance, and a promoted standby re-read its whole partition).

Records are applied in offset order per partition, and never older over newer: a Faust batch (a standby
buffer flushed late) skips records at or below the partition's applied offset and records of partitions
whose batched restore is pending (that restore reads them anyway). A partition neither active nor standby any
more loses its applied offset, so if it comes back it is restored from the start (the app drops its rows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores import memory
from faust.types import TP, EventT

log = logging.getLogger(__name__)

ApplyRecords = Callable[[TopicPartition, list[Any]], None]
# getmany returned nothing for a partition short of its end this many times in a row, each after a fetch
# response for it: the rest of the partition was compacted away (a tombstone at the end removed).
EMPTY_ANSWERS_AT_END = 3


class ChangelogReader:
    """A group-less consumer that reads changelog partitions in batches (started at first use)."""

    def __init__(self, consumer_options: Mapping[str, Any], *, max_records: int = 10_000) -> None:
        self.consumer_options = dict(consumer_options)
        self.max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def consumer(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    **self.consumer_options,
                    group_id=None,
                    enable_auto_commit=False,
                    # "earliest": with "latest", the reset assign() starts can win over a seek
                    auto_offset_reset="earliest",
                    max_partition_fetch_bytes=4 * 1024 * 1024,
                )
                await consumer.start()
                self._consumer = consumer
            return self._consumer

    async def ends(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's end offset (the next offset to be written)."""
        wanted = list(tps)
        if not wanted:
            return {}
        consumer = await self.consumer()
        ends: dict[TopicPartition, int] = await consumer.end_offsets(wanted)
        return ends

    async def read(
        self, starts: Mapping[TopicPartition, int], apply: ApplyRecords, *, abandoned: Callable[[], bool]
    ) -> bool:
        """Hand every record from ``starts`` to each partition's current end to ``apply``, batch by batch, in
        offset order per partition; False when ``abandoned()`` said stop first."""
        consumer = await self.consumer()
        consumer.assign(list(starts))
        try:
            ends = await consumer.end_offsets(list(starts))
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
            left = {tp for tp, offset in starts.items() if offset < ends[tp]}
            empty_answers = dict.fromkeys(left, 0)
            polled = {tp: consumer.last_poll_timestamp(tp) for tp in left}
            while left:
                if abandoned():
                    return False
                batches = await consumer.getmany(*left, timeout_ms=500, max_records=self.max_records)
                drained = sum(len(records) for records in batches.values()) < self.max_records
                for tp, records in batches.items():
                    if records:
                        apply(tp, records)
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
                        continue
                    answered = consumer.last_poll_timestamp(tp) != polled[tp]
                    polled[tp] = consumer.last_poll_timestamp(tp)
                    quiet = drained and answered and not batches.get(tp)
                    empty_answers[tp] = empty_answers[tp] + 1 if quiet else 0
                    if empty_answers[tp] >= EMPTY_ANSWERS_AT_END:
                        left.discard(tp)
            return True
        finally:
            consumer.assign([])

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


class RestoringStore(memory.Store):
    """Faust's in-memory store, restored in batches by a :class:`ChangelogReader` (see the module docstring).

    ``reader`` is set by :class:`RestoredTable` right after Faust creates the store.
    """

    reader: ChangelogReader

    def __post_init__(self) -> None:
        super().__post_init__()
        self.applied: dict[TP, int] = {}  # last changelog offset the rows reflect, per partition
        self.pending: dict[TP, int] = {}  # active partitions to restore in batches: from this offset
        self.claimed: dict[TP, int] = {}  # what Faust is told is persisted for those
        self.tracked: set[TP] = set()  # active and standby changelog partitions of the last assignment
        self.assignment = 0  # bumped at each assignment: a restore of an earlier one stops
        self.restoring = False
        self.restored_records = 0  # read by batched restores since the start
        self.restored_seconds = 0.0
        self._restore_done = asyncio.Event()
        self._restore_done.set()

    def persisted_offset(self, tp: TP) -> int | None:
        return self.claimed.get(tp, self.applied.get(tp))

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        """Plan the batched restore of the active changelog partitions (see the module docstring, step 1)."""
        self.assignment += 1
        await self._restore_done.wait()  # one of an earlier assignment stops at its next batch
        topic = self.table.changelog_topic.get_topic_name()
        actives = {tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        standbys = {tp for tp in self.app.assignor.assigned_standbys() if tp.topic == topic}
        self.tracked = actives | standbys
        for tp in [tp for tp in self.applied if tp not in self.tracked]:
            del self.applied[tp]
        ends = await self.reader.ends(TopicPartition(tp.topic, tp.partition) for tp in actives)
        self.pending, self.claimed = {}, {}
        for tp in actives:
            end = ends[TopicPartition(tp.topic, tp.partition)]
            if end - 1 > self.applied.get(tp, -1):
                self.pending[tp] = self.applied.get(tp, -1) + 1
                self.claimed[tp] = end - 1

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Restore the pending partitions in batches before Faust ends the rebalance (step 2).

        Unlike Faust's in-memory store, no rows are dropped here: standby rows stay (the app drops rows of
        partitions it neither owns nor stands by for)."""
        if not self.pending:
            return
        assignment = self.assignment
        self.restoring = True
        self._restore_done.clear()
        started = time.perf_counter()
        records = 0
        data = self.data
        applied = self.applied

        def apply(tp: TopicPartition, batch: list[Any]) -> None:
            nonlocal records
            for record in batch:
                if record.value is None:
                    data.pop(record.key, None)
                else:
                    data[record.key] = record.value
            applied[TP(tp.topic, tp.partition)] = batch[-1].offset
            records += len(batch)

        starts = {TopicPartition(tp.topic, tp.partition): offset for tp, offset in self.pending.items()}
        try:
            done = await self.reader.read(starts, apply, abandoned=lambda: self.assignment != assignment)
        finally:
            self.restoring = False
            self._restore_done.set()
        seconds = time.perf_counter() - started
        self.restored_records += records
        self.restored_seconds += seconds
        if done:
            self.pending, self.claimed = {}, {}
        log.info(
            "restored %d %s changelog records of %d partitions in %.1f s%s",
            records,
            self.table_name,
            len(starts),
            seconds,
            "" if done else " (stopped: partitions reassigned)",
        )

    def apply_changelog_batch(
        self, batch: Iterable[EventT], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Apply records Faust read (standbys): in order, never at or below a partition's applied offset."""
        data, applied, pending, tracked = self.data, self.applied, self.pending, self.tracked
        for event in batch:
            message = event.message
            tp = message.tp
            if tp in pending or tp not in tracked or message.offset <= applied.get(tp, -1):
                continue
            key = to_key(event.key)
            if message.value is None:
                data.pop(key, None)
            else:
                data[key] = to_value(event.value)
            applied[tp] = message.offset

    async def on_start(self) -> None:
        await self.reader.consumer()  # connected before the first assignment callback, which must be quick

    async def on_stop(self) -> None:
        await self.reader.stop()


class RestoredTable(faust.Table):  # type: ignore[misc]  # faust's Table is untyped generics
    """A Faust table whose store is a :class:`RestoringStore` reading with ``reader``."""

    def __init__(self, app: faust.App, name: str, *, reader: ChangelogReader, **kwargs: Any) -> None:
        super().__init__(app, name=name, beacon=app.tables.beacon, **kwargs)
        self.reader = reader

    def _new_store(self) -> RestoringStore:
        store = RestoringStore(
            "memory://",
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_type=self.value_type,
            value_serializer=self.value_serializer,
            options=self.options,
        )
        store.reader = self.reader
        return store
