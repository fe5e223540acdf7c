"""Stored account rows: two zstd frames (the closed part, the rest) compressed with the states' dictionary;
rows of version 1 (one frame) and rows written before the dictionary still decode."""

from __future__ import annotations

import tracemalloc
from typing import Any

import orjson
import zstandard

from detectors.windows import WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine.state import (
    DICTIONARY_PATH,
    AccountState,
    decode_detector,
    detector_json,
    encode_detector,
)
from streams.offline.replay import run_replay

CFG = WindowConfig()
PLAIN = zstandard.ZstdCompressor(level=1)  # no dictionary


def states() -> list[AccountState]:
    events = Simulation(SimulationConfig(seed=41, accounts=40, days=60)).events()
    result = run_replay([orjson.dumps(event) for event in events])
    return list(result.account_states.values())


def version_1_body(state: AccountState) -> bytes:
    """The body a version-1 row compressed as one frame."""
    body: dict[str, Any] = {
        "v": 1,
        "p": state.partition,
        "o": state.applied_offsets,
        "w": state.window.to_state(),
        "d": orjson.Fragment(detector_json(state.detector)) if state.detector is not None else None,
        "a": state.answers.to_state() if state.answers is not None else None,
    }
    if state.uplift is not None:
        body["u"] = state.uplift
    return orjson.dumps(body)


def test_rows_round_trip_and_version_1_rows_and_rows_without_the_dictionary_still_decode() -> None:
    dictionary = zstandard.ZstdCompressor(
        level=1, dict_data=zstandard.ZstdCompressionDict(DICTIONARY_PATH.read_bytes())
    )
    for state in states():
        row = state.to_bytes()
        assert AccountState.from_bytes(row, CFG).to_bytes() == row
        assert AccountState.partition_of(row) == state.partition
        body = version_1_body(state)
        prefix = state.partition.to_bytes(2, "big")
        for compressor in (PLAIN, dictionary):  # version 1, before and after the dictionary
            old = AccountState.from_bytes(prefix + compressor.compress(body), CFG)
            assert old.to_bytes() == row
            assert old.window.to_state() == state.window.to_state()


def test_the_dictionary_makes_rows_smaller() -> None:
    rows = states()
    with_dictionary = sum(len(state.to_bytes()) for state in rows)
    without = sum(
        7 + len(PLAIN.compress(state.closed_body())) + len(PLAIN.compress(state.open_body()))
        for state in rows
    )
    assert with_dictionary < 0.8 * without, (with_dictionary, without)


def test_the_detector_state_is_kept_encoded_and_rows_of_either_form_read_the_same() -> None:
    for state in states():
        assert isinstance(state.detector, bytes)
        assert decode_detector(state.detector) == state.live_detector.to_state()  # type: ignore[union-attr]
        body = version_1_body(state)
        # The row is what it was when the detector state was kept as a dict (the body re-encoded from its
        # own decoding: a row written before), so rows of either form decode to the same encoded state.
        before = orjson.dumps(orjson.loads(body))
        assert body == before
        row = state.partition.to_bytes(2, "big") + PLAIN.compress(before)
        assert AccountState.from_bytes(row, CFG).detector == state.detector


def test_the_stored_detector_form_is_compressed_and_of_its_exact_size() -> None:
    """In memory the detector's stored form is its JSON compressed (the row embeds the JSON itself): the same
    JSON back, the same bytes for the same state, and no more memory than the frame (``compress`` alone keeps
    the bound it allocated, ~2.5x the frame)."""
    for state in states()[:10]:
        assert state.detector is not None and state.live_detector is not None
        json = orjson.dumps(state.live_detector.to_state())
        assert detector_json(state.detector) == json
        assert encode_detector(orjson.loads(json)) == state.detector
        assert len(state.detector) < 0.6 * len(json)
        decoded = orjson.loads(json)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [encode_detector(decoded) for _ in range(50)]
            each = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
        finally:
            tracemalloc.stop()
        assert each < len(state.detector) + 64, (each, len(state.detector))
