"""The open days' event-name counts (``detectors/open_names.py``): exact key events, the stored forms, memory.

Memory is measured with ``tracemalloc`` (exact bytes allocated; it does not depend on the machine's load).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from detectors.open_names import NAMES, names_from_state, names_state
from detectors.vocabulary import BillingKind
from detectors.windows import DAY_MS, KEY_EVENTS, AccountWindow, WindowConfig, day_of
from tests.test_compact_state import bytes_each

DAY0 = 20_600
VOCABULARY = [f"event_{i}" for i in range(12)]


def key_events(names: dict[str, int]) -> int:
    """A day's key events as a dict of names per day defined them: all tracked counts but the largest."""
    return sum(names.values()) - max(names.values()) if names else 0


def open_day_names(window: AccountWindow) -> dict[int, dict[str, int]]:
    """Each open day's non-zero counts by name, read from the stored form."""
    rows = window.to_state()["k"]
    if not rows:
        return {}
    return {day: {n: c for n, c in zip(rows[0], counts, strict=True) if c} for day, *counts in rows[1:]}


@pytest.mark.parametrize(("seed", "lateness_days"), [(1, 2), (2, 0), (3, 5), (4, 30)])
def test_key_events_match_a_dict_of_names_per_day(seed: int, lateness_days: int) -> None:
    """Random usage of 12 names, in and out of order, with 8 tracked (names get evicted): every day's key
    events are those of a dict of the tracked names per open day, frozen when the day closes; the state
    goes through its stored form now and then."""
    rng = random.Random(seed)
    config = WindowConfig(allowed_lateness_ms=lateness_days * DAY_MS, top_events=2)
    window = AccountWindow(config)
    reference: dict[int, dict[str, int]] = {}  # the open days' names, as a dict per day
    closed: dict[int, int] = {}
    newest = DAY0 * DAY_MS
    for step in range(4_000):
        newest += rng.randrange(0, DAY_MS // 15)
        ts_ms = newest - rng.randrange(0, (lateness_days + 2) * DAY_MS)
        name, count = rng.choice(VOCABULARY[: rng.choice((3, 12))]), rng.randrange(1, 4)
        tracked_before = set(window.event_totals)
        accepted = window.add_usage(ts_ms, name, None, count)
        open_from = window._open_from()
        for day in [d for d in reference if d < open_from]:
            closed[day] = key_events(reference.pop(day))
        for gone in tracked_before - set(window.event_totals):  # evicted: its open days' counts go
            for names in reference.values():
                names.pop(gone, None)
        if accepted and window.days.get(day_of(ts_ms)) is not None:
            day_names = reference.setdefault(day_of(ts_ms), {})
            day_names[name] = day_names.get(name, 0) + count
        if step % 500 == 499:
            window = AccountWindow.from_state(window.to_state(), config)
    assert len(closed) > 20
    for day, expected in closed.items():
        bucket = window.days.get(day)
        if bucket is not None:
            assert bucket[KEY_EVENTS] == expected == window.key_events(day), day
    assert open_day_names(window) == {day: names for day, names in reference.items() if names}
    for day, names in reference.items():
        assert window.key_events(day) == key_events(names)
    assert window.open_key_events() == {day: key_events(names) for day, names in reference.items() if names}


def test_a_state_written_with_a_dict_of_names_per_day_reads_back_the_same() -> None:
    """Rows written before the counts were one array held ``"e"``: ``[[day, {name: count}], ...]``."""
    window = AccountWindow(WindowConfig())
    for day, names in ((DAY0, ("view", "export")), (DAY0 + 1, ("export", "view", "search")), (DAY0 + 2, ())):
        for i, name in enumerate(names):
            window.add_usage(day * DAY_MS + i, name, "u1", i + 1)
        window.add_usage(day * DAY_MS + 99, "view", "u1", 5)
    state = window.to_state()
    old: dict[str, Any] = {key: value for key, value in state.items() if key != "k"}
    old["e"] = [[day, names] for day, names in sorted(open_day_names(window).items())]
    assert old["e"][1] == [DAY0 + 1, {"view": 7, "export": 1, "search": 3}]
    again = AccountWindow.from_state(old, WindowConfig())
    assert again.to_state() == state
    assert [again.key_events(day) for day in range(DAY0, DAY0 + 3)] == [2, 4, 0]


def test_the_open_days_names_cost_their_counts_and_a_shared_tuple() -> None:
    """Six names on three open days: 8 bytes a count in one array, and a names tuple every window with the
    same names shares (a dict of names per day in a dict by day took ~700 bytes)."""
    names = [f"event_{i}" for i in range(6)]
    state = [names, *([day, *range(1, 7)] for day in range(DAY0, DAY0 + 3))]
    first, _ = names_from_state(state, 4)
    assert names_from_state(state, 4)[0] is first and NAMES[first] is first
    assert bytes_each(lambda: names_from_state(state, 4)) < 4 * 6 * 8 + 210  # with the pair returned
    _, counts = names_from_state(state, 4)
    assert names_state(first, counts, range(DAY0, DAY0 + 3), 4) == state

    def folded() -> AccountWindow:
        window = AccountWindow(WindowConfig())
        for day in range(DAY0, DAY0 + 3):
            for i, name in enumerate(names):
                window.add_usage(day * DAY_MS + i, name, None, i + 1)
        return window

    assert folded().open_names is folded().open_names
    # The whole window: three open buckets, the totals and the counts (~1.6 KB; with a dict per day ~2.3 KB).
    assert bytes_each(folded, n=50) < 1_900


def test_names_and_plans_are_one_object_for_every_window() -> None:
    """An event's name and plan are new strings each time they are decoded; a window keeps one object each
    (the replayed 1,000-account file: ~260 bytes less per window)."""

    def folded() -> AccountWindow:
        window = AccountWindow(WindowConfig())
        window.add_usage(DAY0 * DAY_MS, "".join(["report_", "exported"]), None, 1)  # a new string each call
        window.add_billing(DAY0 * DAY_MS, BillingKind.PAYMENT_SUCCEEDED, 99.0, "".join(["pro", "_plan"]))
        return window

    first, second = folded(), folded()
    (first_name,), (second_name,) = first.event_totals, second.event_totals
    assert first_name is second_name is first.open_names[0]
    assert first.plan is second.plan
    again = AccountWindow.from_state(first.to_state(), WindowConfig())
    assert again.plan is first.plan and again.to_state() == first.to_state()
