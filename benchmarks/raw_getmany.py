"""The raw ``getmany`` rate: the consumer's own limit on a broker, next to what a worker reaches (issue 15).

Shared by the benchmarks that compare a worker with the bare consumer on the same broker in the same run
(``restore.py``: the ``accounts`` changelog; ``pipeline_throughput.py``: the event topics). One
``AIOKafkaConsumer``, outside any group, reads every partition of the topics from the start to the end
offsets it saw when it started, with ``getmany`` and nothing else: no decoding, no commit. Timings depend on
the machine and on what else runs: never assert on them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer

from streams.live.kafka_client import client_options, topic_partitions
from streams.settings import Settings


async def raw_getmany_rate(settings: Settings, topics: Iterable[str]) -> tuple[int, float]:
    """Records of ``topics`` and the seconds a bare ``getmany`` loop takes to read them all.

    Parameters
    ----------
    settings
        Where the broker is (``client_options``).
    topics
        The topics to read, every partition from its first record to the end offset at the start.

    Returns
    -------
    tuple[int, float]
        The records read and the seconds from the first ``getmany`` to the last.
    """
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_options(settings),
    )
    await consumer.start()
    try:
        tps = [tp for topic in sorted(set(topics)) for tp in await topic_partitions(consumer, topic)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        started = time.perf_counter()
        count = 0
        left = {tp for tp, end in ends.items() if end > 0}
        while left:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                count += len(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()
