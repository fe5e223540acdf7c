"""Monthly rhythms (``DetectorConfig.monthly_cycles``): an account busy in the same days of every month is
not judged by its quiet weeks while it keeps its schedule, and is judged as before once it misses it.

The base: 30 accounts with a weekly rhythm and 10 busy on the 12th-18th of each month, nearly silent in
between; one of those stops after its July days. Each test drives it day by day as replay does.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from functools import cache

import orjson

from detectors.account_state import AccountDetectorState
from detectors.alerts import Transition
from detectors.cycle import MonthlyCycle
from detectors.features import ABSENCE
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import WindowConfig
from tests.test_detectors import DAY0, weekly
from tests.test_population import Base

N, MONTHLY = 40, range(30, 40)
STOPPED = 39  # a monthly account that is not back after its July days
LAST = DAY0 + 150
STOPS_AFTER = date(2026, 7, 19)


def _date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def level(i: int, day: int) -> float:
    if i not in MONTHLY:
        return weekly()(day)
    if i == STOPPED and _date(day) > STOPS_AFTER:
        return 0.0
    return 60.0 if 12 <= _date(day).day <= 18 else 0.0


Seen = tuple[int, frozenset[str], float]  # (today, its features and flags, its risk)


@cache
def run(cycles: bool) -> tuple[Base, dict[int, list[Seen]]]:
    """The base after 150 days, and each monthly account's (day, features and flags, risk) as observed."""
    base = Base(AccountMonitor(DetectorConfig(monthly_cycles=cycles), WindowConfig()), N)
    seen: dict[int, list[Seen]] = {i: [] for i in MONTHLY}
    for day in range(DAY0, LAST + 1):
        base.run(day, day, level)
        for i in MONTHLY:
            assessed = base.last[i]
            seen[i].append((day + 1, frozenset(assessed.features) | assessed.flags, assessed.risk))
    return base, seen


def alerted(base: Base) -> set[int]:
    return {int(a.account_id[5:]) for a in base.alerts if a.transition is Transition.OPENED}


def test_monthly_accounts_on_schedule_show_no_absence_and_are_not_alerted() -> None:
    base, seen = run(True)
    keeping = [i for i in MONTHLY if i != STOPPED]
    assert all(base.accounts[i].state.cycle is not None for i in keeping)
    assert all(base.accounts[i].state.cycle.cyclic() for i in keeping)  # type: ignore[union-attr]
    late = [(today, f) for i in keeping for today, f, _ in seen[i] if today >= DAY0 + 90]
    assert late and not any(f & ABSENCE for _, f in late)
    assert not any(f & {"drop", "quiet"} for _, f in late), "nor in a drop or quiet, for the outage guard"
    assert not alerted(base) & set(keeping)
    assert not any(base.accounts[i].state.cycle.cyclic() for i in range(30))  # type: ignore[union-attr]


def peak_risk(seen: list[Seen]) -> float:
    return max(risk for today, _, risk in seen if today >= DAY0 + 90)


def test_without_the_option_the_same_quiet_weeks_read_as_absence() -> None:
    """The counterfactual: the option is what takes the quiet weeks out of their risk."""
    _, seen = run(False)
    _, cycled = run(True)
    keeping = [i for i in MONTHLY if i != STOPPED]
    assert all(any(f & ABSENCE for today, f, _ in seen[i] if today >= DAY0 + 90) for i in keeping)
    assert all(peak_risk(seen[i]) > 3 * peak_risk(cycled[i]) for i in keeping)


def test_a_monthly_account_that_misses_its_days_is_judged_again() -> None:
    base, seen = run(True)
    missed = date(2026, 8, 31)  # August's busy days (the 12th-18th, give or take the tolerance) are over
    before = [f for today, f, _ in seen[STOPPED] if _date(today) <= date(2026, 8, 10)]
    after = [f for today, f, _ in seen[STOPPED] if _date(today) >= missed]
    assert not any(f & ABSENCE for f in before[-20:])
    assert after and all({"silence", "recency"} <= f for f in after)
    assert STOPPED in alerted(base)


def test_random_days_are_not_a_monthly_rhythm() -> None:
    for seed in range(20):
        rng, cycle = random.Random(seed), MonthlyCycle()
        for day in range(DAY0, DAY0 + 180):
            cycle.learn_one(day, 20.0 if rng.random() < 0.15 else 0.0)
        assert not cycle.cyclic(), (seed, cycle.concentration())


def test_the_cycle_is_stored_only_with_the_option_on_by_default() -> None:
    base, _ = run(True)
    state = base.accounts[30].state
    stored = orjson.loads(orjson.dumps(state.to_state()))
    assert "mc" in stored
    config = DetectorConfig(monthly_cycles=True)
    restored = AccountDetectorState.from_state(stored, config)
    assert restored.cycle is not None and restored.cycle.to_state() == stored["mc"]
    assert DetectorConfig().monthly_cycles, "on by default (tenth pass)"
    off = AccountMonitor(DetectorConfig(monthly_cycles=False), WindowConfig()).new_state()
    assert off.cycle is None and "mc" not in off.to_state()
    fresh = AccountDetectorState.from_state(off.to_state(), config)  # stored before the option was on
    assert fresh.cycle is not None and fresh.cycle.weight == 0.0
