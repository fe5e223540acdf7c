"""getmany_fair: a batch shares out the prefetched records of every partition that has some.

The fake consumer hands out records as aiokafka's fetcher does: partition after partition, in the order their
fetch responses arrived, each one's buffered records before the next partition's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from streams.live.fair_fetch import getmany_fair

USAGE = [TopicPartition("usage", p) for p in range(4)]
SUPPORT = TopicPartition("support", 0)


class SerialConsumer:
    """Buffered records per partition, handed out head partition first (aiokafka's ``fetched_records``)."""

    def __init__(self, buffered: dict[TopicPartition, int], assigned: list[TopicPartition]) -> None:
        self.buffered = {tp: list(range(count)) for tp, count in buffered.items()}  # arrival order
        self.assigned = set(assigned)
        self.calls: list[tuple[tuple[TopicPartition, ...], int, int | None]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        self.calls.append((partitions, timeout_ms, max_records))
        left = max_records if max_records is not None else 10**9
        drained: dict[TopicPartition, list[Any]] = {}
        for tp in list(self.buffered):
            if (partitions and tp not in partitions) or not left:
                continue
            records, self.buffered[tp] = self.buffered[tp][:left], self.buffered[tp][left:]
            if not self.buffered[tp]:
                del self.buffered[tp]
            if records:
                drained[tp] = records
                left -= len(records)
        return drained


def fetch(consumer: SerialConsumer, max_records: int) -> dict[TopicPartition, list[Any]]:
    return asyncio.run(getmany_fair(consumer, timeout_ms=50, max_records=max_records))


def test_a_backlog_of_every_partition_is_shared_out_not_served_one_partition_at_a_time() -> None:
    consumer = SerialConsumer(dict.fromkeys(USAGE, 18_000), [*USAGE, SUPPORT])
    batch = fetch(consumer, 2_000)
    # aiokafka alone: 2,000 records of usage/0, none of the others (the event clock waits for them).
    assert {tp: len(records) for tp, records in batch.items()} == dict.fromkeys(USAGE, 500)
    assert all(records == list(range(500)) for records in batch.values())  # each partition in offset order
    assert fetch(consumer, 2_000)[USAGE[3]] == list(range(500, 1_000))  # and on from there


def test_what_some_partitions_cannot_fill_goes_to_those_with_more() -> None:
    consumer = SerialConsumer({USAGE[0]: 5_000, SUPPORT: 30, USAGE[1]: 100}, [*USAGE, SUPPORT])
    batch = fetch(consumer, 2_000)
    counts = {tp: len(records) for tp, records in batch.items()}
    assert counts == {USAGE[0]: 1_870, SUPPORT: 30, USAGE[1]: 100}
    assert batch[USAGE[0]] == list(range(1_870))


def test_caught_up_a_batch_takes_everything_buffered_and_waits_only_in_the_first_call() -> None:
    consumer = SerialConsumer({USAGE[2]: 7, SUPPORT: 1}, [*USAGE, SUPPORT])
    assert {tp: len(records) for tp, records in fetch(consumer, 2_000).items()} == {USAGE[2]: 7, SUPPORT: 1}
    assert consumer.buffered == {}
    assert [timeout for _, timeout, _ in consumer.calls] == [50] + [0] * (len(consumer.calls) - 1)
    assert fetch(SerialConsumer({}, USAGE), 2_000) == {}
