"""The engine's long work in steps (streams/engine/steps.py): the live worker runs folds, sweeps and commits
letting the event loop turn between accounts, and gets what one call gets. No Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from detectors.config import DetectorConfig
from detectors.monitor import AccountMonitor
from detectors.outcomes import Outcome
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import AccountState, CachedStore, SweepOutcome
from streams.engine.detection import Detection
from streams.engine.fold import ARRIVALS_PER_STEP
from streams.engine.steps import run_steps
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


class SteppedRun(LiveRun):
    """:class:`LiveRun` as the live worker drives it: folds and commits through :func:`run_steps`, with a
    task beside them that notes, at each turn of the event loop, whether a sweep is under way."""

    turns_in_sweeps = 0
    swept_accounts = 0
    sweeping = False

    def start(self) -> None:
        super().start()
        sweep_steps = self.engine.sweep_steps

        def noted(now_ms: int, *, everyone: bool = False) -> Any:
            self.sweeping = True
            outcome = yield from sweep_steps(now_ms, everyone=everyone)
            self.sweeping = False
            return outcome

        self.engine.sweep_steps = noted  # type: ignore[method-assign]

    def swept(self, outcome: SweepOutcome) -> None:
        super().swept(outcome)
        self.swept_accounts += len(outcome.assessments)

    def process(self, records: Any) -> None:
        arrivals, dead = self.folder.decode(records)
        assert dead == []
        result = asyncio.run(self._beside_a_ticker(self.engine.fold_steps(arrivals)))
        assert result.late == []

    def checkpoint(self, position: int) -> None:
        self.engine.checkpoint()
        asyncio.run(self._beside_a_ticker(self.store.commit_steps()))
        self.checkpointed = position
        self.alerts.extend(self.pending)
        self.pending = []

    async def _beside_a_ticker(self, steps: Any) -> Any:
        done = False

        async def ticker() -> None:
            while not done:
                self.turns_in_sweeps += self.sweeping
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        try:
            return await run_steps(steps, slice_s=0.0, pause_s=0.0)
        finally:
            done = True
            await task


@pytest.mark.parametrize(("seed", "restarts"), [(1, 0), (3, 2)])
def test_the_live_worker_folding_in_steps_equals_replay(
    events: list[dict[str, Any]], replayed: ReplayResult, seed: int, restarts: int
) -> None:
    """The same alerts and stored states as replay, while the event loop ran other work inside the sweeps:
    at least once per account swept (the ticker waits for the fold between its turns otherwise)."""
    live = run_live(records_of(events, 1), partitions=1, seed=seed, restarts=restarts, kind=SteppedRun)
    assert isinstance(live, SteppedRun)
    finish_live(live, replayed.clock_ms or 0)
    assert_live_equals_replay(live, replayed)
    assert live.swept_accounts > 1_000
    assert live.turns_in_sweeps >= live.swept_accounts


def test_a_commit_in_steps_writes_every_changed_state_once() -> None:
    live = SteppedRun(2)
    count = WRITES_PER_STEP * 2 + 3
    states = {f"acct-{i}".encode(): AccountState(AccountWindow(live.config), i % 2) for i in range(count)}
    for key, state in states.items():
        live.store.put(key, state)
    steps = live.store.commit_steps()
    next(steps)
    assert len([key for key in live.rows if key in states]) == WRITES_PER_STEP  # the loop may turn now
    for _ in steps:
        pass
    assert sorted(key for key in live.rows if key in states) == sorted(states)
    assert not live.store.changed()


def test_a_sweep_learns_the_last_sweeps_outcomes_a_step_each() -> None:
    """At 100 k accounts a sweep learns about a second of outcomes first: one step each, the same model as
    one call."""
    outcomes = [
        Outcome(f"acct-{i}", 20_000 + i % 5, 0.1, {"recency": float(i % 7), "silence": i % 3 / 2}, i % 4 == 0)
        for i in range(40)
    ]
    in_steps, at_once = (Detection(AccountMonitor(DetectorConfig(), WindowConfig())) for _ in range(2))
    in_steps.unlearned, at_once.unlearned = list(outcomes), list(outcomes)
    steps = in_steps.learn_ripe_steps(21_000 * DAY_MS)
    taken = 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            taken += 1
    assert (done.value.value, taken) == (40, 40)
    assert at_once.learn_ripe(21_000 * DAY_MS) == 40
    assert in_steps.risk_model.to_state() == at_once.risk_model.to_state()
    assert in_steps.risk_model.n_positives == 10


def test_a_batch_is_folded_in_steps_of_a_few_arrivals(events: list[dict[str, Any]]) -> None:
    """Folding a batch decodes the states the cache does not hold (~0.1 ms each): the loop turns every
    ``ARRIVALS_PER_STEP`` arrivals, and the steps fold what one call folds."""
    live = SteppedRun(1)
    live.engine.event_clock = False  # no midnights: no sweeps, only the fold's own steps
    arrivals, dead = live.folder.decode(records_of(events[:500], 1))
    assert dead == [] and len(arrivals) == 500
    steps = live.engine.fold_steps(arrivals)
    taken = 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
            taken += 1
    assert taken == 500 // ARRIVALS_PER_STEP
    assert done.value.value.folded == 500


def test_a_commit_drops_what_overflows_the_cache_a_step_each() -> None:
    """Dropping 50 k states frees millions of objects (~1 s): one step per state dropped."""
    store = CachedStore({}, WindowConfig(), lambda: [0], cache_limit=2)
    for i in range(5):
        store.put(f"acct-{i}".encode(), AccountState(AccountWindow(WindowConfig()), 0))
    taken = sum(1 for _ in store.commit_steps())
    assert taken == 3  # five written (fewer than a step's writes), then a step per state dropped
    assert list(store.cache) == [b"acct-3", b"acct-4"]  # the oldest dropped first
    assert sorted(store.rows) == [f"acct-{i}".encode() for i in range(5)]
