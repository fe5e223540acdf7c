"""A reader whose consumer stopped getting answers from a broker that is up replaces its consumer.

aiokafka consumers can go quiet for good while the broker serves every other client (a "zombie consumer",
aio-libs/aiokafka#712; here twice on an overloaded machine, 8-11+ minutes, the samples in its metadata
loop). The reader's loop keeps turning on empty fetches, so liveness would never restart the worker. So when
the broker has answered none of a reader's fetches for ``after_s`` while it has partitions to read, the reader
starts a new consumer, hands it its assignment at the offsets it has folded up to (nothing skipped, nothing
read twice), and stops the old one. Each step is bounded. If the broker is really gone the new consumer
cannot start: the reader keeps the old one, says so, and tries again ``after_s`` later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
STOP_TIMEOUT_S = 10.0  # closing the old consumer's connections; it may be what hangs


class StallWatch:
    """Says when a reader's consumer is due for replacement: the broker answered none of its fetches over
    ``after_s`` of fetching. Time the reader spends elsewhere (a long sweep, a sink that is down) does not
    count: the quiet time starts at the first unanswered fetch.

    >>> now = [100.0]
    >>> watch = StallWatch(60.0, clock=lambda: now[0])
    >>> watch.fetched(answered=True)
    False
    >>> now[0] = 161.0  # a 61 s sweep, then an empty fetch: the quiet time starts here
    >>> watch.fetched(answered=False)
    False
    >>> now[0] = 222.0  # 61 s more of unanswered fetches
    >>> watch.fetched(answered=False)
    True
    >>> watch.reset()
    >>> watch.fetched(answered=False)
    False
    """

    def __init__(self, after_s: float, *, clock: Clock = time.monotonic) -> None:
        self.after_s = after_s
        self.clock = clock
        self.quiet_since: float | None = None

    def fetched(self, *, answered: bool) -> bool:
        """After each fetch: whether the consumer is due for replacement."""
        if answered:
            self.quiet_since = None
            return False
        now = self.clock()
        if self.quiet_since is None:
            self.quiet_since = now
        return now - self.quiet_since > self.after_s

    def reset(self) -> None:
        """Count afresh (after a replacement was made or tried, or a new assignment)."""
        self.quiet_since = None


async def started(make: Callable[[], AIOKafkaConsumer], *, timeout_s: float) -> AIOKafkaConsumer:
    """A new consumer from ``make``, started within ``timeout_s`` (``KafkaError`` or ``TimeoutError``)."""
    consumer = make()
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
    except BaseException:
        await stop_quietly(consumer)
        raise
    return consumer


def resume_at(consumer: AIOKafkaConsumer, positions: Mapping[TopicPartition, int]) -> None:
    """Assign ``consumer`` the partitions of ``positions`` and seek each to its next offset."""
    consumer.assign(list(positions))
    for tp, offset in positions.items():
        consumer.seek(tp, offset)


async def stop_quietly(consumer: AIOKafkaConsumer, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a consumer that may be broken: bounded, and whatever it raises only logged."""
    try:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("event reader: stopping the replaced consumer: %r (left to the garbage collector)", exc)


async def replacement(
    make: Callable[[], AIOKafkaConsumer], *, timeout_s: float, describe: str, age_s: float
) -> AIOKafkaConsumer | None:
    """A started new consumer for the reader of ``describe``, or None (logged) when none could start."""
    log.warning(
        "event reader (%s): the broker answered none of its fetches for %.0f s; replacing its consumer",
        describe,
        age_s,
    )
    try:
        return await started(make, timeout_s=timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning(
            "event reader (%s): a new consumer could not start (%s); keeping the old one, trying again in "
            "%.0f s",
            describe,
            exc_summary(exc),
            timeout_s,
        )
        return None


def exc_summary(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
