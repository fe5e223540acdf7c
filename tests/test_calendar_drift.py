"""``new_account`` and the trends are read against the base, so what the whole base does with the calendar
does not move them.

In a file whose accounts all start together (ChurnSim: 1,000 customers on 2020-01-01), an absolute tenure
falls for everybody with the calendar, and everybody gets a 4-week trend on the same day; the risk model
learns a positive when its account cancels but a negative only a horizon after its snapshot, so it read
such drift as churn (a weight of -1.3 on ``new_account`` on ChurnSim; ``docs/detection.md``, fifth and
seventh passes).
"""

from __future__ import annotations

import orjson

from detectors.features.level import NewAccount, Trend
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.population import PopulationModel
from detectors.reasons import reason_kind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig

DAY0 = 20_600


def _new_account(relative: bool, days: tuple[int, ...]) -> dict[int, dict[str, float]]:
    """``new_account`` of every account on each of ``days``: 40 accounts join on DAY0, 10 on DAY0 + 20, all
    active every day."""
    monitor = AccountMonitor(DetectorConfig(relative_tenure=relative), WindowConfig())
    joins = {f"a{i}": DAY0 for i in range(40)} | {f"late{i}": DAY0 + 20 for i in range(10)}
    accounts = {a: (AccountWindow(WindowConfig()), monitor.new_state()) for a in joins}
    seen: dict[int, dict[str, float]] = {}
    for day in range(DAY0, DAY0 + max(days)):
        for account_id, (window, _) in accounts.items():
            if day >= joins[account_id]:
                window.add_usage(day * DAY_MS + 36_000_000, "login", "u1", 3)
        now = (day + 1) * DAY_MS
        live = [(a, w, s) for a, (w, s) in accounts.items() if day >= joins[a]]
        monitor.census(live, now)
        found = {a: monitor.observe(a, w, s, now).features for a, w, s in live}  # the daily sweep
        if day + 1 - DAY0 in days:
            seen[day + 1 - DAY0] = {a: f.get("new_account", 0.0) for a, f in found.items()}
    return seen


def test_a_base_aging_as_a_whole_does_not_move_new_account() -> None:
    """Between days 40 and 70 every account ages 30 days: read alone, every account's newness falls by a
    third; read against the base, the late joiners stay as much newer than the base, the others at 0."""
    relative = _new_account(True, (40, 70))
    assert all(relative[day][f"a{i}"] == 0.0 for day in (40, 70) for i in range(40))
    late = [relative[day]["late0"] for day in (40, 70)]
    assert late[0] > 0.15 and abs(late[0] - late[1]) < 0.005, late
    alone = _new_account(False, (40, 70))
    assert alone[40]["a0"] - alone[70]["a0"] > 0.3 and alone[40]["late0"] - alone[70]["late0"] > 0.3


def test_the_base_means_are_saved_and_rebuilt_after_a_restore_the_same_day() -> None:
    population = PopulationModel()
    window = AccountWindow(WindowConfig())
    state = AccountMonitor(DetectorConfig(), WindowConfig()).new_state()
    window.add_usage(DAY0 * DAY_MS + 5, "login", "u1", 1)
    state.first_active_day = DAY0
    population.census([("acme", window, state)], DAY0 + 45)
    assert population.newness == 0.5 and population.new_account(9) == 0.4
    saved = orjson.loads(orjson.dumps(population.to_state()))
    assert PopulationModel.from_state(saved).newness == 0.5
    del saved["new"], saved["trends"]  # saved before they existed (or by the engine, piece by piece)
    restored = PopulationModel.from_state(saved)
    assert restored.newness is None and restored.trends is None and restored.new_account(9) == 0.0
    restored.census([("acme", window, state)], DAY0 + 45)  # the same day: the rest stays, these are rebuilt
    assert restored.newness == 0.5 and restored.trends == population.trends


def _trends(relative: bool, day: int) -> dict[str, float]:
    """``trend_4w`` of every account on ``day``: 40 accounts whose usage falls 1 % a day (a decline shared by
    the whole base) and one that falls 3 % a day, all from DAY0."""
    monitor = AccountMonitor(DetectorConfig(relative_trends=relative), WindowConfig())
    rates = {f"a{i}": 0.01 for i in range(40)} | {"fader": 0.03}
    accounts = {a: (AccountWindow(WindowConfig()), monitor.new_state()) for a in rates}
    found: dict[str, dict[str, float]] = {}
    for d in range(day):
        for account_id, (window, _) in accounts.items():
            count = max(1, round(40 * (1 - rates[account_id]) ** d))
            window.add_usage((DAY0 + d) * DAY_MS + 36_000_000, "login", "u1", count)
        now = (DAY0 + d + 1) * DAY_MS
        live = [(a, w, s) for a, (w, s) in accounts.items()]
        monitor.census(live, now)
        found = {a: monitor.observe(a, w, s, now).features for a, w, s in live}
    return {a: f.get("trend_4w", 0.0) for a, f in found.items()}


def test_a_decline_shared_by_the_whole_base_is_not_an_accounts_trend() -> None:
    relative, alone = _trends(True, 45), _trends(False, 45)
    assert alone["a0"] > 0.2 and alone["fader"] > alone["a0"] + 0.2
    assert relative["a0"] == 0.0 and abs(relative["fader"] - (alone["fader"] - alone["a0"])) < 0.02, relative


def test_the_reasons_say_what_the_features_are_compared_with() -> None:
    new = NewAccount(0.4, 9, 45).describe(0.4)
    assert new == "new account (9 days; accounts here average 45 days, counted up to 90)"
    trend = Trend("trend_4w", 0.3, 4, 0.05).describe(0.3)
    assert trend == "weekly usage trending down: -35% against -5% for the base, over the last 4 weeks"
    assert (reason_kind(new), reason_kind(trend)) == ("new_account", "trend_4w")
