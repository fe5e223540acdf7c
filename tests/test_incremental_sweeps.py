"""Sweeps on the wall clock that evaluate only what changed (``Engine(incremental=True)``, the live worker's
``sweep_changed_only``): a day's first sweep judges every account, a later one that day only the accounts that
events or answers reached since the last sweep. No Kafka."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import AccountState, CachedStore, Engine, MemoryStore
from streams.engine.answers import AnswerArrival
from streams.engine.fold import Arrival
from streams.engine.state import decode_detector
from streams.engine.store import StateStore
from streams.events import Event, UsageEvent, validate
from streams.feedback import Feedback, FeedbackLabel, FeedbackSource

START = datetime(2026, 2, 2, tzinfo=UTC)
TICK_MS = DAY_MS // 4  # the wall-clock timer, four times a day of event time


@pytest.fixture(scope="module")
def arrivals() -> list[Arrival]:
    events = Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=START)).events()
    found = [Arrival(validate(event), 0, offset) for offset, event in enumerate(events)]
    return sorted(found, key=lambda arrival: arrival.event.ts_ms)


def engine(
    incremental: bool,
    store: StateStore | None = None,
    config: DetectorConfig | None = None,
    **options: object,
) -> Engine:
    monitor = AccountMonitor(config if config is not None else DetectorConfig(), WindowConfig())
    store = store if store is not None else MemoryStore()
    clock = {"event_clock": False, "wall_clock": lambda: 1}
    return Engine(monitor, store, incremental=incremental, **clock, **options)  # type: ignore[arg-type]


@dataclass
class TimerRun:
    """A wall-clock worker's sweeps over time-sorted events: fold what happened before each tick, sweep."""

    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)  # muted by the outage guard
    evaluated: list[set[str]] = field(default_factory=list)  # accounts each sweep evaluated
    # Accounts events reached before each sweep: any event but usage of the sweep's own day (or later).
    reached: list[set[str]] = field(default_factory=list)
    changed_only: list[bool] = field(default_factory=list)


def judged(event: Event, today: int) -> bool:
    """Whether the event can change a judgement of ``today``: usage counts once its day is complete."""
    return not isinstance(event, UsageEvent) or event.ts_ms // DAY_MS < today


