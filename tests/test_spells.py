"""Spell outcomes: the base learns how its silent spells and drops end, and silence is read against that.

A week-long silence in a base where such silences end in returns (vacations) weighs little and opens no
episode; the same silence where the base's silences end in cancellations keeps its weight. The counts are
followed per account with two integers, learned at the census, and saved and restored with the population.
"""

from __future__ import annotations

import orjson

from detectors.account_state import AccountDetectorState
from detectors.alerts import Transition
from detectors.monitor import AccountMonitor, Assessment, DetectorConfig
from detectors.spells import SpellOutcomes, reached, track_spell
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine.detection import Detection
from streams.engine.saved import adopt_population, population_state
from tests.test_detectors import DAY0
from tests.test_population import Base

N = 40
PROBE_SILENT_FROM = DAY0 + 90  # account 0 goes quiet again here, after everybody's week off


def daily_state(last_day: int) -> AccountDetectorState:
    state = AccountDetectorState(DetectorConfig())
    for day in range(last_day - 10, last_day + 1):
        state.gaps.learn_one(day)
    return state


def track(spells: SpellOutcomes, state: AccountDetectorState, today: int, **kw: bool) -> None:
    inactivity = kw.pop("inactivity_is_churn", True)
    track_spell(
        spells,
        state,
        AccountWindow(WindowConfig()),
        today,
        sparse_gap_days=2.5,
        horizon_days=30,
        inactivity_is_churn=inactivity,
        **kw,
    )


def test_a_spell_that_ends_in_a_return_counts_back_in_every_bin_it_reached() -> None:
    spells, state = SpellOutcomes(), daily_state(DAY0)
    track(spells, state, DAY0 + 1)
    assert state.spell == [DAY0, 0, 100]
    state.gaps.learn_one(DAY0 + 7)  # back after 6 silent days (the window is empty: the return day is read
    track(spells, state, DAY0 + 8)  # from the gap tracker then)
    assert state.spell is not None and state.spell[:2] == [DAY0 + 7, 0]
    spells.close(DAY0 + 8)
    assert [row for row in spells.counts[0] if row != [0.0, 0.0]] == [[1.0, 0.0]] * reached(6, 1.0)


def test_a_cancellation_counts_gone_and_a_horizon_of_silence_only_when_inactivity_is_churn() -> None:
    spells, state = SpellOutcomes(), daily_state(DAY0)
    track(spells, state, DAY0 + 1)
    track(spells, state, DAY0 + 13, canceled=True)  # cancelled after 12 silent days
    assert state.spell is None
    for inactivity in (True, False):
        lapsed = daily_state(DAY0)
        track(spells, lapsed, DAY0 + 1)
        track(spells, lapsed, DAY0 + 41, inactivity_is_churn=inactivity)  # 40 silent days: 10 past horizon
        assert lapsed.spell == [DAY0, reached(10, 1.0), 100]
    spells.close(DAY0 + 41)
    gone = [round(row[1]) for row in spells.counts[0]]
    # 12 silent days reach 7 bins; the lapsed spells count the bins reached 30 days ago (10 days: 6), once.
    assert gone == [2] * reached(10, 1.0) + [1] * (reached(12, 1.0) - reached(10, 1.0)) + [0, 0, 0]
    assert all(row[0] == 0.0 for row in spells.counts[0])


def opened(assessment: Assessment) -> bool:
    return any(alert.transition is Transition.OPENED for alert in assessment.alerts)


def alerted(base: Base) -> set[int]:
    return {int(a.account_id[5:]) for a in base.alerts if a.transition is Transition.OPENED}


def run_base(config: DetectorConfig) -> tuple[Base, list]:
    """40 daily accounts, each taking a 6-day week off (staggered, so the outage guard sees no incident),
    then account 0 falls silent again: the assessments of its second silence."""
    base = Base(AccountMonitor(config, WindowConfig()), N)

    def level(i: int, day: int) -> float:
        if i == 0 and day >= PROBE_SILENT_FROM:
            return 0.0
        off = DAY0 + 30 + i
        return 0.0 if off <= day < off + 6 else 20.0

    probe = []
    for day in range(DAY0, PROBE_SILENT_FROM + 12):
        base.run(day, day, level)
        if day >= PROBE_SILENT_FROM:
            probe.append(base.last[0])
    assert not base.incidents
    return base, probe


def test_a_silence_that_here_usually_ends_in_a_return_weighs_little_and_says_so() -> None:
    base, probe = run_base(DetectorConfig(silence_outcomes=True))
    _, plain = run_base(DetectorConfig(spell_hold=False))
    spells = base.monitor.population.spells
    assert spells.share_back(0, 5) == 1.0 and (spells.p_gone(0, 5) or 1.0) < 0.15  # N weeks off, all back
    fifth = probe[4]  # silent for 5 days
    assert 0 < fifth.features["silence"] < 0.2 * plain[4].features["silence"]
    # Past the base's returns (no spell here lasted 7 days) the silence has its full weight again.
    assert probe[8].features["silence"] == plain[8].features["silence"]
    # The same base without the spell outcomes alerted within the 6 days that, here, always ended.
    assert any(opened(a) for a in plain[:6]) and not any(opened(a) for a in probe[:6])
    assert "in this base 100% of accounts silent this long came back" in " ".join(fifth.reasons) or (
        fifth.risk < DetectorConfig().resolve_threshold  # not listed: no reasons to read
    )


def test_no_episode_opens_while_the_base_says_silences_this_long_come_back() -> None:
    held, probe = run_base(DetectorConfig(spell_hold=True))
    unheld, plain = run_base(DetectorConfig(spell_hold=False))
    first = [i for i, a in enumerate(plain) if a.alerts]
    later = [i for i, a in enumerate(probe) if opened(a)]
    assert first and later
    assert [a.risk for a in probe] == [a.risk for a in plain]  # the risk itself is unchanged
    assert first[0] < 6 <= later[0]  # held through the 6 silent days every spell of the base came back from
    # Every week off alerted without the hold; with it, only those taken before the base had seen enough
    # weeks off end (the first ones), the later ones none.
    assert alerted(unheld) == set(range(N))
    assert len(alerted(held)) > 0 and max(alerted(held)) < N / 2


def test_spell_outcomes_are_saved_and_restored_with_the_population() -> None:
    base, _ = run_base(DetectorConfig(spell_hold=True))
    saved = orjson.loads(orjson.dumps(population_state(base.monitor.population)))
    restored = Detection(AccountMonitor(DetectorConfig(), WindowConfig())).monitor
    assert adopt_population(restored, saved)
    for name in ("spells", "drops"):
        assert (
            getattr(restored.population, name).to_state() == getattr(base.monitor.population, name).to_state()
        )
    now = (PROBE_SILENT_FROM + 12) * DAY_MS
    probe = base.accounts[0]
    copy = AccountDetectorState.from_state(probe.state.to_state(), base.monitor.config)
    assert copy.spell == probe.state.spell
    assert restored.observe(probe.account_id, probe.window, copy, now).features == (
        base.monitor.observe(probe.account_id, probe.window, probe.state, now).features
    )
