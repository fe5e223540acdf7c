"""The holdout uplift as the engine settles it (streams/engine/uplift.py): the rule at given clocks, and the
same counts as the replay report's :func:`~streams.offline.uplift.alerted_outcomes` on the same events, in
replay and in live mode (several partitions, restarts from the stored rows). No Kafka, no sleeps: every clock
is given."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.windows import DAY_MS, AccountWindow
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import AccountState
from streams.engine.uplift import CHURNED, LEFT_OUT, PENDING, STAYED, Tally, UpliftLedger
from streams.live.holdout import Holdout
from streams.offline.replay import ReplayResult, run_replay
from streams.offline.uplift import Cohort, alerted_outcomes
from tests.test_engine import CFG, START, WIDE, finish_live, records_of, run_live
from tests.test_uplift import opened

HORIZON_DAYS = 30
HALF = Holdout(share=0.5, experiment="uplift-test")


def state(partition: int = 0, canceled_day: int | None = None) -> AccountState:
    window = AccountWindow(CFG)
    window.canceled_ts_ms = canceled_day * DAY_MS if canceled_day is not None else None
    return AccountState(window, partition)


def tally_of(cohort: Cohort) -> Tally:
    """The report's cohort as the engine counts it."""
    tally = Tally(pending=cohort.pending)
    for outcome in cohort.outcomes:
        if outcome.held_out:
            tally.held_out += 1
            tally.held_out_churned += outcome.churned
        else:
            tally.delivered += 1
            tally.delivered_churned += outcome.churned
    return tally


# -- the rule, at given clocks -------------------------------------------------------------------------------


def test_an_account_is_settled_a_horizon_after_its_first_alert_and_counted_once() -> None:
    held = {"held", "held-churner"}
    ledger = UpliftLedger(HORIZON_DAYS, member=lambda account: account in held)
    states = {
        b"kept": state(),
        b"churner": state(),
        b"held": state(),
        b"held-churner": state(),
        b"late-churner": state(),
        b"quiet": state(),
    }
    rows = list(states.items())
    day10 = [opened(a, 10) for a in ("kept", "churner", "held", "held-churner", "late-churner")]
    changed = ledger.sweep(rows, day10, 10 * DAY_MS)
    assert sorted(key for key, _ in changed) == sorted(
        k.encode() for k in ("kept", "churner", "held", "held-churner", "late-churner")
    )
    assert states[b"held"].uplift == [10 * DAY_MS, 1, PENDING] and states[b"kept"].uplift == [
        10 * DAY_MS,
        0,
        0,
    ]
    assert states[b"quiet"].uplift is None
    assert ledger.total({0}) == Tally(pending=5)

    states[b"churner"].window.canceled_ts_ms = 40 * DAY_MS  # the horizon's last moment
    states[b"held-churner"].window.canceled_ts_ms = 20 * DAY_MS
    states[b"late-churner"].window.canceled_ts_ms = 40 * DAY_MS + 1
    # A day before the horizon passes: nothing settles, and a second alert changes no mark.
    assert ledger.sweep(rows, [opened("kept", 39)], 39 * DAY_MS) == []
    assert ledger.total({0}) == Tally(pending=5)

    ledger.sweep(rows, [], 40 * DAY_MS)
    names = ("kept", "churner", "held", "held-churner", "late-churner")
    assert [(states[k.encode()].uplift or [])[2:] for k in names] == [
        [STAYED],
        [CHURNED],
        [STAYED],
        [CHURNED],
        [STAYED],
    ]
    expected = Tally(delivered=3, delivered_churned=1, held_out=2, held_out_churned=1)
    assert ledger.total({0}) == expected
    # Settled for good: a later alert (or cancellation) does not enter or move an account again.
    states[b"kept"].window.canceled_ts_ms = 50 * DAY_MS
    assert ledger.sweep(rows, [opened("kept", 80)], 80 * DAY_MS) == []
    assert ledger.total({0}) == expected
    assert ledger.as_of_ms == 80 * DAY_MS


def test_accounts_cancelled_before_their_alert_are_left_out() -> None:
    ledger = UpliftLedger(HORIZON_DAYS, member=lambda account: False)
    before, late_news = state(canceled_day=5), state()
    rows = [(b"before", before), (b"late-news", late_news)]
    ledger.sweep(rows, [opened("before", 10), opened("late-news", 10)], 10 * DAY_MS)
    assert before.uplift == [10 * DAY_MS, 0, LEFT_OUT]
    assert ledger.total({0}) == Tally(pending=1)
    late_news.window.canceled_ts_ms = 9 * DAY_MS  # a cancellation dated before the alert, read after it
    ledger.sweep(rows, [], 11 * DAY_MS)
    assert late_news.uplift == [10 * DAY_MS, 0, LEFT_OUT]
    assert ledger.total({0}) == Tally()


