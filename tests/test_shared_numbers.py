"""Numbers shared between accounts' detector states (issue 15): equal values, one object, same rows."""

from __future__ import annotations

from typing import Any

import orjson

from detectors import shared
from detectors.account_state import AccountDetectorState, Snapshot
from detectors.baseline import SeasonalBaseline
from detectors.config import DetectorConfig


def test_equal_floats_are_one_object_and_other_values_pass_through(monkeypatch: Any) -> None:
    monkeypatch.setattr(shared, "FLOATS", {})
    a, b = float("2.5"), float("2.5")
    assert a is not b and shared.shared_float(a) is shared.shared_float(b)
    # An int equal to a shared float stays an int (it is written "2", not "2.0"); zeros keep their sign.
    assert shared.shared_float(2.0) == 2.0 and type(shared.shared_float(2)) is int
    assert orjson.dumps(shared.shared_float(-0.0)) == b"-0.0"
    assert shared.shared_float(None) is None


def test_the_shared_floats_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(shared, "MAX_SHARED_FLOATS", 2)
    monkeypatch.setattr(shared, "FLOATS", {})
    values = [shared.shared_float(n + 0.5) for n in range(5)]
    assert len(shared.FLOATS) <= 2 and values == [0.5, 1.5, 2.5, 3.5, 4.5]


def test_snapshots_share_their_numbers_and_keep_their_stored_form() -> None:
    stored = orjson.loads(b"[20600,0.4321,[6,1.23,2,0.5]]")
    first, second = Snapshot.from_state(stored), Snapshot.from_state(orjson.loads(orjson.dumps(stored)))
    assert first.flat[1] is second.flat[1] and first.risk is second.risk and first.day is second.day
    assert orjson.dumps(first.to_state()) == orjson.dumps(stored)
    taken = Snapshot.taken(20_600, 0.43212, {"silence": 1.2345, "urgent": 0.001})
    assert taken.flat[1] is first.flat[1] and taken.risk is first.risk
    legacy = Snapshot.from_state([20600, 0.1, [[6, 1.23]]])  # stored before snapshots were flat
    assert legacy.features() == {"silence": 1.23}


def test_baselines_share_their_smoothing_factors() -> None:
    first, second = SeasonalBaseline(28.0), SeasonalBaseline.from_state(SeasonalBaseline(28.0).to_state())
    assert first._params is second._params  # the parameters and the two factors, in one tuple
    assert SeasonalBaseline(14.0)._params[3:] != first._params[3:]


def test_an_account_states_days_zeros_and_mrr_are_shared_and_its_stored_form_unchanged() -> None:
    state = AccountDetectorState(DetectorConfig())
    state.drop_since, state.last_snapshot_day, state.ref_mrr = 20_650, 20_660, 199.0
    stored = orjson.dumps(state.to_state())  # ticket rate and drop depth 0.0
    first, second = (AccountDetectorState.from_state(orjson.loads(stored)) for _ in range(2))
    for name in ("drop_since", "last_snapshot_day", "ref_mrr", "ticket_rate", "drop_depth"):
        assert getattr(first, name) is getattr(second, name), name
    assert orjson.dumps(first.to_state()) == stored and first.ticket_rate == 0.0
    # Non-zero rates and depths, -0.0 and ints as they were (written as before: "-0.0", "3").
    state.ticket_rate, state.drop_depth, state.ref_mrr = 0.01234, -0.0, 3
    stored = orjson.dumps(state.to_state())
    assert orjson.dumps(AccountDetectorState.from_state(orjson.loads(stored)).to_state()) == stored
