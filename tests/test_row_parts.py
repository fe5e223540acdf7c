"""A checkpoint copies a row's closed frame while the closed part has not changed (issue 15).

The property: whatever events an account folds between two writes, a row written from the row before it
(:meth:`AccountState.to_bytes` with ``previous``) is byte for byte the row written from scratch. A change to
the closed days that did not set ``AccountWindow.closed_changed`` would make the copy stale and fail it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from detectors.vocabulary import BillingKind, Priority, SupportKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import CachedStore
from streams.engine.state import ONE_FRAME_BELOW, ROW_PARTS, AccountState, RowForm, encode_detector

CFG = WindowConfig(retention_days=6)  # short, so days expire within a test's events
START = 20_000 * DAY_MS
PAD = b"x" * ONE_FRAME_BELOW  # a detector state this large makes every row two frames


def detector(n: int) -> bytes:
    """A detector's stored form (a new object each call) large enough for a row of two frames."""
    return encode_detector({"n": n, "pad": PAD.decode()})


@dataclass(frozen=True, slots=True)
class Step:
    """An event (or a write, or a new detector state) ``advance_ms`` after the last step, ``late_ms`` late."""

    action: str
    advance_ms: int
    late_ms: int
    choice: int


ACTIONS = ("usage", "usage", "usage", "support", "billing", "write", "detector")


