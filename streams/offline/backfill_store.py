"""Write a backfill into the worker's ``accounts`` table: its changelog topic, where the worker recovers from.

The worker's table lives in memory and is rebuilt at start from the compacted changelog topic
``<app id>-accounts-changelog`` (key: account id, value: :class:`~streams.live.ingest.AccountState` bytes, one
partition per event-topic partition). A backfill therefore writes plain records to that topic, with an
idempotent ``acks=all`` producer, each to the partition its row names, and only while no worker of the app
runs: a running worker would not read them (it recovers only at start) and would overwrite them with its
own states at its next checkpoint. The user -> account assignments a Segment export taught go to the
gateway's identities topic, for users it does not know yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streams.errors import ChurnwatchError, ConfigError, KafkaUnavailableError
from streams.gateway.identities import ensure_identity_topic
from streams.live.kafka_client import assigning_consumer, client_options, topic_partitions
from streams.live.table_store import ACCOUNTS_TABLE, CHANGELOG_COMPACTION
from streams.offline.backfill import History, Plan, Row, plan_identities, plan_rows
from streams.settings import Settings

READ_IDLE_TIMEOUT_S = 60.0  # reading the changelog fails after this long without progress


class WorkerRunningError(ChurnwatchError):
    """A worker of the app is running: a backfill now would be lost or overwritten."""


def changelog_topic(settings: Settings) -> str:
    """The accounts table's changelog, as faust names it (``<app id>-<table>-changelog``)."""
    return f"{settings.topics.app_id}-{ACCOUNTS_TABLE}-changelog"


async def backfill(settings: Settings, history: History, *, live_from_end: bool, dry_run: bool) -> Plan:
    """Compare ``history`` with the table's rows and write what is missing; returns what was (or would be)
    written. The event topics must exist (``ensure_topics``)."""
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        await refuse_if_worker_runs(admin, settings)
        topic = changelog_topic(settings)
        if not dry_run:
            await ensure_changelog(admin, settings, topic)
        stored = await read_rows(settings, topic)
        live_from = await event_topic_ends(settings) if live_from_end else None
        plan = plan_rows(history, stored, settings.topics.partitions, live_from=live_from)
        if history.identities:
            known = await read_rows(settings, settings.topics.identities)
            plan.identities = plan_identities(history, known)
            plan.known_identities = len(history.identities) - len(plan.identities)
        if not dry_run and plan.rows:
            await refuse_if_worker_runs(admin, settings)  # one may have started while we read
            await write_rows(settings, topic, plan.rows)
        if not dry_run and plan.identities:
            await ensure_identity_topic(settings)
            await write_rows(settings, settings.topics.identities, plan.identities)
        return plan
    finally:
        await admin.close()


async def check_no_worker(settings: Settings) -> None:
    """Fail fast, before a long fold, when a worker of the app runs (checked again before writing)."""
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        await refuse_if_worker_runs(admin, settings)
    finally:
        await admin.close()


async def refuse_if_worker_runs(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """Raise :class:`WorkerRunningError` when the app's consumer group has members."""
    deadline = time.monotonic() + 30
    while True:
        try:
            responses = await admin.describe_consumer_groups([settings.topics.app_id])
            break
        except KafkaError as exc:
            # A new broker has no group coordinator until its offsets topic exists: a retriable error.
            if not exc.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    for response in responses:
        for group in response.groups:
            error_code, group_id, state, _protocol_type, _protocol, members = group[:6]
            if error_code == 0 and members:
                raise WorkerRunningError(
                    f"{len(members)} worker(s) of app {group_id!r} are running (consumer group {state}); "
                    "stop them before backfilling: a running worker would overwrite the backfilled states"
                )


async def ensure_changelog(admin: AIOKafkaAdminClient, settings: Settings, topic: str) -> None:
    """Create the changelog as the worker would (compacted, its segment settings); check its partitions."""
    if topic not in set(await admin.list_topics()):
        configs = {"cleanup.policy": "compact", **{k: str(v) for k, v in CHANGELOG_COMPACTION.items()}}
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        settings.topics.partitions,
                        settings.topics.replication_factor,
                        topic_configs=configs,
                    )
                ]
            )
        except KafkaError as exc:
            if "TopicAlreadyExists" not in type(exc).__name__:
                raise KafkaUnavailableError(f"creating topic {topic} failed: {exc!r}") from None
    deadline = time.monotonic() + 30
    while True:
        described = await admin.describe_topics([topic])
        partitions = len(described[0]["partitions"])
        if partitions or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    if partitions != settings.topics.partitions:
        raise ConfigError(
            "CHURNWATCH_PARTITIONS",
            f"topic {topic!r} has {partitions} partitions, settings say {settings.topics.partitions}",
        )


async def read_rows(settings: Settings, topic: str) -> dict[bytes, bytes]:
    """The changelog's current rows: the last value of each key, tombstones removing (empty if no topic)."""
    consumer = assigning_consumer(client_options(settings))
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return {}
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        rows: dict[bytes, bytes] = {}
        last_progress = time.monotonic()
        while await _behind(consumer, ends):
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                last_progress = time.monotonic()
                for record in records:
                    _apply(rows, record)
            if time.monotonic() - last_progress > READ_IDLE_TIMEOUT_S:
                raise KafkaUnavailableError(f"reading {topic} made no progress for {READ_IDLE_TIMEOUT_S:g} s")
        return rows
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _apply(rows: dict[bytes, bytes], record: Any) -> None:
    if record.key is None:
        return
    if record.value is None:
        rows.pop(bytes(record.key), None)
    else:
        rows[bytes(record.key)] = bytes(record.value)


async def event_topic_ends(settings: Settings) -> dict[int, dict[str, int]]:
    """Each partition's current end offset per event topic: where ``--live-from end`` starts the worker."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        tps = [
            tp for topic in settings.topics.events.values() for tp in await topic_partitions(consumer, topic)
        ]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    positions: dict[int, dict[str, int]] = {}
    for tp, end in ends.items():
        positions.setdefault(tp.partition, {})[tp.topic] = end
    return positions


async def write_rows(settings: Settings, topic: str, rows: Sequence[Row]) -> None:
    """Send ``rows`` with an idempotent ``acks=all`` producer and wait until every one is acknowledged."""
    producer = AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
        **client_options(settings),
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for row in rows:
            pending.append(await producer.send(topic, value=row.value, key=row.key, partition=row.partition))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
