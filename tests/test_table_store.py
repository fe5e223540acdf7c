"""TableStore: its census of the active partitions, and rows delivered to the changelog in one go."""

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
from streams.live.table_store import CENSUS_CHUNK, JSON_PARTITIONS, POSITIONS_KEY, TableStore

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
class FakeProducer:
    """Faust's producer as TableStore uses it: ``send`` hands back a delivery that ``flush`` completes."""

    fail_key: bytes | None = None
    sent: list[tuple[str, bytes | None, bytes | None, int | None]] = field(default_factory=list)
    undelivered: list[tuple[bytes | None, asyncio.Future[Any]]] = field(default_factory=list)

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None, *_: Any
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, partition))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.undelivered.append((key, delivery))
        return delivery

    async def flush(self) -> None:
        for key, delivery in self.undelivered:
            if key == self.fail_key:
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


def test_the_event_loop_turns_between_the_sends_of_a_long_delivery() -> None:
    """A checkpoint after a sweep sends every account: other tasks (health, metrics, the outbox) run in
    between, and each turn counts as progress."""
    store = TableStore(FakeTable(), CFG, lambda: [0], cache_limit=10)
    for i in range(3):
        store.put(f"a{i}".encode(), AccountState(AccountWindow(CFG), 0))
    store.commit()
    producer = FakeProducer()
    sent_when_other_ran: list[int] = []
    turns: list[int] = []

    async def other() -> None:
        while len(sent_when_other_ran) < 3:
            sent_when_other_ran.append(len(producer.sent))
            await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.ensure_future(other())
        pacer = Pacer(slice_s=0.0, pause_s=0.0, on_turn=lambda: turns.append(len(producer.sent)))
        await store.deliver_written(producer, pacer)
        await task

    asyncio.run(main())
    assert turns == [1, 2, 3]
    assert sent_when_other_ran[:2] == [1, 2]  # the other task ran after the first send, before the last


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
