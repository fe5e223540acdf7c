"""TableStore: its census of the active partitions, and rows delivered to the changelog in batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from detectors.windows import AccountWindow, WindowConfig
from streams.engine import AccountState
from streams.engine.steps import Pacer
from streams.engine.store import ENGINE_KEY
from streams.live.table_store import CENSUS_CHUNK, JSON_PARTITIONS, POSITIONS_KEY, RecordBatch, TableStore

CFG = WindowConfig()


class FakeTopic:
    def get_topic_name(self) -> str:
        return "app-accounts-changelog"


@dataclass
class FakeTable:
    """What TableStore uses of a Faust table: its rows and the changelog topic."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    changelog_topic: FakeTopic = field(default_factory=FakeTopic)


@dataclass
class FakeBatch:
    """aiokafka's ``BatchBuilder`` as TableStore uses it: full after ``capacity`` records."""

    producer: FakeProducer
    capacity: int
    rows: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)

    def append(self, *, timestamp: int | None, key: bytes | None, value: bytes | None) -> object | None:
        if len(self.rows) == self.capacity:
            return None
        self.rows.append((key, value))
        self.producer.appended += 1
        return object()


@dataclass
class FakeProducer:
    """The changelog's producer as TableStore uses it: a batch sent hands back a delivery that ``flush``
    completes (failed when it holds ``fail_key``)."""

    fail_key: bytes | None = None
    batch_capacity: int = 1000
    appended: int = 0
    sent: list[tuple[str, bytes | None, bytes | None, int | None]] = field(default_factory=list)
    batches: list[tuple[int, int]] = field(default_factory=list)  # (partition, records) per batch sent
    undelivered: list[tuple[list[bytes | None], asyncio.Future[Any]]] = field(default_factory=list)

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self, self.batch_capacity)

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert isinstance(batch, FakeBatch)
        self.sent.extend((topic, key, value, partition) for key, value in batch.rows)
        self.batches.append((partition, len(batch.rows)))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.undelivered.append(([key for key, _ in batch.rows], delivery))
        return delivery

    async def flush(self) -> None:
        for keys, delivery in self.undelivered:
            if self.fail_key in keys:
                delivery.set_exception(RuntimeError("NotLeaderForPartitionError"))
            else:
                delivery.set_result(None)
        self.undelivered.clear()


def test_census_counts_active_rows_and_pending_accounts_and_their_bytes() -> None:
    table = FakeTable()
    rows = {f"a{i}".encode(): AccountState(AccountWindow(CFG), i % 2).to_bytes() for i in range(6)}
    table.data.update(rows)
    table.data[POSITIONS_KEY % 0] = b'{"usage": 7}'  # reserved keys are no accounts
    store = TableStore(table, CFG, lambda: [0, 1], cache_limit=10)
    store.put(b"new", AccountState(AccountWindow(CFG), 0))  # folded, not yet checkpointed
    store.put(b"a0", store.get(b"a0") or AccountState(AccountWindow(CFG), 0))  # stored and dirty: once
    accounts, size = store.census({0})
    assert accounts == 3 + 1
    assert size == sum(len(raw) for key, raw in rows.items() if AccountState.partition_of(raw) == 0)
    assert store.census({0, 1})[0] == 6 + 1


def test_checkpointed_rows_reach_the_changelog_once_each_and_delivered() -> None:
    table = FakeTable()
    store = TableStore(table, CFG, lambda: [0, 1], cache_limit=10)
    states = {key: AccountState(AccountWindow(CFG), i % 2) for i, key in enumerate([b"a", b"b", b"c"])}
    for key, state in states.items():
        store.put(key, state)
    store.commit()
    producer = FakeProducer()
    asyncio.run(store.deliver_written(producer))
    assert sorted(producer.sent) == sorted(
        ("app-accounts-changelog", key, table.data[key], state.partition) for key, state in states.items()
    )
    assert not producer.undelivered  # flushed: every delivery is done
    asyncio.run(store.deliver_written(producer))  # nothing written since: nothing sent again
    assert len(producer.sent) == 3


