"""A gateway's in-memory copy of Kafka topics: read up to their current ends at start, then followed.

Both the user -> account identities and the alert index are such copies. A subclass says where each
partition starts (``_seek``) and how a batch of records changes its copy (``_apply``); loading, following
(retrying while the broker is away) and stopping are shared here.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.live.kafka_client import assigning_consumer, client_options
from streams.settings import Settings

log = structlog.get_logger(__name__)

Batches = dict[TopicPartition, list[Any]]


class TopicFollower(ABC):
    """Loads topics into memory, then follows them in the background until :meth:`stop`."""

    #: Names the copy in log lines (``gateway.<name>.read_failed``).
    name = "topics"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def _seek(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Assign the partitions to read and seek each to where the copy starts; returns them."""

    @abstractmethod
    def _apply(self, batches: Batches) -> None:
        """Fold one ``getmany`` result into the copy."""

    @abstractmethod
    def __len__(self) -> int:
        """Entries in the copy."""

    async def start(self) -> int:
        """Read the topics up to their current ends, then follow them; returns the entries loaded."""
        consumer = assigning_consumer(client_options(self.settings))
        await consumer.start()
        self._consumer = consumer
        ends = await consumer.end_offsets(await self._seek(consumer))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            self._apply(await consumer.getmany(timeout_ms=500))
        self._task = asyncio.create_task(self._follow(consumer))
        return len(self)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                self._apply(await consumer.getmany(timeout_ms=1_000))
            except KafkaError as exc:  # the broker is away: keep the copy we have and try again
                log.warning(f"gateway.{self.name}.read_failed", error=repr(exc))
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
