"""The open days' distinct users (``detectors/open_users.py``): exact counts, the stored form, 8 bytes a user.

Memory is measured with ``tracemalloc`` (exact bytes allocated; it does not depend on the machine's load).
"""

from __future__ import annotations

import random

import pytest

from detectors.open_users import users_by_day, users_from_state
from detectors.windows import ACTIVE_USERS, DAY_MS, AccountWindow, WindowConfig, day_of, user_hash
from tests.test_compact_state import bytes_each

DAY0 = 20_600


@pytest.mark.parametrize(("seed", "lateness_days"), [(1, 2), (2, 0), (3, 5), (4, 30)])
def test_counts_and_stored_users_match_a_set_per_day(seed: int, lateness_days: int) -> None:
    """Random usage, in and out of order, of up to 40 users: each day's count is its distinct users, and
    the stored ``"u"`` holds each open day's users, sorted by hash, through a round trip."""
    rng = random.Random(seed)
    config = WindowConfig(allowed_lateness_ms=lateness_days * DAY_MS)
    window = AccountWindow(config)
    seen: dict[int, set[int]] = {}
    newest = DAY0 * DAY_MS
    for _ in range(3_000):
        newest += rng.randrange(0, DAY_MS // 20)
        ts_ms = newest - rng.randrange(0, (lateness_days + 2) * DAY_MS)
        user = f"user-{rng.randrange(40)}"
        accepted = window.add_usage(ts_ms, "login", user, 1)
        if accepted and window.days.get(day_of(ts_ms)) is not None:
            seen.setdefault(day_of(ts_ms), set()).add(user_hash(user))
    for day, users in seen.items():
        if window.days.get(day) is not None:
            assert window.bucket(day)[ACTIVE_USERS] == len(users), day
    open_days = window._user_days()
    expected = [[day, sorted(seen[day])] for day in open_days if seen.get(day)]
    assert window.to_state()["u"] == expected
    again = AccountWindow.from_state(window.to_state(), config)
    assert again.to_state() == window.to_state() and again.open_users == window.open_users


def test_open_users_cost_eight_bytes_a_user() -> None:
    """40 users on three open days: one 8-byte entry each (a dict of user hash -> days took ~1.6 KB)."""
    lateness = 2 * DAY_MS
    rows = [[day, sorted(user_hash(f"u{i}") for i in range(40))] for day in range(DAY0, DAY0 + 3)]
    assert bytes_each(lambda: users_from_state(rows, lateness)) < 40 * 8 + 120

    def folded() -> AccountWindow:
        window = AccountWindow(WindowConfig())
        for day in range(DAY0, DAY0 + 3):
            for i in range(40):
                window.add_usage(day * DAY_MS + i, "login", f"u{i}", 1)
        return window

    users = folded().open_users
    assert users is not None and users_by_day(users, range(DAY0, DAY0 + 3), lateness) == rows
    assert bytes_each(lambda: folded().open_users, n=50) < 40 * 8 + 200


def test_a_lateness_beyond_thirty_days_is_refused() -> None:
    """An entry keeps a bit per open day in 32 bits (the lateness in days + 2)."""
    assert WindowConfig(allowed_lateness_ms=30 * DAY_MS).allowed_lateness_ms == 30 * DAY_MS
    with pytest.raises(ValueError, match="allowed_lateness_ms"):
        WindowConfig(allowed_lateness_ms=30 * DAY_MS + 1)
