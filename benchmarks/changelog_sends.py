"""What handing a checkpoint's rows to the changelog costs the worker: record by record, or in batches.

Usage::

    .venv/bin/python benchmarks/changelog_sends.py --rows 200000 --row-bytes 250 --rounds 3

A checkpoint hands every state written since the last one to the ``accounts`` changelog; at 1 M accounts
that is about one row per event folded (docs/performance.md, "With detectors on"). On a private local broker
(8 partitions) this sends the same rows both ways, alternated, and prints the CPU µs per row of this process
(the broker's own CPU not counted): ``per_record``, the way ``TableStore.deliver_written`` sent them before
(aiokafka's ``send`` per row, one delivery future each; the worker also went through Faust's wrapper of it,
not counted here, so this understates the old cost), and ``batches``, ``deliver_written`` itself over the
same aiokafka producer (one batch per partition at a time, ``FaustBatches``). Both flush and check every
delivery. Timings depend on the machine: never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pipeline_throughput import benchmark_kafka  # noqa: E402
from detectors.windows import WindowConfig  # noqa: E402
from streams.live.table_store import FaustBatches, TableStore  # noqa: E402

TOPIC = "bench-accounts-changelog"
PARTITIONS = 8


class AiokafkaAsFaust:
    """An aiokafka producer as :class:`FaustBatches` reaches Faust's (``_ensure_producer``, ``flush``)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self.producer

    async def flush(self) -> None:
        await self.producer.flush()


class BenchTable:
    """What TableStore reads of a Faust table."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = self

    def get_topic_name(self) -> str:
        return TOPIC


def rows_of(count: int, size: int) -> list[tuple[int, bytes, bytes]]:
    return [(i % PARTITIONS, b"acct-%d" % i, os.urandom(size)) for i in range(count)]


async def per_record(producer: AIOKafkaProducer, rows: list[tuple[int, bytes, bytes]]) -> None:
    deliveries = []
    for partition, key, raw in rows:
        sent = await producer.send(TOPIC, raw, key=key, partition=partition)
        deliveries.append(asyncio.ensure_future(sent))
    await producer.flush()
    for delivery in deliveries:
        delivery.result()


async def batched(producer: AIOKafkaProducer, rows: list[tuple[int, bytes, bytes]]) -> None:
    store = TableStore(BenchTable(), WindowConfig(), lambda: range(PARTITIONS), cache_limit=0)
    store.unsent = list(rows)
    await store.deliver_written(FaustBatches(AiokafkaAsFaust(producer)))


async def measure(bootstrap: str, rows: list[tuple[int, bytes, bytes]], rounds: int) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        await batched(producer, rows[:1000])  # metadata and connections, before timing
        figures: dict[str, list[float]] = {"per_record": [], "batches": []}
        for _ in range(rounds):
            for name, send in (("per_record", per_record), ("batches", batched)):
                started = time.process_time()
                await send(producer, rows)
                figures[name].append(round((time.process_time() - started) / len(rows) * 1e6, 2))
        return {"rows": len(rows), "row_bytes": len(rows[0][2]), **{f"{k}_us": v for k, v in figures.items()}}
    finally:
        await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--row-bytes", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = rows_of(args.rows, args.row_bytes)
    with benchmark_kafka(PARTITIONS, {}) as (_, _, settings):
        figures = asyncio.run(measure(settings.kafka.bootstrap, rows, args.rounds))
    print(orjson.dumps({**figures, "load_average_1min": round(os.getloadavg()[0], 1)}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
