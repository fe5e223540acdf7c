"""The engine's own state, saved with the account states: risk model, outage guard, population, what answers
taught about each plan, clock.

The detectors keep worker-wide state besides each account's: the global risk model (learned from outcomes),
the outage guard (open incidents) and the population model (segment percentiles, the BTYD fit, the holiday
calendar, how the base's silent spells and drops ended), which later sweeps read. A restart that rebuilt
them from scratch would judge the next days differently from a worker that never stopped, so they are
saved at each checkpoint and taken back at restore. The population pieces are saved through their own
``to_state``/``from_state``, with the parameters of the pieces they replace.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, TypeVar

import orjson

from detectors.monitor import AccountMonitor
from detectors.population import PopulationModel
from streams.engine.clock import EventClock
from streams.engine.detection import Detection

SAVED_VERSION = 1


class _Piece(Protocol):
    def to_state(self) -> Any: ...


P = TypeVar("P")


def _like(piece: P, state: Any) -> P:
    """A piece of the same class and parameters as ``piece``, from its saved state."""
    kind = type(piece)
    params = {
        name: getattr(piece, name) for name in inspect.signature(kind).parameters if hasattr(piece, name)
    }
    restored: P = kind.from_state(state, **params)  # type: ignore[attr-defined]
    return restored


def population_state(population: PopulationModel) -> dict[str, Any]:
    state: dict[str, Any] = {
        "levels": population.levels.to_state(),
        "depths": population.depths.to_state(),
        "btyd": population.btyd.to_state(),
        "calendar": population.calendar.to_state(),
        "spells": population.spells.to_state(),
        "drops": population.drops.to_state(),
        "day": population.census_day,
    }
    if population.budget is not None:  # only with an alert budget
        state["budget"] = population.budget.to_state()
    return state


def adopt_population(monitor: AccountMonitor, state: dict[str, Any]) -> bool:
    """Take a saved population when it was taken on a later day than the one in memory."""
    population = monitor.population
    day = state.get("day")
    if day is None or (population.census_day is not None and population.census_day >= day):
        return False
    population.levels = _like(population.levels, state["levels"])
    population.depths = _like(population.depths, state["depths"])
    population.btyd = _like(population.btyd, state["btyd"])
    population.calendar = _like(population.calendar, state["calendar"])
    if "spells" in state:  # saved before spell outcomes: they start afresh
        population.spells = _like(population.spells, state["spells"])
        population.drops = _like(population.drops, state["drops"])
    if population.budget is not None and "budget" in state:
        population.budget = _like(population.budget, state["budget"])
    population.census_day = day
    return True


def encode(detection: Detection, clock: EventClock) -> bytes:
    return orjson.dumps(
        {
            "v": SAVED_VERSION,
            "model": detection.risk_model.to_state(),
            "unlearned": [outcome.to_state() for outcome in detection.unlearned],
            "guard": detection.guard.to_state(),
            "population": population_state(detection.monitor.population),
            "segments": detection.segments.to_state(),
            "clock": clock.to_state(),
        },
        option=orjson.OPT_NON_STR_KEYS,
    )


def adopt(
    detection: Detection, clock: EventClock, saved: list[dict[str, Any]], partitions: list[int]
) -> None:
    """Take back saved states (one per partition): the risk model with most outcomes, the latest guard and
    population; the clock takes each partition's saved day and, when it had none, the earliest saved day."""
    clock.retain(partitions)
    clocks = [state["clock"] for state in saved if state.get("clock")]
    for state in sorted(clocks, key=lambda c: c["day"] if c.get("day") is not None else 1 << 62):
        clock.restore(state, partitions)
    for state in saved:
        if state.get("model") is not None:
            detection.adopt_learning(state["model"], state.get("unlearned", ()))
        if state.get("guard") is not None:
            detection.adopt_guard(state["guard"])
        if state.get("population") is not None:
            adopt_population(detection.monitor, state["population"])
        if state.get("segments"):
            detection.adopt_segments(state["segments"])