def test_a_failed_changelog_delivery_fails_the_checkpoint() -> None:
    store = TableStore(FakeTable(), CFG, lambda: [0], cache_limit=10)
    store.write_positions({0: {"usage": 7}})
    with pytest.raises(RuntimeError, match="NotLeaderForPartition"):
        asyncio.run(store.deliver_written(FakeProducer(fail_key=POSITIONS_KEY % 0)))


def test_rows_go_in_one_batch_per_partition_in_the_order_written_and_a_full_batch_is_sent() -> None:
    table = FakeTable()
    store = TableStore(table, CFG, lambda: [0, 1], cache_limit=10)
    keys = [f"a{i}".encode() for i in range(7)]
    for i, key in enumerate(keys):
        store.put(key, AccountState(AccountWindow(CFG), i % 2))  # partitions 0, 1, 0, 1, ...
    store.commit()
    written = [(partition, key) for partition, key, _ in store.unsent]
    producer = FakeProducer(batch_capacity=3)
    asyncio.run(store.deliver_written(producer))
    assert sorted(producer.batches) == [(0, 1), (0, 3), (1, 3)]  # 4 rows of partition 0: a full batch, then 1
    assert producer.batches.index((0, 3)) < producer.batches.index((0, 1))
    for partition in (0, 1):
        sent = [key for _, key, _, to in producer.sent if to == partition]
        assert sent == [key for to, key in written if to == partition]
    assert all(key is not None and table.data[key] == value for _, key, value, _ in producer.sent)
    assert not producer.undelivered


def test_a_row_no_empty_batch_takes_fails_the_delivery_rather_than_dropping_it() -> None:
    store = TableStore(FakeTable(), CFG, lambda: [0], cache_limit=10)
    store.put(b"a", AccountState(AccountWindow(CFG), 0))
    store.commit()
    with pytest.raises(ValueError, match="does not fit in an empty batch"):
        asyncio.run(store.deliver_written(FakeProducer(batch_capacity=0)))


def test_the_event_loop_turns_between_the_rows_of_a_long_delivery() -> None:
    """A checkpoint after a sweep sends every account: other tasks (health, metrics, the outbox) run in
    between, and each turn counts as progress."""
    store = TableStore(FakeTable(), CFG, lambda: [0], cache_limit=10)
    for i in range(3):
        store.put(f"a{i}".encode(), AccountState(AccountWindow(CFG), 0))
    store.commit()
    producer = FakeProducer()
    appended_when_other_ran: list[int] = []
    turns: list[int] = []

    async def other() -> None:
        while len(appended_when_other_ran) < 3:
            appended_when_other_ran.append(producer.appended)
            await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.ensure_future(other())
        pacer = Pacer(slice_s=0.0, pause_s=0.0, on_turn=lambda: turns.append(producer.appended))
        await store.deliver_written(producer, pacer)
        await task

    asyncio.run(main())
    assert turns == [1, 2, 3]
    assert appended_when_other_ran[:2] == [1, 2]  # the other task ran after the first row, before the last


def test_the_census_steps_through_the_rows_it_started_with() -> None:
    table = FakeTable()
    rows = CENSUS_CHUNK + 2
    table.data.update({f"a{i}".encode(): AccountState(AccountWindow(CFG), 0).to_bytes() for i in range(rows)})
    store = TableStore(table, CFG, lambda: [0], cache_limit=10)
    steps = store.census_steps({0})
    next(steps)
    table.data[b"late"] = AccountState(AccountWindow(CFG), 0).to_bytes()  # written between two steps
    taken = 1
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            taken += 1
    assert taken == 2  # a step per chunk of rows
    assert done.value.value[0] == rows  # the row written meanwhile counts at the next census


@pytest.mark.parametrize("partition", [0, JSON_PARTITIONS - 1, JSON_PARTITIONS + 0x22])
def test_reserved_rows_are_never_accounts_whatever_the_partition(partition: int) -> None:
    """A reserved row's JSON starts with ``{"`` (0x7B22): at that partition the census must read keys."""
    table = FakeTable()
    account = AccountState(AccountWindow(CFG), partition).to_bytes()
    table.data[b"acme"] = account
    table.data[POSITIONS_KEY % partition] = b'{"usage": 7}'
    table.data[ENGINE_KEY % partition] = orjson.dumps({"model": {}})
    store = TableStore(table, CFG, lambda: [partition], cache_limit=10)
    assert store.census({partition}) == (1, len(account))
