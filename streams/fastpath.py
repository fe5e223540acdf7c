"""Batch ingest: raw Kafka messages straight from Faust's consumer to the folder, no per-event Stream.

A Faust agent iterates every record through a :class:`faust.Stream`: an :class:`faust.Event` per record,
an ``asyncio.Queue`` hop, sensors, an ack per event and a task switch per event. That machinery costs far more
than folding the record. Here a :class:`BatchTopic` is registered with the Conductor for the event topics
like an agent's channel would be, so Faust still owns group membership, assignment, fetching, table recovery,
rebalances and commits; but the Conductor hands it the raw :class:`faust.types.Message` (no Event, no queue:
``decode`` returns the message and the "queue" is a list). :class:`BatchIngest` takes micro-batches off that
list (``batch_max_events`` or whatever arrived within ``batch_within_seconds``) and passes them to the same
batch code the stream path runs.

Faust's guarantees, kept the way a Stream keeps them:

* Each message taken into a batch is tracked in ``consumer.unacked`` (as ``Stream`` does) and acked with
  ``Message.ack(consumer)`` only after the batch's state writes and dead letters are in the producer buffer.
  Faust's committer flushes the producer before it commits acked offsets, so an offset is never committed
  before the changelog records it fed.
* On a rebalance Faust suspends flow control and clears the queues it manages; the buffer is one of them
  (``flow_control.manage_queue``), so records fetched for the old assignment are dropped, never folded, and
  are fetched again from the committed offset by whoever owns the partition next. A batch already being folded
  holds tracked messages, so ``consumer.wait_empty()`` waits for it before the partitions are handed over.
  Records fetched in an earlier consumer generation are dropped too (as ``Stream`` does).
* A batch that fails acks nothing: the worker crashes and its successor re-reads the records; the applied-
  offset dedup in :class:`~streams.ingest.AccountState` makes re-folding harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import faust
from faust.types import Message

log = logging.getLogger(__name__)

ProcessBatch = Callable[[list[Message]], Awaitable[None]]


class MessageBuffer:
    """Stands in for a channel's queue: the Conductor appends raw messages to a list.

    ``full()`` above ``high_water`` makes the Conductor await :meth:`put`, which blocks the consumer's fetch
    loop until a batch is taken (backpressure, as a full agent queue does).
    """

    def __init__(self, batch_size: int, high_water: int) -> None:
        self.batch_size = batch_size
        self.high_water = high_water
        self.messages: list[Message] = []
        self.dropped = 0
        self._batch_ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self.messages)

    def full(self) -> bool:
        return len(self.messages) >= self.high_water

    def put_nowait_enhanced(self, value: Message, **_pressure_callbacks: Any) -> None:
        """The Conductor's delivery call (it also passes queue-pressure callbacks; backpressure is put())."""
        self.messages.append(value)
        if len(self.messages) >= self.batch_size:
            self._batch_ready.set()

    async def put(self, value: Message) -> None:
        while self.full():
            self._space.clear()
            await self._space.wait()
        self.put_nowait_enhanced(value)

    def take(self, limit: int) -> list[Message]:
        taken, self.messages = self.messages[:limit], self.messages[limit:]
        self._after_take()
        return taken

    def clear(self) -> None:
        """Called by Faust's flow control on rebalance: forget what the old assignment fetched."""
        self.dropped += len(self.messages)
        self.messages = []
        self._after_take()

    def _after_take(self) -> None:
        if len(self.messages) < self.batch_size:
            self._batch_ready.clear()
        if not self.full():
            self._space.set()

    async def wait_batch(self, timeout: float) -> None:
        """Return when a full batch is buffered or ``timeout`` seconds have passed."""
        if len(self.messages) >= self.batch_size:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_ready.wait(), timeout)


class BatchTopic(faust.Topic):
    """A Conductor channel for the event topics that buffers raw messages instead of creating Events."""

    def __init__(self, app: faust.App, topics: Iterable[str], buffer: MessageBuffer) -> None:
        self._buffer = buffer
        super().__init__(app, topics=list(topics), key_serializer="raw", value_serializer="raw", acks=True)

    @property
    def queue(self) -> MessageBuffer:  # type: ignore[override]
        return self._buffer

    def _compile_decode(self) -> None:
        """Topic.__init__ would install a schema decoder (Message -> Event) as ``self.decode``: keep ours."""

    async def decode(self, message: Message, *, propagate: bool = False) -> Any:
        return message

    async def put(self, value: Any) -> None:
        await self._buffer.put(cast(Message, value))


class BatchIngest:
    """Feeds micro-batches of raw messages of ``topics`` to ``process`` and acks them once it returned."""

    def __init__(
        self,
        app: faust.App,
        topics: Iterable[str],
        *,
        batch_max_events: int,
        batch_within_seconds: float,
        process: ProcessBatch,
    ) -> None:
        self.app = app
        self.batch_max_events = batch_max_events
        self.batch_within_seconds = batch_within_seconds
        self.process = process
        self.buffer = MessageBuffer(batch_max_events, high_water=max(2 * batch_max_events, 10_000))
        self.channel = BatchTopic(app, topics, self.buffer)
        self.batches = 0
        self.stale_dropped = 0
        # Subscribed with the agents' channels (before the Conductor's first subscription), and cleared with
        # the agents' queues whenever Faust suspends or resumes flow for a rebalance.
        app.topics.add(self.channel)
        app.flow_control.manage_queue(cast(Any, self.buffer))
        app.task(self._run)

    async def _run(self) -> None:
        app = self.app
        while not app.should_stop:
            await self.buffer.wait_batch(self.batch_within_seconds)
            if not app.flow_control.is_active():
                self.buffer.clear()  # rebalancing: the next owner reads these from the committed offset
                continue
            messages = self.buffer.take(self.batch_max_events)
            if messages:
                await self.run_batch(messages)

    async def run_batch(self, messages: list[Message]) -> None:
        app = self.app
        consumer = app.consumer
        generation = app.consumer_generation_id
        unacked = consumer.unacked
        live: list[Message] = []
        for message in messages:
            if message.generation_id != generation:
                self.stale_dropped += 1
                continue
            # Tracked like a Stream tracks an event: wait_empty() (rebalance, shutdown) waits for the ack.
            unacked.add(message)
            live.append(message)
        if not live:
            return
        try:
            await self.process(live)
        except BaseException as exc:
            for message in live:
                unacked.discard(message)
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("batch ingest failed; crashing the worker (records will be re-read)")
                await app.crash(exc)
            raise
        for message in live:
            message.ack(consumer)
        self.batches += 1
