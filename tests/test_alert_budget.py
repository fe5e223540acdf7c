"""The alert budget (``DetectorConfig.alert_budget``, issue 14's ninth pass): on a base whose risk crosses the
alert threshold often, it raises the opening threshold so new episodes stay near the budget; on a base within
budget it changes nothing; the risk is untouched; it is saved with the population."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detectors.alerts import AlertKind, Transition
from detectors.budget import AlertBudget
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import WindowConfig
from streams.dev.shapes import ShapedBase, ShapesConfig
from streams.engine.saved import adopt_population, population_state
from streams.offline.replay import ReplayResult, replay_file
from streams.settings import load_settings


def shapes_file(path: Path) -> Path:
    """The ``tuning`` mix of :mod:`streams.dev.shapes`: its vacations and sparse accounts cross 0.5 often."""
    base = ShapedBase(ShapesConfig(mix="tuning", seed=102, accounts=120, days=90))
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in base.events()))
    return path


@pytest.fixture(scope="module")
def base_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_file(tmp_path_factory.mktemp("budget") / "shapes.jsonl")


def replay(path: Path, config: DetectorConfig) -> ReplayResult:
    return replay_file(path, config=config)


def openings(result: ReplayResult) -> list[tuple[str, int, float]]:
    return [
        (a.account_id, a.event_ts_ms, a.risk)
        for a in result.alerts
        if a.kind is AlertKind.ACCOUNT_RISK and a.transition is Transition.OPENED
    ]


@pytest.fixture(scope="module")
def plain(base_file: Path) -> ReplayResult:
    return replay(base_file, DetectorConfig())


def test_a_tight_budget_raises_the_threshold_and_opens_fewer_episodes(
    base_file: Path, plain: ReplayResult
) -> None:
    budgeted = replay(base_file, DetectorConfig(alert_budget=0.01))
    assert budgeted.monitor is not None and plain.monitor is not None
    budget = budgeted.monitor.population.budget
    assert budget is not None and plain.monitor.population.budget is None
    assert budget.threshold() > 0.5  # this base crosses 0.5 more often than 1 % of accounts a month
    assert budget.rate(0.5) > 0.01 and budget.rate(budget.threshold()) < budget.rate(0.5) / 3
    ours, theirs = openings(budgeted), openings(plain)
    assert 0 < len(ours) < 0.8 * len(theirs)
    assert min(risk for _, _, risk in ours) >= 0.5
    # The risk itself is untouched: the same outcomes learned from the same scored snapshots.
    assert budgeted.outcomes == plain.outcomes and budgeted.outcomes


def test_a_budget_the_base_keeps_changes_nothing(base_file: Path, plain: ReplayResult) -> None:
    loose = replay(base_file, DetectorConfig(alert_budget=1.0))
    assert loose.monitor is not None and loose.monitor.population.budget is not None
    assert loose.monitor.population.budget.threshold() == 0.5
    assert loose.alerts == plain.alerts


def test_the_budget_is_saved_and_restored_with_the_population(base_file: Path) -> None:
    result = replay(base_file, DetectorConfig(alert_budget=0.02))
    assert result.monitor is not None
    saved = orjson.loads(orjson.dumps(population_state(result.monitor.population)))
    restored = AccountMonitor(DetectorConfig(alert_budget=0.02), WindowConfig())
    assert adopt_population(restored, saved)
    before, after = result.monitor.population.budget, restored.population.budget
    assert before is not None and after is not None
    assert after.to_state() == before.to_state() and after.threshold() == before.threshold() > 0.5
    state = orjson.loads(orjson.dumps(result.monitor.population.to_state()))
    assert type(result.monitor.population).from_state(state).alert_threshold(0.5) == before.threshold()
    # Without a budget nothing of it is saved (the default's states are unchanged).
    assert "budget" not in population_state(AccountMonitor(DetectorConfig(), WindowConfig()).population)


def test_crossings_count_only_accounts_free_to_open() -> None:
    budget = AlertBudget(budget=0.1, floor=0.5, min_account_days=1)
    budget.close(100)
    budget.learn_one(0.1, 0.9, free=False)  # an open episode or a cooldown: no new one would open
    budget.learn_one(0.99, 0.995, free=True)  # above the top level already: no crossing
    assert budget.crossings == [0.0] * len(budget.levels) and budget.account_days == 2
    budget.learn_one(0.55, 0.61, free=True)
    assert [level for level, c in zip(budget.levels, budget.crossings, strict=True) if c] == [0.56, 0.58, 0.6]


def test_the_setting_reaches_the_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().detection.detector_config().alert_budget is None
    monkeypatch.setenv("CHURNWATCH_ALERT_BUDGET", "0.05")
    assert load_settings().detection.detector_config().alert_budget == 0.05
