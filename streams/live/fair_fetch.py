"""A batch from every partition with prefetched records, not from the first one only.

aiokafka's ``getmany(max_records=n)`` hands out prefetched records partition by partition, in the order the
fetch responses arrived, and refetches a partition only once its records are all handed out. Caught up, each
partition has a few records buffered and a batch holds them all. Behind (after a sweep or a checkpoint held
the state), one fetch brings up to ``max_partition_fetch_bytes`` per partition, ~18 k usage events of 4 MB,
so batch after batch comes from one partition while the others wait. The event-time clock is the oldest
day over the usage partitions, so it waits for the partition served last: measured on the live worker
(10 k accounts, 10 k events/s, docs/performance.md "Alert latency"), the first and the last usage
partition reached a new day up to 12.6 s apart a few seconds behind (42 s overloaded), 0.01-0.3 s caught up.

:func:`getmany_fair` takes the records in rounds, at most an equal share of the batch per partition and round,
until the batch is full or no partition has more buffered: every partition with records moves in every batch
(one whose next fetch response has not arrived still waits for it). :func:`raw_records` turns a batch into
the records ingestion reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka import TopicPartition

from streams.live.ingest import RawRecord


class BatchConsumer(Protocol):
    """What :func:`getmany_fair` needs of an ``AIOKafkaConsumer``."""

    def assignment(self) -> set[TopicPartition]: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...


async def getmany_fair(
    consumer: BatchConsumer, *, timeout_ms: int, max_records: int
) -> dict[TopicPartition, list[Any]]:
    """Up to ``max_records`` prefetched records, shared evenly by the partitions that have some.

    Waits up to ``timeout_ms`` for the first records, as ``getmany`` does, then takes what is buffered
    without waiting. Each partition's records stay in offset order. A decode error propagates as from
    ``getmany`` (records already taken by this call are not returned: the caller rewinds to its positions).
    """
    partitions = sorted(consumer.assignment())
    share = max(1, max_records // max(1, len(partitions)))
    batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=min(share, max_records))
    if not batch:
        return batch
    total = sum(len(records) for records in batch.values())
    # This round's take so far: the first call served whichever partitions head aiokafka's buffer.
    taken = {tp: len(records) for tp, records in batch.items()}
    active = partitions
    while active and total < max_records:
        full: list[TopicPartition] = []  # took their share this round: may have more
        for tp in active:
            want = min(share - taken.get(tp, 0), max_records - total)
            records = None
            if want > 0:
                records = (await consumer.getmany(tp, timeout_ms=0, max_records=want)).get(tp)
            if records:
                batch.setdefault(tp, []).extend(records)
                total += len(records)
            if taken.get(tp, 0) + len(records or ()) >= share:
                full.append(tp)
        taken = {}
        active = full
        share = max(1, (max_records - total) // max(1, len(active)))  # the rest, shared by those with more
    return batch


def raw_records(
    fetched: Mapping[TopicPartition, list[Any]], type_by_topic: Mapping[str, str]
) -> list[RawRecord]:
    """The records of an aiokafka ``getmany`` result, in partition order, each with its topic's event type."""
    records: list[RawRecord] = []
    for tp, batch in fetched.items():
        event_type = type_by_topic[tp.topic]
        topic, partition = tp.topic, tp.partition
        records.extend(
            RawRecord(
                event_type,
                message.key,
                message.value,
                topic,
                partition,
                message.offset,
                tuple(message.headers or ()),
            )
            for message in batch
        )
    return records
