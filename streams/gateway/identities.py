"""The user -> account mapping learnt from Segment ``group`` calls, kept in a compacted Kafka topic.

Every gateway loads the topic at start and then follows it, so a ``track`` without ``context.groupId`` finds
the account its user was last grouped into, whichever gateway saw the ``group`` call.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka_client import client_options, topic_partitions
from streams.settings import Settings

log = structlog.get_logger(__name__)


async def ensure_identity_topic(settings: Settings) -> None:
    """Create the compacted identities topic when missing."""
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        if settings.topic_identities in set(await admin.list_topics()):
            return
        topic = NewTopic(
            settings.topic_identities,
            settings.partitions,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
    finally:
        await admin.close()


class Identities:
    """In-memory copy of the identities topic (last value per user id wins)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.accounts: dict[str, str] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._follower: asyncio.Task[None] | None = None

    def remember(self, user_id: str, account_id: str) -> None:
        self.accounts[user_id] = account_id

    async def start(self) -> int:
        """Read the topic up to its current end, then follow it in the background; returns users loaded."""
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(self.settings))
        await consumer.start()
        self._consumer = consumer
        assigned = await topic_partitions(consumer, self.settings.topic_identities)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            self._apply(await consumer.getmany(timeout_ms=500))
        self._follower = asyncio.create_task(self._follow())
        return len(self.accounts)

    def _apply(self, batches: dict[TopicPartition, list[object]]) -> None:
        for records in batches.values():
            for record in records:
                key, value = getattr(record, "key", None), getattr(record, "value", None)
                if key is None:
                    continue
                user = bytes(key).decode(errors="replace")
                if value is None:
                    self.accounts.pop(user, None)
                else:
                    self.accounts[user] = bytes(value).decode(errors="replace")

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                self._apply(await self._consumer.getmany(timeout_ms=1_000))
            except KafkaError as exc:  # the broker is away: keep the mapping we have and try again
                log.warning("gateway.identities.read_failed", error=repr(exc))
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._consumer is not None:
            await self._consumer.stop()
