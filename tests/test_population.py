"""Population-level detection: holidays, engagement level, buy-till-you-die, outcomes, listed severity.

Each test drives a small customer base day by day the way replay and the live sweep do: the last sweep's
outcomes learned and a ``census`` over all accounts first, then ``observe`` each one, then the outage guard
over the sweep.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import orjson

from detectors.baseline import is_weekend
from detectors.monitor import (
    AccountDetectorState,
    AccountMonitor,
    Assessment,
    DetectorConfig,
    OutageGuard,
    Outcome,
)
from detectors.population import PopulationModel
from detectors.vocabulary import BillingKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine.detection import AtRisk, Detection
from streams.live.ingest import AccountState
from tests.test_detectors import DAY0, Account, weekly

Level = Callable[[int, int], float]  # (account index, day) -> events that day


class Base:
    """Accounts sharing one monitor and one outage guard, swept together every midnight."""

    def __init__(self, monitor: AccountMonitor, n: int, *, census: bool = True) -> None:
        self.monitor = monitor
        self.guard = OutageGuard(monitor.config)
        self.accounts = [Account(monitor, f"acct-{i:02d}", seed=i) for i in range(n)]
        self.census = census
        self.incidents: list = []
        self.alerts: list = []
        self.last: list[Assessment] = []
        self.unlearned: list[Outcome] = []

    def run(self, first: int, last: int, level: Level) -> None:
        for day in range(first, last + 1):
            for i, acct in enumerate(self.accounts):
                acct.events(day, level(i, day), users=3)
            now = (day + 1) * DAY_MS
            self.monitor.learn(self.unlearned)
            self.unlearned = []
            if self.census:
                self.monitor.census([(a.account_id, a.window, a.state) for a in self.accounts], now)
            self.last = [acct.observe(now) for acct in self.accounts]
            self.unlearned = [o for a in self.last for o in a.outcomes]
            decision = self.guard.review(self.last, now)
            for alert in decision.suppressed:
                self.monitor.suppress(self.by_id(alert.account_id).state, alert)
            self.incidents.extend(decision.incident_alerts)
            self.alerts.extend(decision.alerts)

    def by_id(self, account_id: str) -> Account:
        return next(a for a in self.accounts if a.account_id == account_id)


def holiday_week(first: int) -> Level:
    """Everybody at 15% of the usual weekday level for the week from ``first`` (Monday to Sunday)."""
    base = weekly()
    return lambda i, day: base(day) * (0.15 if first <= day < first + 7 else 1.0)


def test_holiday_week_is_recognised_and_alerts_nothing() -> None:
    monday = DAY0 + 60 + (7 - (DAY0 + 60 + 3) % 7) % 7  # the first Monday from day 60 on
    assert not is_weekend(monday) and is_weekend(monday + 5)
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 40)
    base.run(DAY0, monday + 30, holiday_week(monday))
    quiet = base.monitor.population.calendar.quiet
    assert {monday, monday + 1, monday + 2, monday + 3, monday + 4} <= set(quiet)
    assert not set(quiet) & set(range(DAY0, monday)), "ordinary days are not holidays"
    assert base.incidents == [], "a holiday is not an ingestion outage"
    assert base.alerts == [], "nobody is at risk because of a holiday"
    # The holiday did not become anybody's normal.
    assert all(a.state.baselines[0].level() > 30 for a in base.accounts)


def test_without_the_population_calendar_the_same_holiday_trips_the_guard() -> None:
    """The counterfactual of the test above: the holiday handling is what keeps it quiet."""
    monday = DAY0 + 60 + (7 - (DAY0 + 60 + 3) % 7) % 7
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 40, census=False)
    base.run(DAY0, monday + 30, holiday_week(monday))
    assert base.incidents or base.alerts


def test_an_ingestion_outage_is_not_mistaken_for_a_holiday() -> None:
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 40)
    outage = DAY0 + 62
    base.run(DAY0, outage + 10, lambda i, d: 0.0 if i % 2 == 0 and outage <= d < outage + 5 else weekly()(d))
    assert not base.monitor.population.calendar.quiet
    opened = [a for a in base.incidents if a.transition.value == "opened"]
    assert len(opened) == 1 and base.alerts == []


def test_always_low_engagement_ranks_above_engaged_peers() -> None:
    """Accounts that never change look normal to the change detectors; their level still ranks them."""
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 40)
    levels = [2.0 + 2.0 * i for i in range(40)]  # 2 ... 80 events a weekday, each steady
    base.run(DAY0, DAY0 + 45, lambda i, day: levels[i] * (0.25 if is_weekend(day) else 1.0))
    risks = [a.risk for a in base.last]
    low, high = risks[:8], risks[-8:]
    assert min(low) > max(high)
    assert all("drop" not in a.flags for a in base.last), "steady accounts: nothing changed"
    feature = base.last[0].features
    assert feature["low_engagement"] > 0.8
    assert "low_engagement" not in base.last[-1].features or base.last[-1].features["low_engagement"] < 0.1


def test_lapsed_irregular_account_is_scored_by_the_btyd_model() -> None:
    """Irregular visitors (a visit on ~20% of days, at random): those that stopped are the ones the MBG/NBD
    model gives up on. Ten of sixty stop at different times, so the population itself shows that they leave.
    """
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 60)
    rng = random.Random(7)
    visits = {(i, day) for i in range(60) for day in range(DAY0, DAY0 + 86) if rng.random() < 0.2}

    def level(i: int, day: int) -> float:
        stopped = i < 10 and day >= DAY0 + 28 + 3 * i
        return 20.0 if (i, day) in visits and not stopped else 0.0

    base.run(DAY0, DAY0 + 85, level)
    assert base.monitor.population.btyd.fitted
    gone, staying = base.last[:10], base.last[10:]
    assert min(a.features.get("lapsed", 0.0) for a in gone) > 0.4, [a.features for a in gone]
    # A random visitor can be away for weeks by chance: ranked, not separated, from those who left.
    ranked = sorted(base.last, key=lambda a: -a.features.get("lapsed", 0.0))
    assert sum(a in gone for a in ranked[:12]) >= 8
    assert sum(a.risk for a in gone) / 10 > 2 * sum(a.risk for a in staying) / 50
    assert any("chance it has lapsed" in r for r in gone[0].reasons)


def test_horizon_inactivity_is_an_outcome_when_configured() -> None:
    for inactivity_is_churn in (True, False):
        monitor = AccountMonitor(DetectorConfig(inactivity_is_churn=inactivity_is_churn), WindowConfig())
        acct = Account(monitor)
        acct.run(DAY0, DAY0 + 40, weekly())
        outcomes = []
        for day in range(DAY0 + 41, DAY0 + 90):  # gone quiet, never cancels
            outcomes += acct.observe((day + 1) * DAY_MS).outcomes
        positives = [o for o in outcomes if o.label]
        assert bool(positives) is inactivity_is_churn
        assert monitor.risk_model.n_positives == 0  # observing learns nothing
        monitor.learn(outcomes)
        assert monitor.risk_model.n_positives == len(positives)


def test_listed_accounts_carry_reasons_and_the_severity_of_their_risk() -> None:
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    detection = Detection(monitor)
    accounts = {
        f"acct-{i}": AccountState(window=AccountWindow(WindowConfig()), partition=0) for i in range(3)
    }
    feeders = {key: Account(monitor, key, seed=i) for i, key in enumerate(accounts)}
    for key, state in accounts.items():
        feeders[key].window = state.window
    seen: list[AtRisk] = []
    for day in range(DAY0, DAY0 + 75):
        for i, feeder in enumerate(feeders.values()):
            if not (i == 0 and day >= DAY0 + 56):  # acct-0 goes silent, then comes back a little
                feeder.events(day, weekly()(day) * (0.2 if i == 0 and day >= DAY0 + 64 else 1.0))
        outcome = detection.sweep(
            [(key.encode(), state, 0) for key, state in accounts.items()], (day + 1) * DAY_MS, 0
        )
        seen.extend(outcome.at_risk.values())
    assert seen, "the silent account is listed"
    for row in seen:
        assert row.reasons
        assert row.severity == monitor.severity_of(row.risk).value


def test_level_low_for_the_whole_base_shows_although_the_plan_follows_size() -> None:
    """Plans follow team size, so within its plan a small account looks average; among all it does not."""
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    base = Base(monitor, 40)
    levels = [2.0 + 2.0 * i for i in range(40)]
    for i, acct in enumerate(base.accounts):  # the 20 smallest on "basic", the 20 largest on "business"
        acct.window.add_billing(
            DAY0 * DAY_MS, BillingKind.SUBSCRIPTION_CREATED, 99.0, "basic" if i < 20 else "business"
        )
    base.run(DAY0, DAY0 + 45, lambda i, day: levels[i] * (0.25 if is_weekend(day) else 1.0))
    smallest, largest_basic = base.last[0].features, base.last[19].features
    assert smallest["low_activity"] > 0.85  # bottom of the whole base
    assert largest_basic.get("low_engagement", 0.0) < 0.15  # top of its plan...
    assert 0.4 < largest_basic["low_activity"] < 0.6  # ...and in the middle of the base
    monitor.risk_model.prior.weights["low_activity"] = 3.0  # weight enough to be explained
    reasons = monitor.observe(
        "acct-00", base.accounts[0].window, base.accounts[0].state, (DAY0 + 46) * DAY_MS
    )
    assert any("of all accounts" in r for r in reasons.reasons), reasons.reasons


def test_inactive_ahead_tells_a_rare_visitor_from_a_frequent_one() -> None:
    """Both alive and recently seen; the rare visitor is much more likely to be quiet for the next 30 days."""
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 80)
    rng = random.Random(11)
    rate = [0.05 if i % 2 else 0.3 for i in range(80)]  # visits at random: ~30% or ~5% of days
    visits = {(i, day) for i in range(80) for day in range(DAY0, DAY0 + 80) if rng.random() < rate[i]}
    visits |= {(i, DAY0 + 79) for i in range(80)} | {(i, DAY0) for i in range(80)}  # all seen on both ends
    base.run(DAY0, DAY0 + 79, lambda i, day: 10.0 if (i, day) in visits else 0.0)
    assert base.monitor.population.btyd.fitted
    # Irregular accounts only (a rare visitor whose few gaps happen to be even is judged by its rhythm).
    rare = [v for a in base.last[1::2] if (v := a.features.get("inactive_ahead")) is not None]
    frequent = [a.features.get("inactive_ahead", 0.0) for a in base.last[0::2]]
    assert len(rare) >= 30
    assert min(rare) > max(frequent)
    assert all(0.0 <= v <= 1.0 for v in rare + frequent)


def test_a_restored_population_scores_accounts_as_the_original() -> None:
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    base = Base(monitor, 40)
    levels = [2.0 + 2.0 * i for i in range(40)]
    base.run(DAY0, DAY0 + 30, lambda i, day: levels[i])
    state = orjson.loads(orjson.dumps(monitor.population.to_state()))
    restored = AccountMonitor(DetectorConfig(), WindowConfig())
    restored.population = PopulationModel.from_state(state)
    assert restored.population.to_state() == monitor.population.to_state()
    now = (DAY0 + 31) * DAY_MS
    for acct in base.accounts[:3]:  # scored against the restored population without a census
        copy = AccountDetectorState.from_state(acct.state.to_state(), monitor.config)
        assert restored.observe(acct.account_id, acct.window, copy, now).features.get("low_activity") == (
            monitor.observe(acct.account_id, acct.window, acct.state, now).features.get("low_activity")
        )


def test_every_account_of_a_sweep_is_scored_by_the_same_model() -> None:
    """Outcomes labelled during a sweep change no score of it: observing learns nothing, the caller learns."""
    monitor = AccountMonitor(DetectorConfig(min_positives=1), WindowConfig())
    leaving, before, after = (Account(monitor, name, seed=3) for name in ("leaving", "before", "after"))
    for acct in (leaving, before, after):
        acct.run(DAY0, DAY0 + 40, weekly())
    leaving.window.add_billing((DAY0 + 41) * DAY_MS + 1000, BillingKind.SUBSCRIPTION_CANCELED, 199.0, "pro")
    now = (DAY0 + 42) * DAY_MS
    trio = [(a.account_id, a.window, a.state) for a in (before, leaving, after)]
    monitor.census(trio, now)
    first = before.observe(now)
    labelled = leaving.observe(now).outcomes
    assert labelled, "the cancellation labels its snapshots in the middle of the sweep"
    assert after.observe(now).risk == first.risk  # same events, same model
    assert monitor.risk_model.n_positives == 0
    assert monitor.learn(labelled) > 0 and monitor.risk_model.n_positives > 0


def test_the_engine_learns_a_sweeps_outcomes_at_the_next_sweep() -> None:
    monitor = AccountMonitor(DetectorConfig(min_positives=1), WindowConfig())
    detection = Detection(monitor)
    accounts = {name: AccountState(window=AccountWindow(WindowConfig()), partition=0) for name in ("a", "b")}
    feeders = {name: Account(monitor, name, seed=3) for name in accounts}
    for name, state in accounts.items():
        feeders[name].window = state.window
    sweep = lambda now: detection.sweep([(k.encode(), s, 0) for k, s in accounts.items()], now, now)  # noqa: E731
    for day in range(DAY0, DAY0 + 41):
        for feeder in feeders.values():
            feeder.events(day, weekly()(day))
        sweep((day + 1) * DAY_MS)
    feeders["a"].window.add_billing(
        (DAY0 + 41) * DAY_MS + 1000, BillingKind.SUBSCRIPTION_CANCELED, 199.0, "pro"
    )
    labelled = [o for a in sweep((DAY0 + 42) * DAY_MS).assessments for o in a.outcomes]
    assert labelled and monitor.risk_model.n_positives == 0, "not learned during the sweep that labels them"
    sweep((DAY0 + 43) * DAY_MS)
    assert monitor.risk_model.n_positives == sum(o.label for o in labelled) > 0


def test_a_weekend_lull_before_a_holiday_is_not_a_drop() -> None:
    """A holiday is left out of the drop window, which reaches back past it to a week of ordinary days: the
    few ordinary days a holiday week leaves in a week's window (here a silent weekend) are not a drop."""
    monday = DAY0 + 60 + (7 - (DAY0 + 60 + 3) % 7) % 7
    base = Base(AccountMonitor(DetectorConfig(), WindowConfig()), 40)
    usual = holiday_week(monday)
    lull = {monday - 2, monday - 1}  # accounts 0-4 skip the weekend before the holiday

    def level(i: int, day: int) -> float:
        return 0.0 if i < 5 and day in lull else usual(i, day)

    base.run(DAY0, monday + 5, level)  # to the holiday's Saturday: a week's window holds Sunday to Friday
    assert set(range(monday, monday + 5)) <= set(base.monitor.population.calendar.quiet)
    # Two silent weekend days among seven ordinary ones: ~0.12 (0.23 when the window ended at the holiday).
    drops = [a.features.get("usage_drop", 0.0) for a in base.last[:5]]
    assert max(drops) < 0.15, drops
    assert not base.alerts