def timer_run(engine: Engine, arrivals: list[Arrival]) -> TimerRun:
    run = TimerRun()
    tick = (arrivals[0].event.ts_ms // DAY_MS + 1) * DAY_MS  # the midnight after the first event
    first = 0
    while first < len(arrivals):
        end = first
        while end < len(arrivals) and arrivals[end].event.ts_ms < tick:
            end += 1
        engine.fold(arrivals[first:end])
        today = tick // DAY_MS
        run.reached.append({a.event.account_id for a in arrivals[first:end] if judged(a.event, today)})
        outcome = engine.sweep(tick)
        assert engine.last_sweep is not None
        run.alerts.extend(outcome.alerts)
        run.suppressed.extend(outcome.suppressed)
        run.evaluated.append({assessment.account_id for assessment in outcome.assessments})
        run.changed_only.append(engine.last_sweep.changed_only)
        first, tick = end, tick + TICK_MS
    return run


def test_the_same_alerts_and_states_as_sweeping_every_account(arrivals: list[Arrival]) -> None:
    """The day's first sweep (at midnight) evaluates every account, the three later ones only those that
    support or billing events reached (and a sweep of every account would evaluate: with usage, not
    canceled): usage of the day being judged changes nothing until the day is complete.

    What they skip would judge the same completed days again. What can differ is when: the risk model learns
    outcomes at every sweep, so an account nothing reached is scored by the newer model at its next event or
    the next day's first sweep. Here the same alerts are raised, and every account ends in the same detector
    state but for when its open episode began: one account's episode opened six hours later (the alert is
    the same)."""
    every, changed = engine(incremental=False), engine(incremental=True)
    swept_all, swept_changed = timer_run(every, arrivals), timer_run(changed, arrivals)

    assert swept_changed.changed_only[:8] == [False, True, True, True] * 2 and not any(swept_all.changed_only)
    for i, changed_only in enumerate(swept_changed.changed_only):
        expected = (
            swept_all.evaluated[i] & swept_changed.reached[i] if changed_only else swept_all.evaluated[i]
        )
        assert swept_changed.evaluated[i] == expected, i

    def count(sets: list[set[str]]) -> int:
        return sum(map(len, sets))

    assert count(swept_changed.evaluated) < 0.65 * count(swept_all.evaluated)

    def kinds(alerts: list[Alert]) -> Counter[tuple[str, str, str]]:
        return Counter((a.account_id, a.kind.value, a.transition.value) for a in alerts)

    assert swept_all.alerts and kinds(swept_changed.alerts) == kinds(swept_all.alerts)
    assert isinstance(every.store, MemoryStore) and isinstance(changed.store, MemoryStore)

    def states(store: MemoryStore) -> dict[bytes, dict[str, Any]]:
        return {
            key: decode_detector(state.detector) if state.detector else {}
            for key, state in store.states.items()
        }

    def untimed(state: dict[str, Any]) -> dict[str, Any]:
        episode = state["e"]  # [id (account:opened ms), opened ms, ...]
        return {**state, "e": episode[2:] if episode is not None else None}

    states_all, states_changed = states(every.store), states(changed.store)
    assert {k: untimed(s) for k, s in states_all.items()} == {
        k: untimed(s) for k, s in states_changed.items()
    }
    later = [k for k in states_all if states_all[k] != states_changed[k]]
    assert len(later) <= 1, later


def test_detector_states_dropped_between_sweeps_change_nothing_but_memory(arrivals: list[Arrival]) -> None:
    """``keep_decoded_detectors=False`` (``CHURNWATCH_STATE_DECODED_DETECTORS``, the wall clock's default):
    between sweeps an account holds only its detector state's stored form, and each sweep decodes it again.
    The same accounts evaluated, the same alerts, the same stored states; an assessed cancellation keeps only
    its time (what tells a later sweep not to judge it again), not its decoded state."""
    kept, dropped = engine(incremental=True), engine(incremental=True, keep_decoded_detectors=False)
    run_kept, run_dropped = timer_run(kept, arrivals), timer_run(dropped, arrivals)
    assert run_kept.alerts and run_dropped.alerts == run_kept.alerts
    assert run_dropped.evaluated == run_kept.evaluated
    assert isinstance(kept.store, MemoryStore) and isinstance(dropped.store, MemoryStore)
    assert {k: s.detector for k, s in dropped.store.states.items()} == {
        k: s.detector for k, s in kept.store.states.items()
    }
    canceled = {
        key
        for key, state in kept.store.states.items()
        if state.live_detector is not None and state.live_detector.canceled_ts_ms is not None
    }
    assert canceled, "no assessed cancellation: the test needs one"
    assert not any(state.live_detector is not None for state in dropped.store.states.values())
    assessed = {key for key, state in dropped.store.states.items() if state.assessed_cancel_ms is not None}
    assert assessed == canceled
    assert sum(state.live_detector is not None for state in kept.store.states.values()) > 2 * len(canceled)


def test_dropped_detector_states_settle_an_outage_as_kept_ones(arrivals: list[Arrival]) -> None:
    """Alerts the outage guard mutes change the accounts' detector states after they were observed: with
    detector states not kept decoded, the stored form observed is decoded again, muted and stored."""
    config = DetectorConfig(outage_min_accounts=1, outage_share=0.1)
    half = arrivals[: len(arrivals) // 2]
    engines = [engine(True, config=config, keep_decoded_detectors=keep) for keep in (True, False)]
    kept, dropped = (timer_run(e, half) for e in engines)
    assert kept.suppressed, "nothing muted: the test needs an incident"
    assert (dropped.alerts, dropped.suppressed) == (kept.alerts, kept.suppressed)
    stores = [e.store for e in engines]
    assert isinstance(stores[0], MemoryStore) and isinstance(stores[1], MemoryStore)
    assert {k: s.detector for k, s in stores[1].states.items()} == {
        k: s.detector for k, s in stores[0].states.items()
    }


def test_a_few_changed_accounts_do_not_move_the_outage_guard(arrivals: list[Arrival]) -> None:
    """A guard that opens an incident from one quiet or dropping account: sweeps of every account and
    changed-only sweeps raise the same incidents (judged on whole sweeps), though the changed accounts alone
    would often pass the share."""
    config = DetectorConfig(outage_min_accounts=1, outage_share=0.1)
    half = arrivals[: len(arrivals) // 2]
    incidents = [
        [
            alert
            for alert in timer_run(engine(incremental, config=config), half).alerts
            if alert.account_id == "*"
        ]
        for incremental in (False, True)
    ]
    assert incidents[0] and incidents[1] == incidents[0]


def test_at_risk_view_keeps_the_accounts_a_changed_only_sweep_skipped(arrivals: list[Arrival]) -> None:
    e = engine(incremental=True)
    run = timer_run(e, arrivals[: len(arrivals) // 2])
    assert run.changed_only[-1]
    at_risk = dict(e.detection.at_risk)
    assert at_risk, "nobody at risk: the test needs an open episode"
    tick = e.last_sweep_ms
    assert tick is not None
    quiet = e.sweep(tick + 1)  # nothing reached anybody since
    assert quiet.assessments == [] and e.detection.at_risk == at_risk


@pytest.mark.parametrize("keep_decoded", [True, False])
def test_an_answer_counts_as_a_change(arrivals: list[Arrival], keep_decoded: bool) -> None:
    e = engine(incremental=True, keep_decoded_detectors=keep_decoded)
    run = timer_run(e, arrivals[: len(arrivals) // 2])
    assert run.alerts
    alert = run.alerts[-1]
    tick = e.last_sweep_ms
    assert tick is not None
    feedback = Feedback(
        alert_id=alert.idempotency_key,
        account_id=alert.account_id,
        label=FeedbackLabel.FALSE_ALARM,
        user="ana",
        source=FeedbackSource.SLACK,
        answered_ts_ms=tick + 1,
    )
    e.fold([AnswerArrival(feedback, 0, 0)])
    state = e.store.get(alert.account_id.encode())
    assert state is not None and (state.live_detector is not None) == keep_decoded
    outcome = e.sweep(tick + 2)
    assert [a.account_id for a in outcome.assessments] == [alert.account_id]


def test_usage_of_today_waits_for_the_next_day_and_late_usage_counts_now(arrivals: list[Arrival]) -> None:
    e = engine(incremental=True)
    run = timer_run(e, arrivals[: len(arrivals) // 2])
    tick = e.last_sweep_ms
    assert tick is not None and run.changed_only[-1]
    account = sorted(run.evaluated[-4])[0]  # judged at the day's first sweep
    usage = next(
        a.event for a in arrivals if isinstance(a.event, UsageEvent) and a.event.account_id == account
    )

    def used(ts_ms: int, event_id: str) -> Arrival:
        return Arrival(msgspec.structs.replace(usage, ts_ms=ts_ms, event_id=event_id), 0, 10**9)

    e.fold([used(tick + 1, "today-1")])
    assert e.sweep(tick + 2).assessments == [], "today's usage changes no judgement of today"
    e.fold([used(tick - DAY_MS, "late-1")])  # yesterday's, arriving late: yesterday is judged complete
    assert [a.account_id for a in e.sweep(tick + 3).assessments] == [account]


def test_a_new_day_a_restore_or_everyone_sweeps_every_account(arrivals: list[Arrival]) -> None:
    e = engine(incremental=True)
    timer_run(e, arrivals[: len(arrivals) // 2])
    tick = e.last_sweep_ms
    assert tick is not None
    accounts = len(e.sweep(tick, everyone=True).assessments)
    assert accounts > 0 and e.last_sweep is not None and not e.last_sweep.changed_only
    assert e.sweep(tick + 1).assessments == []
    e.restore([0])  # a rebalance: other partitions' accounts may be here now
    assert len(e.sweep(tick + 2).assessments) == accounts
    assert e.sweep(tick + 3).assessments == []
    next_day = (tick // DAY_MS + 1) * DAY_MS
    assert len(e.sweep(next_day).assessments) == accounts


def test_off_for_a_holdout_and_by_default(arrivals: list[Arrival]) -> None:
    assert not engine(incremental=True, holdout_member=lambda account_id: False).incremental
    e = engine(incremental=False)
    timer_run(e, arrivals[: len(arrivals) // 4])
    tick = e.last_sweep_ms
    assert tick is not None and e.touched == set()
    assert len(e.sweep(tick + 1).assessments) == len(e.sweep(tick + 2).assessments) > 0


def test_a_changed_only_sweep_skips_accounts_of_partitions_no_longer_owned(arrivals: list[Arrival]) -> None:
    owned = [0, 1]
    store = CachedStore({}, WindowConfig(), lambda: owned)
    e = engine(incremental=True, store=store)
    half = arrivals[: len(arrivals) // 2]
    split = [Arrival(a.event, hash(a.event.account_id) % 2, a.offset) for a in half]
    timer_run(e, split)
    tick = e.last_sweep_ms
    assert tick is not None
    gone = next(a.event.account_id for a in split if a.partition == 1)
    kept = next(a.event.account_id for a in split if a.partition == 0)
    e.touched |= {gone, kept}
    owned.remove(1)  # revoked; the cache still holds its states until the rebalance's restore
    assert [a.account_id for a in e.sweep(tick + 1).assessments] == [kept]
    state = store.get(gone.encode())
    assert isinstance(state, AccountState) and state.partition == 1
