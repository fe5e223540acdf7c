"""When the event reader checkpoints (streams/live/checkpoint_pace.py), on an injected clock."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from detectors.windows import AccountWindow, WindowConfig
from streams.engine import AccountState
from streams.engine.store import CachedStore
from streams.live.checkpoint_pace import CheckpointPace, records_waiting
from streams.settings import WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pace_at(clock: Clock, *, room: bool = True) -> CheckpointPace:
    return CheckpointPace(5.0, 30.0, has_room=lambda: room, clock=clock)


def test_keeping_up_checkpoints_every_interval(clock: Clock) -> None:
    pace = pace_at(clock)
    pace.read(2_000)
    clock.now += 4.9
    assert not pace.due(fetched=True, waiting=0)
    clock.now += 0.1
    assert pace.due(fetched=True, waiting=1_999)  # less waiting than was read: keeping up


def test_behind_waits_for_the_backlog_interval(clock: Clock) -> None:
    pace = pace_at(clock)
    pace.read(100_000)
    for elapsed in (5.0, 12.0, 29.9):
        clock.now = 100.0 + elapsed
        assert not pace.due(fetched=True, waiting=100_001), elapsed
    clock.now = 130.0
    assert pace.due(fetched=True, waiting=5_000_000)


def test_a_checkpoint_starts_the_count_again(clock: Clock) -> None:
    pace = pace_at(clock)
    pace.read(100_000)
    clock.now += 30.0
    assert pace.due(fetched=True, waiting=50_000)
    pace.checkpointed()
    pace.read(10_000)
    clock.now += 5.0
    # 50 k waiting is more than the 10 k read since this checkpoint: behind again.
    assert not pace.due(fetched=True, waiting=50_000)


def test_no_room_in_the_state_keeps_the_short_interval(clock: Clock) -> None:
    pace = pace_at(clock, room=False)
    pace.read(1_000)
    clock.now += 5.0
    assert pace.due(fetched=True, waiting=1_000_000)


def test_behind_checkpoints_before_the_changed_states_would_outlast_the_write_bound(clock: Clock) -> None:
    changed = [0]
    pace = CheckpointPace(5.0, 30.0, changed=lambda: changed[0], max_write_s=10.0, clock=clock)

    def due_with(states: int) -> bool:
        changed[0] = states
        return pace.due(fetched=True, waiting=10**6)  # behind

    pace.read(100_000)
    clock.now += 5.0
    # Before a checkpoint measured the cost, 35 µs a state is assumed: 10 s is ~285 k states.
    assert (due_with(280_000), due_with(290_000)) == (False, True)
    pace.wrote(290_000, 2.9)  # 10 µs a state, as measured: 1 M states take the 10 s
    pace.checkpointed()
    pace.read(100_000)
    clock.now += 5.0
    assert (due_with(999_000), due_with(1_000_000)) == (False, True)
    pace.wrote(0, 0.5)  # nothing written measures nothing
    assert pace.state_write_s == pytest.approx(10e-6)


def test_the_write_bound_does_not_hasten_a_checkpoint_within_the_interval(clock: Clock) -> None:
    pace = CheckpointPace(5.0, 30.0, changed=lambda: 10**7, max_write_s=1.0, clock=clock)
    pace.read(100)
    clock.now += 4.0
    assert not pace.due(fetched=True, waiting=10**6)


def test_unknown_backlog_counts_as_keeping_up(clock: Clock) -> None:
    pace = pace_at(clock)
    clock.now += 5.0
    assert pace.due(fetched=True, waiting=None)


def test_caught_up_checkpoints_at_once(clock: Clock) -> None:
    pace = pace_at(clock)
    pace.read(10)
    assert pace.due(fetched=False, waiting=0)


def test_a_backlog_interval_below_the_interval_acts_as_it(clock: Clock) -> None:
    pace = CheckpointPace(5.0, 1.0, clock=clock)
    pace.read(10)
    clock.now += 4.0
    assert not pace.due(fetched=True, waiting=10**6)
    clock.now += 1.0
    assert pace.due(fetched=True, waiting=10**6)


def test_every_batch_with_zero_intervals(clock: Clock) -> None:
    pace = CheckpointPace(0.0, 0.0, clock=clock)  # the outbox's reader
    pace.read(100)
    assert pace.due(fetched=True, waiting=10**6)


def test_settings_default_to_5_and_30_seconds() -> None:
    worker = WorkerSettings()
    assert (worker.checkpoint_interval_seconds, worker.checkpoint_backlog_interval_seconds) == (5.0, 30.0)


def test_store_has_room_until_its_cache_reaches_the_limit() -> None:
    config = WindowConfig()
    store = CachedStore({}, config, lambda: [0], cache_limit=2)
    assert store.has_room()
    for key in (b"a", b"b"):
        store.put(key, AccountState(AccountWindow(config), 0))
        assert store.has_room() is (key == b"a")
    assert CachedStore({}, config, lambda: [0]).has_room()  # no limit


class Consumer:
    def __init__(self, highwaters: dict[TopicPartition, int | None]) -> None:
        self.highwaters = highwaters

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.highwaters[partition]


def test_records_waiting_sums_the_partitions_past_their_positions() -> None:
    a, b = TopicPartition("usage", 0), TopicPartition("billing", 0)
    assert records_waiting(Consumer({a: 1_500, b: 7}), {a: 1_000, b: 7}) == 500
    assert records_waiting(Consumer({a: 1_500, b: None}), {a: 1_000, b: 0}) is None  # b not fetched yet
    assert records_waiting(Consumer({a: 10}), {a: 12}) == 0  # positions past a stale high watermark
