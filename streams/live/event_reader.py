"""Batch ingest of the event topics: Faust decides who owns which partition, this reader fetches them.

Iterating every record through a Faust stream costs ~200 µs of framework work per event (an Event, a queue
hop, an ack and several tasks per record; see docs/performance.md), and Faust's consumer, even when handed raw
messages, runs two asyncio tasks per record. This reader instead fetches the event topics with its own
``AIOKafkaConsumer`` in batches of up to ``batch_max_events`` records, shared out among the partitions with
records (:mod:`streams.live.fair_fetch`), and hands each batch to ``process``.

Faust still owns everything distributed: group membership, the partition assignment (the event topics are
co-partitioned with the alerts topic and the tables, so the partitions Faust assigns for those are the ones
this reader reads), changelog-backed tables, recovery and standbys. The reader follows the assignment:

* **Offsets live in the state.** A checkpoint (when its :class:`~streams.live.checkpoint_pace.CheckpointPace`
  says so, and when partitions are revoked) calls ``checkpoint(positions)``: the app writes every changed
  account state to the changelog, flushes the producer, then writes each partition's next offsets into the
  same changelog partition. A new owner recovers the table and reads on from the offsets it finds there, so
  the offsets it resumes from are never ahead of the state it recovered. States may be newer than the offsets
  (a crash between the two writes); the per-account applied offsets make re-reading those records harmless.
  The checkpoint runs beside the reading: the reader goes on fetching and processing batches while the app
  writes (so an urgent event does not wait for a checkpoint of ~50 k states; its batch folds between the
  writes), starts no other checkpoint before it ends, and waits for it before it lets partitions go. Its
  error stops the reader at its next turn.
* **Rebalances.** When Faust revokes partitions (and on a graceful stop) the reader takes its lock (so no
  batch is half folded), checkpoints, drops its assignment and tells the app to forget cached states
  (``on_released``). It reads again only after Faust has finished the rebalance and recovered the tables, from
  the checkpointed offsets.
* **Restarts and retries.** Before reading on from checkpointed offsets, the reader hands ``remember`` up to
  ``remember_records`` records before them (bounded by ``REMEMBER_SECONDS``), so a producer's
  retry of an event folded before the restart is still recognised as a duplicate after it.
* **Failures.** A batch that raises while folding crashes the worker; nothing after the last checkpoint
  counts, and the next owner reads it again. A batch aiokafka cannot decode (unknown codec, corrupt batch) is
  skipped, logged and reported to ``on_skipped``; the rest is read on (:mod:`streams.live.poison`). A
  consumer the broker stopped answering with partitions to read is replaced (:mod:`.reader_rebuild`).

Size: ~430 lines, over the ~400 aim since the checkpoint runs beside the reading (2026-12-07): its start,
its wait and its error stay here, with the lock and the positions they go with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from streams.live.checkpoint_pace import CheckpointPace, records_waiting
from streams.live.fair_fetch import getmany_fair, raw_records
from streams.live.ingest import RawRecord
from streams.live.kafka_client import assigning_consumer
from streams.live.poison import DECODE_ERRORS, PoisonBatch, read_around
from streams.live.reader_rebuild import StallWatch, replacement, resume_at, stop_quietly

log = logging.getLogger(__name__)

ProcessRecords = Callable[[list[RawRecord]], Awaitable[None]]
# partition -> {topic: next offset to read}
Positions = dict[int, dict[str, int]]
# Takes what the checkpoint of these positions writes; returns the writing, to run beside the reading.
Checkpoint = Callable[[Positions], Awaitable[Awaitable[None]]]
Fetched = dict[TopicPartition, list[Any]]
READ_AROUND_WAIT_MS = 5_000
REMEMBER_SECONDS = 10.0  # at most this long re-reading the records before the checkpoint, per assignment


class EventReader:
    """Reads the event-topic partitions Faust assigned to this worker, in batches, and checkpoints them.

    Parameters
    ----------
    app
        The Faust app whose assignment and rebalances the reader follows; the reader runs as its task.
    consumer_options
        ``AIOKafkaConsumer`` keyword arguments (bootstrap servers, security).
    type_by_topic
        Event topic name -> event type.
    owned_partitions
        The partition numbers this worker is active for (asked after each rebalance).
    stored_positions
        ``stored_positions(partition)`` returns the checkpointed ``{topic: next offset}`` (empty if none).
    process
        Folds one batch of records (in partition order).
    checkpoint
        Takes the state of everything processed (at once, before the next batch), and returns the work that
        makes it durable and then records ``positions``. That work runs while later batches are processed
        (their changes are the next checkpoint's).
    checkpoint_pace
        Says after each batch whether to checkpoint (told the records read and those still waiting).
    on_released
        Called after the last checkpoint before the reader lets its partitions go.
    on_assigned
        Called with the partitions before the reader starts reading them.
    on_skipped
        Called with the event type and the batch when the reader skips a batch it cannot decode.
    remember, remember_records
        Called with the records just before the checkpointed offsets when an assignment resumes from them,
        ``remember_records`` in all, shared evenly by the partitions (the event deduplicator learns them;
        nothing is folded).
    rebuild_after_seconds, on_rebuilt
        Replace the consumer when the broker answered none of its fetches for this long while partitions are
        assigned; ``on_rebuilt`` is called after each replacement.
    interrupt_on_revoke
        Cancel a batch still being processed when partitions are revoked, instead of waiting for it (for
        batches that can take minutes, like deliveries retrying a sink that is down, and that are safe to
        repeat). Its records are read again from the last checkpoint by the next owner.
    """

    def __init__(
        self,
        app: faust.App,
        consumer_options: Mapping[str, Any],
        *,
        type_by_topic: Mapping[str, str],
        batch_max_events: int,
        batch_within_seconds: float,
        checkpoint_pace: CheckpointPace,
        owned_partitions: Callable[[], list[int]],
        stored_positions: Callable[[int], Mapping[str, int]],
        process: ProcessRecords,
        checkpoint: Checkpoint,
        on_released: Callable[[], None],
        on_assigned: Callable[[list[int]], None] = lambda partitions: None,
        interrupt_on_revoke: bool = False,
        on_skipped: Callable[[str, PoisonBatch], None] = lambda event_type, poison: None,
        remember: Callable[[list[RawRecord]], None] | None = None,
        remember_records: int = 0,
        rebuild_after_seconds: float = 60.0,
        on_rebuilt: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.consumer_options = dict(consumer_options)
        self.type_by_topic = dict(type_by_topic)
        self.batch_max_events = batch_max_events
        self.batch_within_ms = max(1, int(batch_within_seconds * 1000))
        self.pace = checkpoint_pace
        self.owned_partitions = owned_partitions
        self.stored_positions = stored_positions
        self.process = process
        self.checkpoint = checkpoint
        self.on_released = on_released
        self.on_assigned = on_assigned
        self.interrupt_on_revoke = interrupt_on_revoke
        self.on_skipped = on_skipped
        self.remember = remember
        self.remember_records = remember_records
        self.stall_watch = StallWatch(rebuild_after_seconds)
        self.on_rebuilt = on_rebuilt
        self._stalled = False
        self.revoking = False
        self._inflight: asyncio.Future[None] | None = None
        self._checkpointing: asyncio.Future[None] | None = None  # a checkpoint beside the reading
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()
        # The Faust consumer generation whose assignment we read; None while we own nothing.
        self.generation: int | None = None
        self.positions: dict[TopicPartition, int] = {}
        self._handing_over: dict[TopicPartition, int] = {}  # next offsets once the batch in process is folded
        self.checkpointed: dict[TopicPartition, int] = {}
        # For health checks (streams/live/health.py): when the loop last completed a turn, and when the broker
        # last answered a fetch (records or an empty poll) or there was nothing assigned to read.
        self.last_turn = self.last_read = time.monotonic()
        self._last_poll_ms = 0
        app.task(self._run)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        # Sent on a graceful stop after Faust stopped its consumer, before the producer's last flush.
        app.on_before_shutdown.connect(self._on_shutdown)  # type: ignore[arg-type]

    def _new_consumer(self) -> AIOKafkaConsumer:
        return assigning_consumer(self.consumer_options, max_partition_fetch_bytes=4 * 2**20)

    async def _run(self) -> None:
        consumer = self._new_consumer()
        await consumer.start()
        self.consumer = consumer
        try:
            while not self.app.should_stop:
                await self._step(consumer)
                self.last_turn = time.monotonic()
                if self._stalled:
                    consumer = await self._replace(consumer)
        finally:
            self.consumer = None
            await consumer.stop()

    async def _replace(self, consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
        """A new consumer reading on from the folded offsets, or ``consumer`` when none could start."""
        self._stalled = False
        self.stall_watch.reset()
        new = await replacement(
            self._new_consumer,
            timeout_s=self.stall_watch.after_s,
            describe=", ".join(sorted(set(self.type_by_topic.values()))),
            age_s=time.monotonic() - self.last_read,
        )
        if new is None:
            return consumer
        async with self.lock:  # not while a revocation releases the partitions
            resume_at(new, self.positions)
            self.consumer = new
        self.on_rebuilt()
        await stop_quietly(consumer)
        return new

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        app = self.app
        if app.rebalancing:
            await asyncio.sleep(0.05)
            return
        generation = app.consumer_generation_id
        if generation != self.generation:
            async with self.lock:
                if not app.rebalancing and app.consumer_generation_id == generation:
                    await self._follow_assignment(consumer, generation)
            return
        if not self.positions:
            await asyncio.sleep(0.1)
            self.last_read = time.monotonic()  # nothing assigned: nothing to fall behind on
            return
        fetched, poison = await self._fetch(consumer, generation)
        self._note_read(consumer, bool(fetched))
        async with self.lock:
            if self.generation != generation:
                return  # revoked while fetching: the next owner (maybe us) reads these from the checkpoint
            if fetched:
                await self._process(fetched)
            if poison is not None and not self.revoking:  # else the batch before it may be unfinished
                self._skip(poison)
            if self._checkpointing is not None and self._checkpointing.done():
                await self._checkpointed()  # its error, if it failed, stops the reader here
            if (
                self._checkpointing is None
                and self.positions != self.checkpointed
                and self.pace.due(fetched=bool(fetched), waiting=records_waiting(consumer, self.positions))
            ):
                await self._checkpoint(beside=True)

    async def _fetch(self, consumer: AIOKafkaConsumer, generation: int) -> tuple[Fetched, PoisonBatch | None]:
        """The next batch; around a batch aiokafka cannot decode, the records before it and the batch."""
        try:
            # Shared by the partitions: one far ahead of the others would hold the event clock back.
            fetched = await getmany_fair(
                consumer, timeout_ms=self.batch_within_ms, max_records=self.batch_max_events
            )
        except DECODE_ERRORS as exc:
            try:
                # Records before the batch exist: wait for their fetch longer than for a batch to fill.
                return await read_around(consumer, exc, dict(self.positions), timeout_ms=READ_AROUND_WAIT_MS)
            except IllegalStateError:
                if self.generation == generation:
                    raise
                return {}, None  # revoked while reading around it: the next owner meets the batch again
        return fetched, None

    def _note_read(self, consumer: AIOKafkaConsumer, fetched: bool) -> None:
        """The broker answered: records came, or a fetch response arrived since the last look (an empty poll).

        An empty ``getmany`` alone proves nothing: it also returns empty while the broker is unreachable.
        """
        polled = max((consumer.last_poll_timestamp(tp) or 0 for tp in consumer.assignment()), default=0)
        answered = fetched or polled > self._last_poll_ms
        if answered:
            self.last_read = time.monotonic()
        self._stalled = self.stall_watch.fetched(answered=answered)
        self._last_poll_ms = polled

    def _skip(self, poison: PoisonBatch) -> None:
        """Read on after ``poison`` (its offsets are checkpointed like processed ones), and say so."""
        if self.positions.get(poison.tp, poison.next_offset) < poison.next_offset:
            self.positions[poison.tp] = poison.next_offset
        log.error("event reader %s", poison.describe())
        self.on_skipped(self.type_by_topic[poison.tp.topic], poison)

    async def _process(self, fetched: Mapping[TopicPartition, list[Any]]) -> None:
        records = raw_records(fetched, self.type_by_topic)
        self._handing_over = {tp: batch[-1].offset + 1 for tp, batch in fetched.items() if batch}
        self._inflight = asyncio.ensure_future(self.process(records))
        try:
            await self._inflight
        except asyncio.CancelledError:
            if self.revoking and self._inflight.cancelled():
                return  # interrupted for a rebalance (the reader's own task was not cancelled)
            raise
        finally:
            self._inflight = None
            self._handing_over = {}
        for tp, batch in fetched.items():
            self.positions[tp] = batch[-1].offset + 1
        self.pace.read(len(records))

    async def _checkpoint(self, *, beside: bool) -> None:
        """Have ``checkpoint`` take what it writes now; then let it write and record the positions (those of
        partitions that moved since the last one) beside the reading, or wait for it."""
        positions = dict(self.positions)
        by_partition: Positions = {}
        for tp, offset in positions.items():
            by_partition.setdefault(tp.partition, {})[tp.topic] = offset
        changed = {
            partition: offsets
            for partition, offsets in by_partition.items()
            if any(
                self.checkpointed.get(TopicPartition(topic, partition)) != offset
                for topic, offset in offsets.items()
            )
        }
        recorded = self._recorded(await self.checkpoint(changed), positions)
        if beside:
            self._checkpointing = asyncio.ensure_future(recorded)
        else:
            await recorded

    async def _recorded(self, writing: Awaitable[None], positions: dict[TopicPartition, int]) -> None:
        await writing
        self.checkpointed = positions
        self.pace.checkpointed()

    async def _checkpointed(self) -> None:
        """Wait for the checkpoint running beside the reading, if there is one (raises what it raised)."""
        checkpointing, self._checkpointing = self._checkpointing, None
        if checkpointing is not None:
            await checkpointing

    async def _follow_assignment(self, consumer: AIOKafkaConsumer, generation: int) -> None:
        await self._checkpointed()  # a revocation waited for it already, unless it was missed
        partitions = self.owned_partitions()
        self.on_assigned(partitions)
        tps = [TopicPartition(topic, partition) for topic in self.type_by_topic for partition in partitions]
        consumer.assign(tps)
        positions: dict[TopicPartition, int] = {}
        fresh: list[TopicPartition] = []
        for partition in partitions:
            stored = self.stored_positions(partition)
            for topic in self.type_by_topic:
                tp = TopicPartition(topic, partition)
                offset = stored.get(topic)
                if offset is None:
                    fresh.append(tp)
                else:
                    consumer.seek(tp, offset)
                    positions[tp] = offset
        await self._recall(consumer, positions)
        if fresh:
            await consumer.seek_to_beginning(*fresh)
            for tp in fresh:
                positions[tp] = await consumer.position(tp)
        self.positions = positions
        self.checkpointed = dict(positions)
        self.generation = generation
        self.stall_watch.reset()
        log.info("event reader assigned partitions %s (generation %s)", partitions, generation)

    async def _recall(self, consumer: AIOKafkaConsumer, resume: dict[TopicPartition, int]) -> None:
        """Hand ``remember`` the records before the ``resume`` offsets, then seek back to them.

        Bounded: ``remember_records`` in all and ``REMEMBER_SECONDS`` in all; a batch that cannot be
        decoded ends the recall early (the records before it were remembered; nothing is lost, only a retry
        of an older event may be folded again).
        """
        if self.remember is None or self.remember_records <= 0 or not resume:
            return
        share = max(1, self.remember_records // len(resume))
        beginnings = await consumer.beginning_offsets(list(resume))
        starts = {tp: max(beginnings[tp], end - share) for tp, end in resume.items()}
        pending = {tp for tp, start in starts.items() if start < resume[tp]}
        for tp in pending:
            consumer.seek(tp, starts[tp])
        deadline = time.monotonic() + REMEMBER_SECONDS
        try:
            while pending and time.monotonic() < deadline:
                fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=self.batch_max_events)
                before = {tp: [m for m in batch if m.offset < resume[tp]] for tp, batch in fetched.items()}
                self.remember(raw_records(before, self.type_by_topic))
                pending = {tp for tp in pending if await consumer.position(tp) < resume[tp]}
        except DECODE_ERRORS as exc:
            log.warning("event reader stopped recalling records before the checkpoint: %s", exc)
        if pending:
            log.warning("event reader recalled only part of the records before the checkpoint: %s", pending)
        for tp, offset in resume.items():
            consumer.seek(tp, offset)

    async def _on_revoked(self, app: Any, revoked: Any = None, **_: Any) -> None:
        self.revoking = True
        if self.interrupt_on_revoke and self._inflight is not None:
            self._inflight.cancel()
        try:
            await self._release()
        finally:
            self.revoking = False

    async def _on_shutdown(self, app: Any, **_: Any) -> None:
        # As for a revocation: a batch that may take minutes (a sink that is down) must not hold up the stop.
        await self._on_revoked(app)

    async def _release(self) -> None:
        async with self.lock:
            await self._checkpointed()
            if self.generation is not None and self.positions != self.checkpointed:
                await self._checkpoint(beside=False)
            self.generation = None
            self.positions = {}
            self.checkpointed = {}
            if self.consumer is not None:
                self.consumer.assign([])
            self.on_released()

    def backlogs(self, event_types: Collection[str]) -> dict[tuple[int, str], bool]:
        """Each assigned partition of the topics of ``event_types``: whether records remain past those handed
        to ``process`` (its high watermark is beyond them, or not known yet: no fetch answered for it)."""
        consumer = self.consumer
        if consumer is None:
            return {}
        assigned = consumer.assignment()  # positions may still be the last assignment's while it changes
        backlogs: dict[tuple[int, str], bool] = {}
        for tp, offset in self.positions.items():
            event_type = self.type_by_topic[tp.topic]
            if event_type not in event_types or tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            read = max(offset, self._handing_over.get(tp, offset))
            backlogs[tp.partition, event_type] = highwater is None or read < highwater
        return backlogs

    def lag(self) -> dict[str, int]:
        """Records not yet checkpointed per event type: high watermark minus checkpointed offset."""
        lag = dict.fromkeys(self.type_by_topic.values(), 0)
        consumer = self.consumer
        if consumer is None:
            return lag
        for tp, offset in self.checkpointed.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag[self.type_by_topic[tp.topic]] += max(0, highwater - offset)
        return lag
