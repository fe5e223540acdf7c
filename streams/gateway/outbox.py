"""Produce a request's records and wait for Kafka's acknowledgement (idempotent producer, ``acks=all``).

The gateway answers 2xx only after :meth:`Outbox.write` returned. A request that times out is answered 503,
but its sends go on in the producer (they cannot be recalled); a retry of the same events (same event ids)
joins the sends still pending instead of producing them again, and ids acknowledged recently are not produced
again at all, so a retried request lands once on the topic (the worker also deduplicates by ``event_id``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.live.kafka_client import client_options
from streams.settings import Settings

REMEMBERED_IDS = 200_000  # acknowledged event ids kept (about 100 bytes each)


@dataclass(slots=True)
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
    """Sends records and waits (bounded) until Kafka acknowledged all of them.

    One task per request sends its records and awaits their deliveries; in-flight and acknowledged event ids
    point at that request's future, not at futures of their own (the cost per event stays the producer's).
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
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
        waits: set[asyncio.Future[None]] = set()
        fresh: list[Record] = []
        for record in records:
            if record.event_id is not None:
                if record.event_id in self._acked:
                    continue
                pending = self._pending.get(record.event_id)
                if pending is not None:
                    waits.add(pending)
                    continue
            fresh.append(record)
        if fresh:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ids = [record.event_id for record in fresh if record.event_id is not None]
            for event_id in ids:
                self._pending[event_id] = future
            future.add_done_callback(self._settled(ids))
            waits.add(future)
            sender = asyncio.create_task(self._send(fresh, future))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        if waits:
            done, not_done = await asyncio.wait(waits, timeout=timeout)
            errors = [future.exception() for future in done if future.exception() is not None]
            if not_done or errors:
                first = f": {errors[0]}" if errors else ""
                raise KafkaUnavailable(f"{len(not_done) + len(errors)} of {len(waits)} sends failed{first}")
        return len(fresh)

    async def _send(self, records: list[Record], future: asyncio.Future[None]) -> None:
        deliveries: list[asyncio.Future[Any]] = []
        try:
            for record in records:
                headers = list(record.headers) or None
                deliveries.append(
                    await self.producer.send(record.topic, record.value, record.key, headers=headers)
                )
            for delivery in deliveries:  # a batch's records resolve together: most of these are done already
                await delivery
        except Exception as exc:  # no metadata in time, delivery failed or timed out: the request fails
            for delivery in deliveries:
                delivery.add_done_callback(_retrieve)
            if not future.done():
                future.set_exception(KafkaUnavailable(repr(exc)))
            return
        if not future.done():
            future.set_result(None)

    def _settled(self, event_ids: list[str]) -> Callable[[asyncio.Future[None]], None]:
        def settled(future: asyncio.Future[None]) -> None:
            failed = future.exception() is not None  # also marks a late failure as retrieved
            for event_id in event_ids:
                self._pending.pop(event_id, None)
                if not failed:
                    self._acked[event_id] = None
            while len(self._acked) > REMEMBERED_IDS:
                self._acked.popitem(last=False)

        return settled

    async def stop(self) -> None:
        for sender in list(self._senders):
            sender.cancel()
        await self.producer.stop()


def _retrieve(delivery: asyncio.Future[Any]) -> None:
    """Mark a failed delivery's exception as seen (the request already failed)."""
    if not delivery.cancelled():
        delivery.exception()
