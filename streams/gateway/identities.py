"""The user -> account mapping learnt from Segment ``group`` calls, kept in a compacted Kafka topic.

Every gateway loads the topic at start and then follows it, so a ``track`` without ``context.groupId`` finds
the account its user was last grouped into, whichever gateway saw the ``group`` call.
"""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.gateway.follower import Batches, TopicFollower
from streams.live.kafka_client import client_options, topic_partitions
from streams.settings import Settings


async def ensure_identity_topic(settings: Settings) -> None:
    """Create the compacted identities topic when missing."""
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        if settings.topics.identities in set(await admin.list_topics()):
            return
        topic = NewTopic(
            settings.topics.identities,
            settings.topics.partitions,
            settings.topics.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
    finally:
        await admin.close()


class Identities(TopicFollower):
    """In-memory copy of the identities topic (last value per user id wins)."""

    name = "identities"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.accounts: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.accounts)

    def remember(self, user_id: str, account_id: str) -> None:
        self.accounts[user_id] = account_id

    async def _seek(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        assigned = await topic_partitions(consumer, self.settings.topics.identities)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        return assigned

    def _apply(self, batches: Batches) -> None:
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
