"""Produce a request's records and wait for Kafka's acknowledgement (idempotent producer, ``acks=all``).

The gateway answers 2xx only after :meth:`Outbox.write` returned. A request that times out is answered 503,
but its sends go on in the producer (they cannot be recalled); a retry of the same events (same event ids)
joins the sends still pending instead of producing them again, and ids acknowledged recently are not produced
again at all, so a retried request lands once on the topic (the worker also deduplicates by ``event_id``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.kafka_client import client_options
from streams.settings import Settings

REMEMBERED_IDS = 200_000  # acknowledged event ids kept (about 100 bytes each)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    event_id: str | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge every record of a request in time."""


def new_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=1,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
        **client_options(settings),
    )


class Outbox:
    """Sends records and waits (bounded) until Kafka acknowledged all of them."""

    def __init__(self, producer: AIOKafkaProducer, clock: Callable[[], float] = time.monotonic) -> None:
        self.producer = producer
        self.clock = clock
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._acked: OrderedDict[str, None] = OrderedDict()
        self._senders: set[asyncio.Task[None]] = set()

    def seen(self, event_id: str | None) -> bool:
        """True when this process already had ``event_id`` acknowledged."""
        return event_id is not None and event_id in self._acked

    async def write(self, records: Sequence[Record], *, timeout: float) -> int:
        """Produce ``records``; returns how many were sent (not already acknowledged or in flight).

        Raises :class:`KafkaUnavailable` when Kafka has not acknowledged them all within ``timeout`` seconds.
        """
        waits: list[asyncio.Future[None]] = []
        fresh: list[tuple[Record, asyncio.Future[None]]] = []
        loop = asyncio.get_running_loop()
        for record in records:
            if record.event_id is not None:
                if record.event_id in self._acked:
                    continue
                pending = self._pending.get(record.event_id)
                if pending is not None:
                    waits.append(pending)
                    continue
            future: asyncio.Future[None] = loop.create_future()
            future.add_done_callback(self._settled(record.event_id))
            if record.event_id is not None:
                self._pending[record.event_id] = future
            fresh.append((record, future))
            waits.append(future)
        if fresh:
            sender = asyncio.create_task(self._send(fresh))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        if waits:
            done, not_done = await asyncio.wait(waits, timeout=timeout)
            if not_done or any(future.exception() is not None for future in done):
                raise KafkaUnavailable(f"{len(not_done)} of {len(waits)} records not acknowledged")
        return len(fresh)

    async def _send(self, items: list[tuple[Record, asyncio.Future[None]]]) -> None:
        for index, (record, future) in enumerate(items):
            try:
                delivery = await self.producer.send(
                    record.topic, value=record.value, key=record.key, headers=list(record.headers) or None
                )
            except (KafkaError, asyncio.CancelledError) as exc:
                for _, later in items[index:]:
                    if not later.done():
                        later.set_exception(KafkaUnavailable(repr(exc)))
                return
            delivery.add_done_callback(_resolve(future))

    def _settled(self, event_id: str | None) -> Callable[[asyncio.Future[None]], None]:
        def settled(future: asyncio.Future[None]) -> None:
            failed = future.exception() is not None  # also marks a late failure as retrieved
            if event_id is None:
                return
            self._pending.pop(event_id, None)
            if not failed:
                self._acked[event_id] = None
                if len(self._acked) > REMEMBERED_IDS:
                    self._acked.popitem(last=False)

        return settled

    async def stop(self) -> None:
        for sender in list(self._senders):
            sender.cancel()
        await self.producer.stop()


def _resolve(future: asyncio.Future[None]) -> Callable[[asyncio.Future[Any]], None]:
    def resolve(delivery: asyncio.Future[Any]) -> None:
        if future.done():
            return
        if delivery.cancelled():
            future.set_exception(KafkaUnavailable("send cancelled"))
        elif delivery.exception() is not None:
            future.set_exception(KafkaUnavailable(repr(delivery.exception())))
        else:
            future.set_result(None)

    return resolve
