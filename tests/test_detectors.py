"""Behaviour of the account detectors on small hand-made event streams (no simulator, no Kafka)."""

from __future__ import annotations

import random
from collections.abc import Callable

import orjson
import pytest

from detectors.alerts import AlertKind, Transition
from detectors.baseline import is_weekend
from detectors.monitor import (
    AccountDetectorState,
    AccountMonitor,
    Assessment,
    DetectorConfig,
    OutageGuard,
)
from detectors.vocabulary import BillingKind, Priority, SupportKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig

DAY0 = 20_601  # 2026-05-28, a Thursday
NAMES = ("page_viewed", "report_exported", "comment_added", "search_performed")


class Account:
    """One account's window and detector state, fed day by day and observed at each midnight."""

    def __init__(self, monitor: AccountMonitor, account_id: str = "acme", seed: int = 1) -> None:
        self.monitor = monitor
        self.account_id = account_id
        self.window = AccountWindow(monitor.window_config)
        self.state = monitor.new_state()
        self.rng = random.Random(seed)
        self.alerts: list = []

    def events(self, day: int, level: float, users: int = 6) -> None:
        """About ``level`` usage events (Poisson-like noise) spread over the working hours of ``day``."""
        n = sum(1 for _ in range(int(level * 2)) if self.rng.random() < 0.5) if level > 0 else 0
        for k in range(n):
            ts = day * DAY_MS + 8 * 3_600_000 + k * 60_000
            user = f"u{self.rng.randrange(users)}"
            assert self.window.add_usage(ts, NAMES[self.rng.randrange(len(NAMES))], user, 1)

    def observe(self, now_ms: int) -> Assessment:
        assessment = self.monitor.observe(self.account_id, self.window, self.state, now_ms)
        self.alerts.extend(assessment.alerts)
        return assessment

    def run(self, first: int, last: int, level: Callable[[int], float]) -> list[Assessment]:
        """Feed days ``first..last`` with ``level(day)`` events, observing after each midnight."""
        out = []
        for day in range(first, last + 1):
            self.events(day, level(day))
            out.append(self.observe((day + 1) * DAY_MS))
        return out


def weekly(weekday: float = 40.0, weekend: float = 8.0) -> Callable[[int], float]:
    return lambda day: weekend if is_weekend(day) else weekday


@pytest.fixture
def monitor() -> AccountMonitor:
    return AccountMonitor(DetectorConfig(), WindowConfig())


def opened(alerts: list) -> list:
    return [a for a in alerts if a.transition is Transition.OPENED]


