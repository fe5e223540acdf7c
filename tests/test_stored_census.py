"""The census's numbers read from a detector state's stored form (``streams/engine/stored_census.py``) are the
ones it reads of the decoded state (``CensusInputs.of``), for every account after every sweep of a simulated
history, with an alert budget so the risk days are stored too. No Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from detectors.census import CensusInputs
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import Engine, MemoryStore
from streams.engine.fold import Arrival
from streams.engine.state import decode_detector, detector_json, encode_detector
from streams.engine.stored_census import stored_census_inputs
from streams.events import validate

START = datetime(2026, 2, 2, tzinfo=UTC)


def swept_states(accounts: int, days: int) -> list[CensusInputs]:
    """Every account's census inputs after each daily sweep, each checked against its stored form."""
    events = Simulation(SimulationConfig(seed=8, accounts=accounts, days=days, start=START)).events()
    arrivals = sorted(
        (Arrival(validate(event), 0, offset) for offset, event in enumerate(events)),
        key=lambda arrival: arrival.event.ts_ms,
    )
    monitor = AccountMonitor(DetectorConfig(alert_budget=0.05), WindowConfig())
    store = MemoryStore()
    engine = Engine(monitor, store, event_clock=False, wall_clock=lambda: 1)
    min_gaps = engine.detection.min_gaps
    seen: list[CensusInputs] = []
    tick, first = (arrivals[0].event.ts_ms // DAY_MS + 1) * DAY_MS, 0
    while first < len(arrivals):
        end = next((i for i in range(first, len(arrivals)) if arrivals[i].event.ts_ms >= tick), len(arrivals))
        engine.fold(arrivals[first:end])
        engine.sweep(tick)
        for state in store.states.values():
            detector = state.live_detector
            if detector is None:
                continue  # no usage yet: not swept
            assert state.detector is not None
            decoded = CensusInputs.of(detector)
            assert stored_census_inputs(detector_json(state.detector), min_gaps) == decoded
            seen.append(decoded)
        first, tick = end, tick + DAY_MS
    return seen


def test_the_stored_form_gives_the_census_the_numbers_of_the_decoded_state() -> None:
    seen = swept_states(accounts=40, days=60)
    assert len(seen) > 40 * 50
    # The comparison covered every kind of value the census reads.
    assert any(inputs.risk_days is not None for inputs in seen)
    assert any(inputs.regular_gap is not None for inputs in seen)
    assert any(inputs.regular_gap is None and inputs.n_days for inputs in seen)
    assert any(inputs.drop_since is not None for inputs in seen)
    assert any(inputs.learned_through is not None for inputs in seen)
    assert len({inputs.levels for inputs in seen}) > 100
    assert any(inputs.levels[0] != inputs.levels[1] for inputs in seen)


def test_a_state_stored_before_the_engagement_tracker_reads_as_no_engagement() -> None:
    detector = AccountMonitor(DetectorConfig(), WindowConfig()).new_state()
    detector.first_active_day = 20_500
    detector.engagement.learn_one(3.0, 1.0)
    older = decode_detector(encode_detector(detector.to_state()))
    del older["eg"]
    inputs = stored_census_inputs(orjson.dumps(older), min_gaps=2)
    assert (inputs.first_active_day, inputs.n_days, inputs.usage) == (20_500, 0, 0.0)
    assert CensusInputs.of(detector).n_days == 1
