"""The live worker's state store: the engine's :class:`~streams.engine.CachedStore` over the Faust table.

Account states are rows of the changelog-backed ``accounts`` table (key: account id; value:
:meth:`~streams.engine.AccountState.to_bytes`); every row written also goes to the partition's changelog.
The same table holds, under reserved keys, the engine's saved state and the event reader's checkpoint
(the partition's next offset per event topic), so a new owner recovers both with the states.

Rows reach the changelog in one go per checkpoint (:meth:`TableStore.deliver_written`), in aiokafka record
batches (one per partition at a time, :class:`FaustBatches`), not one by one through Faust's
``send_changelog``: its buffer publishes each record through the whole of Faust's send path and took ~0.85 ms
a record here, so the checkpoint after a sweep of 10 k accounts held the state lock for ~9 s
(docs/performance.md, "Alert latency"); and a producer ``send`` per row still cost ~8 µs of CPU
(``benchmarks/changelog_sends.py``), where a 1 M-account worker writes about one row per event. Faust's
in-memory store keeps no persisted offsets, so its per-record callback had nothing to record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

import orjson

from detectors.windows import WindowConfig
from streams.engine import AccountState, CachedStore
from streams.engine.steps import Pacer, Steps, drain
from streams.engine.store import RESERVED_PREFIX
from streams.live.event_reader import Positions

ACCOUNTS_TABLE = "accounts"
POSITIONS_KEY = RESERVED_PREFIX + b"positions/%d"
# Rows the census reads between two of its steps.
CENSUS_CHUNK = 4096
# A partition whose 2-byte prefix starts like a JSON object (``{`` is 0x7B): from here on a row's first bytes
# cannot tell an account row from a reserved one (engine state, positions: JSON objects).
JSON_PARTITIONS = 0x7B00
# Every checkpoint rewrites each changed account: roll segments often and compact eagerly, so a recovery
# reads about one record per account rather than the whole history of checkpoints.
CHANGELOG_COMPACTION = {
    "segment.bytes": 16 * 2**20,
    "segment.ms": 10 * 60 * 1000,
    "min.cleanable.dirty.ratio": 0.1,
}


class RecordBatch(Protocol):
    """A batch of records for one partition (aiokafka's ``BatchBuilder``)."""

    def append(self, *, timestamp: int | None, key: bytes | None, value: bytes | None) -> object | None:
        """Add a record; None when the batch is full (the record is not in it)."""
        ...


class ChangelogProducer(Protocol):
    """What :meth:`TableStore.deliver_written` needs of a producer (:class:`FaustBatches` over Faust's)."""

    def create_batch(self) -> RecordBatch: ...

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Awaitable[Any]: ...

    async def flush(self) -> None: ...


class FaustBatches:
    """Faust's producer (``app.producer``) as a :class:`ChangelogProducer`: batches go straight to the
    aiokafka producer it wraps, and ``flush`` is Faust's (its own buffer, then aiokafka's).

    Record by record through ``send`` a row cost ~8 µs of CPU (aiokafka's per-record path alone; Faust's
    wrapper added more), in a batch ~1.4 µs (``benchmarks/changelog_sends.py``, 250-B rows): a 1 M-account
    worker writes about one row per event.
    """

    def __init__(self, producer: Any) -> None:
        self.producer = producer

    def kafka(self) -> Any:
        """The aiokafka producer (faust-streaming 0.15's driver keeps it behind ``_ensure_producer``)."""
        return self.producer._ensure_producer()

    def create_batch(self) -> RecordBatch:
        batch: RecordBatch = self.kafka().create_batch()
        return batch

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Awaitable[Any]:
        sent: Awaitable[Any] = await self.kafka().send_batch(batch, topic, partition=partition)
        return sent

    async def flush(self) -> None:
        await self.producer.flush()


class TableStore(CachedStore):
    """Account states cached over the ``accounts`` table; rows written to its changelog too."""

    def __init__(
        self,
        table: Any,
        window_config: WindowConfig,
        owned_partitions: Callable[[], Collection[int]],
        *,
        cache_limit: int,
        rows_in_parts: bool = True,
    ) -> None:
        super().__init__(
            table.data,
            window_config,
            owned_partitions,
            on_write=self._changelog,
            cache_limit=cache_limit,
            rows_in_parts=rows_in_parts,
        )
        self.table = table
        self.unsent: list[tuple[int, bytes, bytes]] = []  # rows written, not yet handed to the producer

    def _changelog(self, partition: int, key: bytes, raw: bytes) -> None:
        self.unsent.append((partition, key, raw))

    async def deliver_written(self, producer: ChangelogProducer, pacer: Pacer | None = None) -> None:
        """Send the rows written since the last call to the changelog, in one batch per partition at a
        time (a partition's rows in the order written), flush ``producer`` (everything it holds is delivered
        then), and raise the first delivery's error if one failed.

        Filling the batches rarely waits, so after a sweep (every account written) it would hold the event
        loop for seconds: ``pacer`` lets it turn between rows."""
        rows, self.unsent = self.unsent, []
        topic = self.table.changelog_topic.get_topic_name()
        pacer = pacer if pacer is not None else Pacer()
        batches: dict[int, RecordBatch] = {}
        deliveries: list[asyncio.Future[Any]] = []

        async def send(partition: int) -> None:
            sent = await producer.send_batch(batches.pop(partition), topic, partition=partition)
            deliveries.append(asyncio.ensure_future(sent))

        for partition, key, raw in rows:
            batch = batches.get(partition)
            if batch is None or batch.append(timestamp=None, key=key, value=raw) is None:
                if batch is not None:  # full: send it; the row starts the next one
                    await send(partition)
                batch = batches[partition] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=raw) is None:  # aiokafka's takes any first row
                    raise ValueError(f"a changelog row of {len(raw)} bytes does not fit in an empty batch")
            await pacer.step()
        for partition in list(batches):
            await send(partition)
        await producer.flush()
        for delivery in deliveries:
            delivery.result()

    def stored_positions(self, partition: int) -> dict[str, int]:
        """The event reader's checkpoint of ``partition`` (empty before the first)."""
        raw = self.rows.get(POSITIONS_KEY % partition)
        return orjson.loads(raw) if raw is not None else {}

    def write_positions(self, positions: Positions) -> None:
        for partition, offsets in positions.items():
            raw = orjson.dumps({**self.stored_positions(partition), **offsets})
            self.write(partition, POSITIONS_KEY % partition, raw)

    def account(self, key: bytes) -> AccountState | None:
        """An account's state for the API: the cached one, else decoded from its row (not cached)."""
        state = self.cache.get(key)
        if state is not None:
            return state
        raw = self.rows.get(key)
        return AccountState.from_bytes(raw, self.window_config) if raw is not None else None

    def census(self, active: Collection[int]) -> tuple[int, int]:
        """(accounts known, bytes stored) of ``active`` partitions, in one pass over the rows; accounts
        known include those not yet checkpointed."""
        return drain(self.census_steps(active))

    def census_steps(self, active: Collection[int]) -> Steps[tuple[int, int]]:
        """:meth:`census` in steps of :data:`CENSUS_CHUNK` rows, over the rows as they were when it started.

        It reads the rows' values only: an account row starts with its partition (2 bytes), a reserved row
        is a JSON object (its first byte is ``{``, 0x7B), so for partitions below :data:`JSON_PARTITIONS` a
        row's first two bytes tell both; a census of a higher partition also reads the keys (slower). At
        1 M accounts a pass took ~0.55 s of CPU a row at a time with the keys, every 5 s
        (docs/performance.md).
        """
        prefixes = {partition.to_bytes(2, "big") for partition in active}
        stored = size = 0
        if all(partition < JSON_PARTITIONS for partition in active):
            values = list(self.rows.values())
            for start in range(0, len(values), CENSUS_CHUNK):
                for raw in values[start : start + CENSUS_CHUNK]:
                    if raw[:2] in prefixes:
                        stored += 1
                        size += len(raw)
                yield
        else:
            for index, (_, raw) in enumerate(self.rows_of(active)):
                stored += 1
                size += len(raw)
                if index % CENSUS_CHUNK == 0:
                    yield
        return stored + sum(key not in self.rows for key in self.dirty), size
