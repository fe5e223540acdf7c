"""Checkpoints beside the reading (streams/live/event_reader.py, ``CachedStore.commit_steps``): a checkpoint
takes what it writes when it starts, then batches fold between its writes, and its offsets count only once
its last write is done. A state a batch asks for before the commit reached it is written first, as it was;
a restart in the middle loses that checkpoint's rows (the worker sends them at its end). Live still equals
replay. No Kafka."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.windows import AccountWindow
from streams.engine import AccountState, SweepOutcome
from streams.engine.steps import Steps
from streams.engine.store import WRITES_PER_STEP
from streams.offline.replay import ReplayResult
from tests.test_engine import (
    LiveRun,
    assert_live_equals_replay,
    events,
    finish_live,
    records_of,
    replayed,
    run_live,
)

__all__ = ["events", "replayed"]  # the fixtures, shared with tests/test_engine.py


class BesideRun(LiveRun):
    """:class:`LiveRun` as the worker checkpoints now: one write step of the running checkpoint after each
    batch; no second checkpoint while one runs. Alerts are durable when raised (the worker flushes them
    before a state that records them can be written), so a restart may raise one again, which the outbox
    drops by its idempotency key."""

    commit: Steps[None] | None = None
    writing: int = 0  # the position the running checkpoint records when done
    overlapped: int = 0  # batches folded while a checkpoint was writing
    keys: set[str]  # the alerts' idempotency keys (set at start)
    durable: dict[bytes, bytes]  # the rows before the running checkpoint (it sends its own at its end)

    def start(self) -> None:
        if self.commit is not None:  # a checkpoint under way dies with the worker: its rows were not sent
            self.rows.clear()
            self.rows.update(self.durable)
        super().start()
        self.commit = None
        self.keys = {alert.idempotency_key for alert in self.alerts}

    def swept(self, outcome: SweepOutcome) -> None:
        for alert in outcome.alerts:
            if alert.idempotency_key not in self.keys:
                self.keys.add(alert.idempotency_key)
                self.alerts.append(alert)

    def process(self, records: Any) -> None:
        super().process(records)
        if self.commit is not None:
            self.overlapped += 1
            try:
                next(self.commit)
            except StopIteration:
                self.commit = None
                self.checkpointed = self.writing

    def checkpoint(self, position: int) -> None:
        if self.commit is None:
            self.durable = dict(self.rows)
            self.engine.checkpoint()
            self.commit = self.store.commit_steps()  # takes what it writes now
            self.writing = position

    def settle(self) -> None:
        """The last checkpoint's writes to their end (a graceful stop waits for them)."""
        if self.commit is not None:
            for _ in self.commit:
                pass
            self.commit = None
            self.checkpointed = self.writing


def run_beside(records: list[Any], seed: int, restarts: int) -> BesideRun:
    live = run_live(records, partitions=1, seed=seed, restarts=restarts, kind=BesideRun)
    assert isinstance(live, BesideRun)
    live.settle()
    return live


@pytest.mark.parametrize(("seed", "restarts"), [(1, 0), (3, 3), (6, 3), (8, 5)])
def test_checkpoints_beside_the_batches_equal_replay(
    events: list[dict[str, Any]], replayed: ReplayResult, seed: int, restarts: int
) -> None:
    live = run_beside(records_of(events, 1), seed, restarts)
    finish_live(live, replayed.clock_ms or 0)
    live.settle()
    assert_live_equals_replay(live, replayed)
    assert live.overlapped > 20  # batches did fold between checkpoint writes


def test_a_commit_writes_the_states_as_they_were_when_it_started() -> None:
    live = LiveRun(1)
    keys = [f"acct-{i:02}".encode() for i in range(WRITES_PER_STEP * 3)]
    for key in keys:
        live.store.put(key, AccountState(AccountWindow(live.config), 0))
    before = {key: live.store.cache[key].to_bytes() for key in keys}
    steps = live.store.commit_steps()
    next(steps)
    # A batch between its steps: changes a state the commit has not reached yet, and makes a new one.
    last = next(key for key in keys if key not in live.rows)
    state = live.store.get(last)
    assert state is not None and last in live.rows  # written before the batch could change it
    state.window.add_usage(1_800_000_000_000, "login", "u1", 1)
    live.store.put(last, state)
    live.store.put(b"acct-new", AccountState(AccountWindow(live.config), 0))
    for _ in steps:
        pass
    assert {key: live.rows[key] for key in keys} == before
    assert b"acct-new" not in live.rows
    assert sorted(live.store.changed()) == sorted([b"acct-new", last])  # the next commit's
    live.store.commit()
    assert live.rows[last] != before[last] and b"acct-new" in live.rows


def test_a_commit_trims_the_cache_of_clean_states_only() -> None:
    live = LiveRun(1)  # a cache of 25 states
    keys = [f"acct-{i:02}".encode() for i in range(40)]
    for key in keys[:30]:
        live.store.put(key, AccountState(AccountWindow(live.config), 0))
    steps = live.store.commit_steps()
    live.store.put(keys[0], live.store.cache[keys[0]])  # the oldest, changed again between its steps
    for _ in steps:
        pass
    assert keys[0] in live.store.cache  # not dropped: its change is not written yet
    assert len(live.store.cache) == 25
    assert keys[1] not in live.store.cache