def script(seed: int, length: int = 150) -> list[Step]:
    """A random account history: a clock moving up to 8 hours a step, events up to 3 days late (usage) or 5
    (support and billing, which may then land on days usage has closed), writes in between."""
    rng = random.Random(seed)
    return [
        Step(rng.choice(ACTIONS), rng.randint(0, DAY_MS // 3), rng.randint(0, 5 * DAY_MS), rng.randint(0, 3))
        for _ in range(length)
    ]


def apply(state: AccountState, step: Step, ts_ms: int) -> None:
    window = state.window
    if step.action == "usage":
        window.add_usage(ts_ms + max(0, step.late_ms - 3 * DAY_MS), f"e{step.choice}", f"u{step.choice}", 1)
    elif step.action == "support":
        window.add_support(ts_ms, list(SupportKind)[step.choice], list(Priority)[step.choice], 4)
    elif step.action == "billing":
        window.add_billing(ts_ms, list(BillingKind)[step.choice], 10.0 * step.choice, f"plan-{step.choice}")
    elif step.action == "detector":  # the same content in a new object, or new content
        state.detector = detector(step.choice // 2)


@pytest.mark.parametrize("seed", range(0, 400, 20))
def test_a_row_written_from_the_last_one_is_the_row_written_from_scratch(seed: int) -> None:
    copies = 0
    for history in range(seed, seed + 20):
        state = AccountState(AccountWindow(CFG), partition=3, detector=detector(0))
        previous: bytes | None = None
        clock = START
        for step in script(history):
            clock += step.advance_ms
            if step.action != "write":
                apply(state, step, clock - step.late_ms)
                continue
            copies += previous is not None and previous[2] == ROW_PARTS and state.closed_unchanged()
            row = state.to_bytes(previous)
            assert row == state.to_bytes(), f"history {history}: a stale closed frame was copied"
            assert AccountState.from_bytes(row, CFG).window.to_state() == state.window.to_state()
            state.mark_written(row)
            previous = row
    assert copies > 0  # the copy was exercised


def test_the_closed_frame_is_copied_until_a_day_closes() -> None:
    """The copy happens (a row's closed frame replaced by another one's is carried over), and stops when a
    day closes or the detector state changes."""
    state = AccountState(AccountWindow(WindowConfig()), partition=0, detector=detector(1))
    for day in range(5):
        state.window.add_usage(START + day * DAY_MS, "login", "u1", 1)
    row = state.to_bytes()
    assert row[2] == ROW_PARTS and state.window.closed_state()  # two closed days, days 0 and 1
    state.mark_written(row)
    other = AccountState(AccountWindow(WindowConfig()), partition=0, detector=detector(2)).to_bytes()
    length = int.from_bytes(other[3:7], "big")
    foreign = row[:3] + other[3 : 7 + length] + row[7 + int.from_bytes(row[3:7], "big") :]
    state.window.add_usage(START + 4 * DAY_MS + 1, "login", "u2", 1)  # the same day: nothing closes
    assert state.to_bytes(foreign)[3 : 7 + length] == other[3 : 7 + length]  # copied, not re-encoded
    state.window.add_usage(START + 5 * DAY_MS, "login", "u2", 1)  # day 2 closes
    assert state.to_bytes(foreign) == state.to_bytes()
    state.mark_written(state.to_bytes())
    state.detector = detector(1)  # equal content, another object: encoded again
    assert not state.closed_unchanged()


def test_a_store_commit_writes_from_the_stored_row_and_reads_it_back() -> None:
    rows: dict[bytes, bytes] = {}
    store = CachedStore(rows, WindowConfig(), lambda: {0})
    state = AccountState(AccountWindow(WindowConfig()), partition=0, detector=detector(1))
    for day in range(5):
        state.window.add_usage(START + day * DAY_MS, "login", "u1", 1)
    store.put(b"acct", state)
    store.commit()
    assert state.closed_unchanged()  # a row of two frames
    first = rows[b"acct"]
    state.window.add_usage(START + 4 * DAY_MS + 5, "login", "u3", 1)
    store.put(b"acct", state)
    store.commit()
    assert rows[b"acct"] == state.to_bytes() != first
    assert AccountState.from_bytes(rows[b"acct"], WindowConfig()).window.to_state() == state.window.to_state()
    assert store.take_rows_written() == {RowForm.TWO_FRAMES: 1, RowForm.CLOSED_COPIED: 1}
    assert not store.take_rows_written()  # taken


def test_a_late_support_event_on_a_closed_day_writes_the_closed_frame_again() -> None:
    state = AccountState(AccountWindow(WindowConfig()), partition=0, detector=detector(0))
    state.window.add_support(START + DAY_MS, SupportKind.TICKET_OPENED, Priority.LOW, None)
    for day in range(5):
        state.window.add_usage(START + day * DAY_MS, "login", "u1", 1)
    assert [row[0] for row in state.window.closed_state()] == [20_000, 20_001]
    previous = state.to_bytes()
    state.mark_written(previous)
    # Within the support stream's lateness (its watermark is day 1), on a day usage has closed.
    assert state.window.add_support(START + DAY_MS + 5, SupportKind.TICKET_OPENED, Priority.URGENT, None)
    assert state.to_bytes(previous) == state.to_bytes() != previous


class CountedRows(dict[bytes, bytes]):
    """Stored rows that count the look-ups of a row (a Faust table's ``get`` costs a few µs)."""

    looked_up = 0

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        self.looked_up += 1
        return super().get(key, default)


def test_a_young_account_is_written_as_one_frame_without_looking_its_row_up() -> None:
    state = AccountState(AccountWindow(WindowConfig()), partition=1, detector=encode_detector({"n": 1}))
    for day in range(4):
        state.window.add_usage(START + day * DAY_MS, "login", "u1", 1)
    row = state.to_bytes()
    assert row[2] != ROW_PARTS  # a zstd frame's first byte
    assert AccountState.from_bytes(row, WindowConfig()).to_bytes() == row
    rows = CountedRows()
    store = CachedStore(rows, WindowConfig(), lambda: {1})
    for minute in range(3):
        state.window.add_usage(START + 3 * DAY_MS + minute, "login", "u2", 1)
        store.put(b"young", state)
        store.commit()
    assert rows.looked_up == 0 and not state.closed_unchanged()
    assert store.take_rows_written() == {RowForm.ONE_FRAME: 3}
    assert AccountState.from_bytes(rows[b"young"], WindowConfig()).to_bytes() == rows[b"young"]


def test_a_store_told_to_write_one_frame_writes_one_even_over_a_row_of_two() -> None:
    """``CHURNWATCH_STATE_ROWS_IN_PARTS=false`` in a rolling upgrade: workers from before read every row."""
    state = AccountState(AccountWindow(WindowConfig()), partition=0, detector=detector(1))
    for day in range(5):
        state.window.add_usage(START + day * DAY_MS, "login", "u1", 1)
    two = state.to_bytes()
    assert two[2] == ROW_PARTS
    rows = {b"acct": two}
    store = CachedStore(rows, WindowConfig(), lambda: {0}, rows_in_parts=False)
    again = store.get(b"acct")
    assert again is not None and again.closed_unchanged()
    again.window.add_usage(START + 4 * DAY_MS + 5, "login", "u3", 1)
    store.put(b"acct", again)
    store.commit()
    assert rows[b"acct"][2] != ROW_PARTS and store.take_rows_written() == {RowForm.ONE_FRAME: 1}
    assert AccountState.from_bytes(rows[b"acct"], WindowConfig()).window.to_state() == again.window.to_state()
