"""``new_account`` is read against the base, so a base that ages as a whole does not move it.

In a file whose accounts all start together (ChurnSim: 1,000 customers on 2020-01-01), an absolute tenure
falls for everybody with the calendar; the risk model learns a positive when its account cancels but a
negative only a horizon after its snapshot, so it read that drift as churn (a weight of -1.3 on
``new_account`` on ChurnSim; ``docs/detection.md``, fifth and seventh passes).
"""

from __future__ import annotations

import orjson

from detectors.features.level import NewAccount
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.population import PopulationModel
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


def test_the_base_newness_is_saved_and_rebuilt_after_a_restore_the_same_day() -> None:
    population = PopulationModel()
    window, state = AccountWindow(WindowConfig()), AccountMonitor(DetectorConfig(), WindowConfig()).new_state()
    window.add_usage(DAY0 * DAY_MS + 5, "login", "u1", 1)
    state.first_active_day = DAY0
    population.census([("acme", window, state)], DAY0 + 45)
    assert population.newness == 0.5 and population.new_account(9) == 0.4
    saved = orjson.loads(orjson.dumps(population.to_state()))
    assert PopulationModel.from_state(saved).newness == 0.5
    del saved["new"]  # a state saved before the base's newness existed (or by the engine, piece by piece)
    restored = PopulationModel.from_state(saved)
    assert restored.newness is None and restored.new_account(9) == 0.0
    restored.census([("acme", window, state)], DAY0 + 45)  # the same day: the rest stays, newness is rebuilt
    assert restored.newness == 0.5


def test_the_reason_says_what_new_account_is_compared_with() -> None:
    assert NewAccount(0.4, 9, 45).describe(0.4) == (
        "new account (9 days; accounts here average 45 days, counted up to 90)"
    )
