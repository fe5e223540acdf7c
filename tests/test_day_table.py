"""DayTable: a window's days in a list indexed by day offset, read like the dict it replaced."""

from __future__ import annotations

import pytest

from detectors.day_table import DayTable
from detectors.windows import AccountWindow, WindowConfig

D = 20_600


def test_reads_like_a_dict_in_day_order() -> None:
    table = DayTable()
    assert not table and len(table) == 0 and list(table) == [] and table.get(D) is None
    table[D + 2] = [2]
    table[D + 5] = (5,)
    table[D] = [0]  # before the first day: the list grows at the front
    assert table.first == D and len(table.slots) == 6
    assert list(table) == [D, D + 2, D + 5] and min(table) == D and len(table) == 3 and table
    assert table.items() == [(D, [0]), (D + 2, [2]), (D + 5, (5,))]
    assert table.values() == [[0], [2], (5,)]
    assert table.get(D + 1) is None and table.get(D - 1) is None and table.get(D + 6) is None
    assert table[D + 5] == (5,) and D + 2 in table and D + 3 not in table
    with pytest.raises(KeyError):
        table[D + 1]
    table[D + 2] = [7]
    assert table.get(D + 2) == [7] and len(table) == 3


def test_drop_before_trims_leading_empty_days() -> None:
    table = DayTable.of_sorted([D, D + 3, D + 4], [[0], [3], [4]])
    assert table.slots == [[0], None, None, [3], [4]]
    table.drop_before(D - 5)
    assert list(table) == [D, D + 3, D + 4]
    table.drop_before(D + 1)  # D goes; D+1 and D+2 had no bucket, so the table starts at D+3
    assert table.first == D + 3 and table.slots == [[3], [4]]
    table.drop_before(D + 10)
    assert not table and table.slots == []
    table[D + 20] = [1]
    assert table.items() == [(D + 20, [1])]


def test_before_shares_buckets_without_the_later_days() -> None:
    bucket = [1]
    table = DayTable.of_sorted([D, D + 1, D + 3], [bucket, [2], [4]])
    view = table.before(D + 3)
    assert view.items() == [(D, [1]), (D + 1, [2])] and view.get(D) is bucket
    assert table.before(D + 3).slots == [bucket, [2]]  # no trailing empty day
    assert table.before(D + 2).items() == view.items() and not table.before(D)
    view[D + 2] = [9]
    assert table.get(D + 2) is None  # the view's list is its own


def test_window_keeps_one_user_entry_for_all_its_open_days() -> None:
    day_ms = 86_400_000
    t0 = D * day_ms
    window = AccountWindow(WindowConfig())
    assert window.open_users is None
    for day, user in [(0, "a"), (0, "b"), (1, "a"), (1, "a"), (2, "c")]:
        assert window.add_usage(t0 + day * day_ms, "login", user, 1)
    assert window.open_users is not None and len(window.open_users) == 3  # a, b, c: one entry per user
    state = window.to_state()
    assert [day for day, _ in state["u"]] == [D, D + 1, D + 2]
    assert [len(users) for _, users in state["u"]] == [2, 1, 1]
    assert all(users == sorted(users) for _, users in state["u"])
    restored = AccountWindow.from_state(state, WindowConfig())
    assert restored.open_users == window.open_users and restored.to_state() == state
    # Usage 3 days later closes the first day: its users go, its count stays.
    assert window.add_usage(t0 + 4 * day_ms, "login", "a", 1)
    assert [day for day, _ in window.to_state()["u"]] == [D + 2, D + 4]
    assert window.bucket(D)[1] == 2


def test_a_closed_days_user_bit_is_not_taken_for_a_new_day_that_reuses_it() -> None:
    day_ms = 86_400_000
    t0 = D * day_ms + 10 * 3_600_000
    window = AccountWindow(WindowConfig())  # 2 days of lateness: days share a bit 4 days apart
    for day in (0, 2, 4):  # the watermark jumps from D+2 to D+4: D closes, D+4 takes its bit
        assert window.add_usage(t0 + day * day_ms, "login", "u1", 1)
        assert window.bucket(D + day)[1] == 1
    assert [day for day, _ in window.to_state()["u"]] == [D + 2, D + 4]
