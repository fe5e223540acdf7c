"""Stored account rows: compressed with the states' zstd dictionary; rows written before it still decode."""

from __future__ import annotations

import orjson
import zstandard

from detectors.windows import WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine.state import AccountState
from streams.offline.replay import run_replay

CFG = WindowConfig()


def states() -> list[AccountState]:
    events = Simulation(SimulationConfig(seed=41, accounts=40, days=60)).events()
    result = run_replay([orjson.dumps(event) for event in events])
    return list(result.account_states.values())


def test_rows_round_trip_and_rows_without_the_dictionary_still_decode() -> None:
    plain = zstandard.ZstdCompressor(level=1)
    for state in states():
        row = state.to_bytes()
        body = state.json_body()
        assert AccountState.from_bytes(row, CFG).json_body() == body
        assert AccountState.partition_of(row) == state.partition
        before = state.partition.to_bytes(2, "big") + plain.compress(body)  # a row from before the dictionary
        assert AccountState.from_bytes(before, CFG).json_body() == body


def test_the_dictionary_makes_rows_smaller() -> None:
    plain = zstandard.ZstdCompressor(level=1)
    rows = states()
    with_dictionary = sum(len(state.to_bytes()) for state in rows)
    without = sum(2 + len(plain.compress(state.json_body())) for state in rows)
    assert with_dictionary < 0.8 * without, (with_dictionary, without)


def test_the_detector_state_is_kept_encoded_and_rows_of_either_form_read_the_same() -> None:
    for state in states():
        assert isinstance(state.detector, bytes)
        assert orjson.loads(state.detector) == state.live_detector.to_state()  # type: ignore[union-attr]
        body = state.json_body()
        # The row is what it was when the detector state was kept as a dict (the body re-encoded from its
        # own decoding: a row written before), so rows of either form decode to the same encoded state.
        before = orjson.dumps(orjson.loads(body))
        assert body == before
        row = state.partition.to_bytes(2, "big") + zstandard.ZstdCompressor(level=1).compress(before)
        assert AccountState.from_bytes(row, CFG).detector == state.detector