def test_only_opened_account_alerts_mark_and_the_first_one_counts() -> None:
    ledger = UpliftLedger(HORIZON_DAYS, member=lambda account: False)
    account = state()
    incident = Alert(
        kind=AlertKind.PIPELINE_INCIDENT,
        account_id="a",
        episode_id="incident",
        transition=Transition.OPENED,
        severity=Severity.HIGH,
        risk=0.0,
        event_ts_ms=DAY_MS,
        detected_ts_ms=DAY_MS,
    )
    ledger.sweep([(b"a", account)], [incident, opened("a", 1, transition=Transition.ESCALATED)], DAY_MS)
    assert account.uplift is None
    ledger.sweep([(b"a", account)], [opened("a", 2), opened("a", 3)], 3 * DAY_MS)
    assert account.uplift == [2 * DAY_MS, 0, PENDING]


def test_counts_are_per_partition_and_only_owned_ones_add_up() -> None:
    ledger = UpliftLedger(HORIZON_DAYS, member=lambda account: account.startswith("h"))
    rows = [(f"{g}{p}".encode(), state(partition=p)) for p in range(3) for g in ("d", "h")]
    ledger.sweep(rows, [opened(key.decode(), 0) for key, _ in rows], 0)
    ledger.sweep(rows, [], HORIZON_DAYS * DAY_MS)
    assert sorted(ledger.tallies) == [0, 1, 2]
    assert ledger.total({0, 2}) == Tally(delivered=2, held_out=2)
    assert ledger.total({5}) == Tally()


def test_without_a_holdout_nothing_is_marked() -> None:
    ledger = UpliftLedger(HORIZON_DAYS)
    account = state()
    assert not ledger.active
    assert ledger.sweep([(b"a", account)], [opened("a", 0)], 0) == []
    assert account.uplift is None and ledger.tallies == {}


def test_a_mark_survives_the_stored_form_and_costs_a_few_bytes() -> None:
    plain = state(partition=2)
    marked = state(partition=2)
    marked.uplift = [1_795_000_000_000, 1, STAYED]
    assert AccountState.from_bytes(marked.to_bytes(), CFG).uplift == marked.uplift
    assert AccountState.from_bytes(plain.to_bytes(), CFG).uplift is None
    assert len(marked.to_bytes()) - len(plain.to_bytes()) <= 32


# -- the same counts as the replay report --------------------------------------------------------------------


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=START)).events())


def report_tally(replayed: ReplayResult) -> Tally:
    assert replayed.clock_ms is not None
    cohort = alerted_outcomes(
        replayed.alerts,
        replayed.cancellations,
        horizon_days=replayed.config.horizon_days,
        as_of_ms=replayed.clock_ms,
        holdout=HALF,
    )
    return tally_of(cohort)


@pytest.fixture(scope="module")
def replayed(events: list[dict[str, Any]]) -> ReplayResult:
    return run_replay((orjson.dumps(e) for e in events), holdout_member=HALF.member)


@pytest.fixture(scope="module")
def replayed_wide(events: list[dict[str, Any]]) -> ReplayResult:
    return run_replay((orjson.dumps(e) for e in events), window_config=WIDE, holdout_member=HALF.member)


def test_replay_settles_as_the_report_counts(replayed: ReplayResult) -> None:
    assert replayed.uplift is not None
    expected = report_tally(replayed)
    assert expected.delivered >= 1 and expected.held_out >= 1 and expected.pending >= 1  # every kind counted
    assert expected.delivered_churned + expected.held_out_churned >= 1
    assert replayed.uplift.total({0}) == expected


def test_a_replay_without_a_holdout_marks_no_account(events: list[dict[str, Any]]) -> None:
    plain = run_replay(orjson.dumps(e) for e in events[: len(events) // 2])
    assert all(s.uplift is None for s in plain.account_states.values())


@pytest.mark.parametrize(("partitions", "seed", "restarts"), [(1, 2, 1), (3, 5, 2)])
def test_live_mode_settles_as_the_report_counts(
    events: list[dict[str, Any]],
    replayed: ReplayResult,
    replayed_wide: ReplayResult,
    partitions: int,
    seed: int,
    restarts: int,
) -> None:
    """Checkpoints, restarts that read records again and several partitions: the counts the worker serves
    equal the report's on the same events, and a restart recounts the same from the stored rows."""
    baseline = replayed if partitions == 1 else replayed_wide
    config = CFG if partitions == 1 else WIDE
    live = run_live(
        records_of(events, partitions), partitions, seed, restarts, config=config, holdout_member=HALF.member
    )
    clock = baseline.clock_ms or 0
    finish_live(live, clock)
    owned = set(range(partitions))
    expected = report_tally(baseline)
    assert live.engine.uplift.total(owned) == expected
    live.start()  # a fresh engine recounts the stored rows
    assert live.engine.uplift.total(owned) == expected
    live.engine.sweep(clock, everyone=True)
    assert live.engine.uplift.total(owned) == expected
