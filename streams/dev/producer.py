"""Send canonical events to their Kafka topics, keyed by account id (backfills, simulator, tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from streams.events import InvalidEventError, validate
from streams.live.kafka_client import client_options
from streams.settings import Settings

MALFORMED_FIRST = 9  # index of the first corrupted record of produce_live(malformed_every=...)
IN_FLIGHT = 5_000  # sends awaited together; bounds memory while keeping the producer's batches full


def new_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        acks="all", linger_ms=5, max_batch_size=256 * 1024, compression_type=None, **client_options(settings)
    )


async def send_all(
    settings: Settings,
    records: Iterable[tuple[str, bytes, bytes]],
    *,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send ``(topic, key, value)`` records; returns how many were acknowledged."""
    producer = new_producer(settings)
    sent = 0
    try:
        await producer.start()  # inside the try: a broker that never answers still closes the producer
        pending: list[asyncio.Future[Any]] = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                sent += len(pending)
                if on_sent:
                    on_sent(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        sent += len(pending)
        if on_sent:
            on_sent(len(pending))
    finally:
        await producer.stop()
    return sent


def route(settings: Settings, line: bytes) -> tuple[str, bytes, bytes]:
    """Topic, key and value of one canonical event line (raises InvalidEventError)."""
    body = orjson.loads(line)
    event = validate(body)
    return settings.topics.events[body["type"]], event.account_id.encode(), line


def produce_file(settings: Settings, path: Path) -> tuple[int, int]:
    """Send every canonical event in a JSONL file; returns (sent, rejected lines)."""
    rejected = 0
    total_bytes = path.stat().st_size

    def records(progress: Progress, task: Any) -> Iterator[tuple[str, bytes, bytes]]:
        nonlocal rejected
        with path.open("rb") as lines:
            for line in lines:
                progress.update(task, advance=len(line))
                stripped = line.strip()
                if not stripped:
                    continue
                try:
                    yield route(settings, stripped)
                except (orjson.JSONDecodeError, InvalidEventError):
                    rejected += 1

    columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("produce", total=total_bytes)
        sent = asyncio.run(send_all(settings, records(progress, task)))
    return sent, rejected


class RateLimiter:
    """Let ``rate`` items per second through (``None``: unlimited), sleeping only when ahead of schedule."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.count = 0

    async def wait(self) -> None:
        self.count += 1
        if self.rate is None:
            return
        ahead = self.count / self.rate - (time.monotonic() - self.started)
        if ahead > 0.005:
            await asyncio.sleep(ahead)


async def produce_live(
    settings: Settings,
    events: Iterable[dict[str, Any]],
    *,
    rate: float | None,
    malformed_every: int = 0,
    on_sent: Callable[[int, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Produce simulator events at ``rate`` events/s; with ``malformed_every``, the 10th record and every
    ``malformed_every``-th after it are corrupted.

    Corrupted records (truncated JSON) exercise the dead-letter path in demos: one comes early, however slowly
    the run goes. Returns records sent.
    """
    producer = new_producer(settings)
    await producer.start()
    limiter = RateLimiter(rate)
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for event in events:
            if should_stop():
                break
            await limiter.wait()
            value = orjson.dumps(event)
            if malformed_every and sent % malformed_every == MALFORMED_FIRST % malformed_every:
                value = value[: len(value) // 2]
            pending.append(
                await producer.send(
                    settings.topics.events[event["type"]], value=value, key=event["account_id"].encode()
                )
            )
            sent += 1
            if on_sent is not None:
                on_sent(sent, event)
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
