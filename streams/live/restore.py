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
   heartbeats are sent meanwhile) the store asks the broker for each changelog partition's end offset (one
   request) and reports ``end - 1`` as persisted. Faust's recovery then finds nothing to read for them.
2. **Before the rebalance ends** (``on_recovery_completed``, which Faust awaits before it marks the rebalance
   finished) the store reads each active partition from the first offset its rows do not reflect to that
   end, then applies what Faust may have read past it (held meanwhile), and records the last offset applied.
   The worker is not ready and its event reader does not start until this returns (``app.rebalancing`` is
   still set), so the reader resumes from checkpointed offsets never ahead of the state restored.
3. **Standby partitions** are read the same way, in the background once the worker is ready (the store
   reports their end as persisted too, so Faust's standby reading starts there). Records Faust reads for a
   partition whose batched restore is still running are held and applied after it. From then on Faust keeps
   the standbys current, record by record, through :meth:`RestoringStore.apply_changelog_batch`, which
   records the last offset applied per partition: a standby that becomes active restores only the records
   after what it holds, and one that stays a standby resumes where it was (Faust's in-memory store re-read
   standbys from the start at every rebalance, and a promoted standby its whole partition).

Records are applied in offset order per partition, and never older over newer: a Faust batch (a standby
buffer flushed late) skips records at or below the partition's applied offset. A partition neither active
nor standby any more loses its applied offset, so if it comes back it is restored from the start (the app
drops its rows). A restore stops at its next batch when a new assignment comes, which goes on from the
offset the rows reflect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores import memory
from faust.types import TP, EventT

from streams.live.kafka_client import assigning_consumer

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
                consumer = assigning_consumer(self.consumer_options, max_partition_fetch_bytes=4 * 2**20)
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
        self,
        starts: Mapping[TopicPartition, int],
        apply: ApplyRecords,
        *,
        ends: Mapping[TopicPartition, int],
        abandoned: Callable[[], bool],
    ) -> bool:
        """Hand every record from ``starts`` up to ``ends`` (exclusive) to ``apply``, batch by batch, in
        offset order per partition (none past an end); False when ``abandoned()`` said stop first."""
        consumer = await self.consumer()
        consumer.assign(list(starts))
        try:
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
                    end = ends[tp]
                    if records and records[-1].offset >= end:
                        records = [record for record in records if record.offset < end]
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
        self.pending: dict[TP, tuple[int, int]] = {}  # to restore in batches: (first offset, end offset)
        self.held: dict[TP, list[tuple[Any, Any, int]]] = {}  # Faust's records of pending partitions
        self.tracked: set[TP] = set()  # active and standby changelog partitions of the last assignment
        self.standbys: set[TP] = set()
        self.assignment = 0  # bumped at each assignment: a restore of an earlier one stops
        self.restoring = False  # active partitions are being restored (the worker is not ready meanwhile)
        self.restored_records = 0  # read by batched restores since the start
        self.restored_seconds = 0.0
        self._running: set[asyncio.Future[None]] = set()

    def persisted_offset(self, tp: TP) -> int | None:
        planned = self.pending.get(tp)
        return planned[1] - 1 if planned is not None else self.applied.get(tp)

    def standby_backlog(self) -> int:
        """Records the batched restore of standby partitions has still to read."""
        return sum(
            end - max(start, self.applied.get(tp, -1) + 1)
            for tp, (start, end) in self.pending.items()
            if tp in self.standbys
        )

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        """Plan the batched restore of the changelog partitions (see the module docstring, step 1)."""
        self.assignment += 1
        if self._running:
            await asyncio.wait(self._running)  # restores of an earlier assignment stop at their next batch
        topic = self.table.changelog_topic.get_topic_name()
        actives = {tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        self.standbys = {tp for tp in self.app.assignor.assigned_standbys() if tp.topic == topic}
        self.tracked = actives | self.standbys
        for tp in [tp for tp in self.applied if tp not in self.tracked]:
            del self.applied[tp]
        ends = await self.reader.ends(TopicPartition(tp.topic, tp.partition) for tp in self.tracked)
        self.pending, self.held = {}, {}
        for tp in self.tracked:
            end = ends[TopicPartition(tp.topic, tp.partition)]
            if end - 1 > self.applied.get(tp, -1):
                self.pending[tp] = (self.applied.get(tp, -1) + 1, end)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Restore the pending active partitions before Faust ends the rebalance (step 2), then the standby
        ones in the background (step 3).

        Unlike Faust's in-memory store, no rows are dropped here: standby rows stay (the app drops rows of
        partitions it neither owns nor stands by for)."""
        assignment = self.assignment
        actives = {tp: span for tp, span in self.pending.items() if tp not in self.standbys}
        standbys = {tp: span for tp, span in self.pending.items() if tp in self.standbys}
        if actives:
            self.restoring = True
            try:
                await self._track(self._restore(actives, assignment, standby=False))
            finally:
                self.restoring = False
        if standbys and self.assignment == assignment:
            self._track(self._restore(standbys, assignment, standby=True))

    def _track(self, restore: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        task = asyncio.ensure_future(restore)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _restore(self, spans: dict[TP, tuple[int, int]], assignment: int, *, standby: bool) -> None:
        """Read ``spans`` of the changelog into the rows, then the records Faust handed over meanwhile."""
        started = time.perf_counter()
        records = 0
        data, applied = self.data, self.applied

        def apply(tp: TopicPartition, batch: list[Any]) -> None:
            nonlocal records
            for record in batch:
                if record.value is None:
                    data.pop(record.key, None)
                else:
                    data[record.key] = record.value
            applied[TP(tp.topic, tp.partition)] = batch[-1].offset
            records += len(batch)

        starts = {TopicPartition(tp.topic, tp.partition): start for tp, (start, _) in spans.items()}
        ends = {TopicPartition(tp.topic, tp.partition): end for tp, (_, end) in spans.items()}
        done = False
        try:
            done = await self.reader.read(
                starts, apply, ends=ends, abandoned=lambda: self.assignment != assignment
            )
        except Exception:
            if not standby:
                raise  # the worker must not read on over state it could not restore: it stops (lifecycle.py)
            log.exception("restoring %s standby partitions %s failed", self.table_name, sorted(spans))
            for tp in spans:  # not kept up: a later assignment restores them from the start
                self.pending.pop(tp, None)
                self.held.pop(tp, None)
                self.applied.pop(tp, None)
                self.tracked.discard(tp)
        finally:
            seconds = time.perf_counter() - started
            self.restored_records += records
            self.restored_seconds += seconds
        if done:
            for tp in spans:
                self.pending.pop(tp, None)
                for key, value, offset in self.held.pop(tp, []):
                    self._apply(tp, key, value, offset)
        log.info(
            "restored %d %s changelog records of %d partitions in %.1f s%s",
            records,
            self.table_name,
            len(spans),
            seconds,
            "" if done else " (stopped)",
        )

    def apply_changelog_batch(
        self, batch: Iterable[EventT], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Apply records Faust read (standbys): in order, never at or below a partition's applied offset;
        those of a partition whose batched restore is pending are held until it is done."""
        pending, tracked = self.pending, self.tracked
        for event in batch:
            message = event.message
            tp = message.tp
            if tp not in tracked:
                continue
            key = to_key(event.key)
            value = None if message.value is None else to_value(event.value)
            if tp in pending:
                self.held.setdefault(tp, []).append((key, value, message.offset))
            else:
                self._apply(tp, key, value, message.offset)

    def _apply(self, tp: TP, key: Any, value: Any, offset: int) -> None:
        if offset <= self.applied.get(tp, -1):
            return
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value
        self.applied[tp] = offset

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