def test_weekend_lower_than_weekday_raises_nothing(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    assessments = acct.run(DAY0, DAY0 + 90, weekly(40, 6))
    assert acct.alerts == []
    assert all("drop" not in a.flags and "silent" not in a.flags for a in assessments[21:])
    assert max(a.risk for a in assessments[21:]) < 0.1
    assert assessments[-1].monitored


def test_sustained_drop_is_flagged_and_freezes_the_baseline(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    level_before = acct.state.baselines[0].level()
    # Users drift away: usage falls to 10% over four weeks and stays there.
    decline = acct.run(DAY0 + 56, DAY0 + 100, lambda d: weekly()(d) * max(0.1, 1 - (d - DAY0 - 56) / 28))
    flagged = [i for i, a in enumerate(decline) if "drop" in a.flags]
    assert flagged and flagged[0] <= 14, "the decline should be flagged within two weeks"
    first_alert = opened(acct.alerts)
    assert first_alert, "a sustained decline must open an episode"
    assert (first_alert[0].event_ts_ms // DAY_MS) - (DAY0 + 56) <= 28
    assert any("usage" in r or "active users" in r for r in first_alert[0].reasons)
    # The frozen baseline did not learn the decline as the new normal.
    assert acct.state.baselines[0].level() >= 0.9 * level_before


def test_vacation_dip_recovers_without_a_lasting_alert(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    acct.run(DAY0 + 56, DAY0 + 66, lambda d: weekly()(d) * 0.3)  # 11 days away at 30%
    final = acct.run(DAY0 + 67, DAY0 + 100, weekly())
    opens = opened(acct.alerts)
    assert all(a.severity.value == "low" for a in opens), "a vacation dip may at most raise a low alert"
    if opens:
        assert any(a.transition is Transition.RESOLVED for a in acct.alerts)
    assert acct.state.episode is None
    assert final[-1].risk < 0.1 and "drop" not in final[-1].flags


def test_silence_of_a_daily_account_is_caught_within_days(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    silent_from = DAY0 + 56
    for day in range(silent_from, silent_from + 20):  # nothing arrives; the sweep clock keeps running
        acct.observe((day + 1) * DAY_MS)
    first = opened(acct.alerts)
    assert first
    assert first[0].event_ts_ms // DAY_MS - silent_from <= 7
    assert any("silent for" in r for r in first[0].reasons)


def test_weekly_sparse_account_is_judged_against_its_own_gap(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    last_visit = DAY0
    for day in range(DAY0, DAY0 + 84):
        if (day - DAY0) % 7 == 0:  # one busy day a week
            acct.events(day, 30)
            last_visit = day
        acct.observe((day + 1) * DAY_MS)
    assert acct.alerts == []
    risks: dict[int, float] = {}
    silence: dict[int, float] = {}
    for gap in range(1, 40):
        a = acct.observe((last_visit + gap) * DAY_MS)
        risks[gap] = a.risk
        silence[gap] = a.features.get("silence", 0.0)
    assert silence[8] == 0.0, "a day past the usual week is not silence yet"
    assert max(risks[g] for g in range(1, 11)) < monitor.config.alert_threshold
    assert silence[14] > 0, "two weeks without the weekly visit is"
    first = opened(acct.alerts)
    assert first and 12 <= first[0].event_ts_ms // DAY_MS - last_visit <= 30


def test_payment_failures_raise_risk(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 40, weekly())
    before = acct.observe((DAY0 + 41) * DAY_MS).risk
    acct.window.add_billing((DAY0 + 41) * DAY_MS + 3_600_000, BillingKind.PAYMENT_FAILED, 199.0, "pro")
    after_one = acct.observe((DAY0 + 41) * DAY_MS + 4_000_000)
    assert after_one.risk > before
    acct.window.add_billing((DAY0 + 45) * DAY_MS + 3_600_000, BillingKind.PAYMENT_FAILED, 199.0, "pro")
    later = acct.run(DAY0 + 42, DAY0 + 50, weekly())
    assert later[-1].risk > 0.5
    alert = opened(acct.alerts)[0]
    assert any("payment failed twice" in r for r in alert.reasons)
    assert alert.plan == "pro" and alert.mrr == 199.0


def test_recovered_transient_payment_failure_stays_quiet(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 40, weekly())
    acct.window.add_billing((DAY0 + 41) * DAY_MS + 3_600_000, BillingKind.PAYMENT_FAILED, 199.0, "pro")
    acct.window.add_billing((DAY0 + 43) * DAY_MS + 3_600_000, BillingKind.PAYMENT_SUCCEEDED, 199.0, "pro")
    acct.run(DAY0 + 41, DAY0 + 60, weekly())
    assert acct.alerts == []


def test_support_storm_and_downgrade_raise_risk(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.window.add_billing(DAY0 * DAY_MS, BillingKind.SUBSCRIPTION_CREATED, 799.0, "business")
    acct.run(DAY0, DAY0 + 40, weekly())
    calm = acct.observe((DAY0 + 41) * DAY_MS).risk
    for k in range(5):
        ts = (DAY0 + 41 + k) * DAY_MS + 3_600_000
        acct.window.add_support(ts, SupportKind.TICKET_OPENED, Priority.URGENT, None)
        acct.window.add_support(ts + 60_000, SupportKind.ESCALATED, Priority.URGENT, None)
        acct.window.add_support(ts + 120_000, SupportKind.CSAT, None, 1)
    acct.window.add_billing((DAY0 + 46) * DAY_MS, BillingKind.PLAN_CHANGED, 199.0, "pro")
    stormy = acct.run(DAY0 + 41, DAY0 + 47, weekly())[-1]
    assert stormy.risk > max(0.3, 5 * calm)
    assert {"support", "downgrade"} <= stormy.flags
    text = " ".join(stormy.reasons)
    assert "tickets in 14 days" in text or "CSAT" in text


def test_outage_guard_raises_one_incident_instead_of_account_alerts(monitor: AccountMonitor) -> None:
    guard = OutageGuard(monitor.config)
    accounts = [Account(monitor, f"acct-{i:02d}", seed=i) for i in range(40)]
    incidents = []
    account_alerts = []
    outage_day = DAY0 + 50
    for day in range(DAY0, DAY0 + 70):
        batch = []
        for i, acct in enumerate(accounts):
            if not (i % 2 == 0 and day >= outage_day):  # half the accounts' events stop arriving
                acct.events(day, weekly()(day))
            batch.append(acct.observe((day + 1) * DAY_MS))
        decision = guard.review(batch, (day + 1) * DAY_MS)
        for alert in decision.suppressed:
            monitor.suppress(next(a for a in accounts if a.account_id == alert.account_id).state, alert)
        incidents.extend(decision.incident_alerts)
        account_alerts.extend(decision.alerts)
    opened_incidents = [a for a in incidents if a.transition is Transition.OPENED]
    assert len(opened_incidents) == 1
    assert opened_incidents[0].kind is AlertKind.PIPELINE_INCIDENT
    assert opened_incidents[0].event_ts_ms // DAY_MS - outage_day <= 2
    assert account_alerts == []


def test_outage_guard_ignores_a_few_silent_accounts(monitor: AccountMonitor) -> None:
    guard = OutageGuard(monitor.config)
    accounts = [Account(monitor, f"acct-{i:02d}", seed=i) for i in range(40)]
    kept = []
    for day in range(DAY0, DAY0 + 70):
        batch = []
        for i, acct in enumerate(accounts):
            if not (i < 3 and day >= DAY0 + 50):  # three accounts really go silent
                acct.events(day, weekly()(day))
            batch.append(acct.observe((day + 1) * DAY_MS))
        decision = guard.review(batch, (day + 1) * DAY_MS)
        assert not decision.incident_alerts
        kept.extend(decision.alerts)
    assert {a.account_id for a in opened(kept)} == {"acct-00", "acct-01", "acct-02"}


def test_episode_opens_escalates_resolves_then_cools_down() -> None:
    monitor = AccountMonitor(DetectorConfig(cooldown_days=21), WindowConfig())
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    for day in range(DAY0 + 56, DAY0 + 66):  # ten silent days
        acct.observe((day + 1) * DAY_MS)
    acct.run(DAY0 + 66, DAY0 + 90, weekly())  # back to normal
    transitions = [a.transition for a in acct.alerts]
    assert transitions[0] is Transition.OPENED
    assert Transition.ESCALATED in transitions
    assert transitions[-1] is Transition.RESOLVED
    assert transitions.count(Transition.OPENED) == 1
    assert len({a.episode_id for a in acct.alerts}) == 1
    episode_id = acct.alerts[0].episode_id
    assert episode_id == f"acme:{acct.alerts[0].event_ts_ms}"
    resolved_day = acct.alerts[-1].event_ts_ms // DAY_MS
    # Silent again right away: inside the cooldown nothing opens, after it a new episode does.
    count = len(acct.alerts)
    for day in range(DAY0 + 91, resolved_day + 30):
        acct.observe((day + 1) * DAY_MS)
    late = acct.alerts[count:]
    assert late and late[0].transition is Transition.OPENED
    assert late[0].event_ts_ms >= acct.alerts[-1].event_ts_ms - 0  # sanity
    assert late[0].event_ts_ms // DAY_MS >= resolved_day + 21
    assert late[0].episode_id != episode_id


def test_snooze_holds_back_alerts(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    monitor.snooze(acct.state, (DAY0 + 90) * DAY_MS)
    for day in range(DAY0 + 56, DAY0 + 80):
        acct.observe((day + 1) * DAY_MS)
    assert acct.alerts == []
    assert acct.state.episode is not None  # still tracked, just muted


def test_observe_is_idempotent(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 50, weekly())
    for day in range(DAY0 + 51, DAY0 + 58):
        acct.observe((day + 1) * DAY_MS)
    now = (DAY0 + 59) * DAY_MS
    first = acct.observe(now)
    state = orjson.dumps(acct.state.to_state())
    model = orjson.dumps(monitor.risk_model.to_state())
    again = acct.observe(now)
    assert orjson.dumps(acct.state.to_state()) == state
    assert orjson.dumps(monitor.risk_model.to_state()) == model
    assert again.alerts == [] and again.outcomes == []
    assert again.risk == first.risk and again.reasons == first.reasons


def test_json_state_round_trip_matches_in_memory_run() -> None:
    """The live table stores JSON after every update; replay keeps objects: both must decide the same."""
    config = DetectorConfig()
    memory = Account(AccountMonitor(config, WindowConfig()))
    stored = Account(AccountMonitor(config, WindowConfig()))
    level = lambda d: weekly()(d) * (1.0 if d < DAY0 + 50 else 0.35)  # noqa: E731
    for day in range(DAY0, DAY0 + 80):
        memory.events(day, level(day))
        stored.events(day, level(day))
        a = memory.observe((day + 1) * DAY_MS)
        stored.state = AccountDetectorState.from_state(
            orjson.loads(orjson.dumps(stored.state.to_state())), config
        )
        b = stored.observe((day + 1) * DAY_MS)
        assert (a.risk, a.reasons, a.flags) == (b.risk, b.reasons, b.flags)
    assert [x.to_dict() for x in memory.alerts] == [x.to_dict() for x in stored.alerts]


def test_cancellation_labels_snapshots_and_closes_the_episode(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 55, weekly())
    for day in range(DAY0 + 56, DAY0 + 70):
        acct.observe((day + 1) * DAY_MS)
    assert acct.state.episode is not None and acct.state.pending
    acct.window.add_billing((DAY0 + 70) * DAY_MS + 1000, BillingKind.SUBSCRIPTION_CANCELED, 199.0, "pro")
    final = acct.observe((DAY0 + 71) * DAY_MS)
    assert "canceled" in final.flags and final.risk == 1.0
    assert final.outcomes and all(o.label for o in final.outcomes)
    assert acct.state.episode is None and acct.state.pending == []
    # Observing learns nothing: the caller learns the outcomes when it chooses (the engine: next sweep).
    assert monitor.risk_model.n_positives == 0
    assert acct.observe((DAY0 + 72) * DAY_MS).outcomes == []
    assert monitor.risk_model.n_positives == 0
    assert monitor.learn(final.outcomes) == len(final.outcomes) == monitor.risk_model.n_positives


def test_detector_state_stays_small(monitor: AccountMonitor) -> None:
    acct = Account(monitor)
    acct.run(DAY0, DAY0 + 100, lambda d: weekly()(d) * (1.0 if d < DAY0 + 70 else 0.2))
    assert len(orjson.dumps(acct.state.to_state())) < AccountDetectorState.STATE_BUDGET_BYTES
