"""The distinct users of a window's open days (issue 15, resident bytes per account).

A window counts each day's distinct users exactly while the day is open to late usage (today and the days
within the lateness allowance). Their user hashes are one dict for all open days, ``user hash -> a bit per
open day the user was seen on`` (:func:`user_day_bit`), rather than a set per day: a user active on three
open days costs one entry, not three. When a day closes its bit is cleared (:func:`close_days`), before a
later day can reuse the bit; the day's count stays in its bucket.
"""

from __future__ import annotations

from typing import Any

DAY_MS = 86_400_000


def user_day_bit(day: int, lateness_ms: int) -> int:
    """The bit of ``day``: distinct for the days open to late usage at once (at most the lateness in whole
    days + 2).

    >>> [user_day_bit(day, 2 * DAY_MS) for day in range(20_000, 20_005)]
    [1, 2, 4, 8, 1]
    """
    return 1 << day % (lateness_ms // DAY_MS + 2)


def close_days(users: dict[int, int], was_open_from: int, open_from: int, lateness_ms: int) -> dict[int, int]:
    """``users`` without the days ``was_open_from .. open_from - 1``, which have closed (a new dict)."""
    span = lateness_ms // DAY_MS + 2
    closing = 0
    for day in range(was_open_from, min(open_from, was_open_from + span)):
        closing |= user_day_bit(day, lateness_ms)
    return {user: seen & ~closing for user, seen in users.items() if seen & ~closing}


def users_by_day(users: dict[int, int], days: range, lateness_ms: int) -> list[list[Any]]:
    """``[[day, sorted user hashes], ...]`` of the open ``days``, by day (a window state's ``"u"``).

    Written at every checkpoint for every account changed (at 1 M accounts ~8 % of a worker's CPU in
    2026-12-05's profile), so it reads the few users once per open day without a call per bit, and not at
    all for a day every user or no user was on (the users' few distinct sets of days tell which).

    >>> lateness = 2 * DAY_MS
    >>> first, second = user_day_bit(20_000, lateness), user_day_bit(20_001, lateness)
    >>> users = {9: first | second, 4: second}
    >>> users_by_day(users, range(20_000, 20_003), lateness)
    [[20000, [9]], [20001, [4, 9]]]
    """
    if not users:
        return []
    ordered = sorted(users)
    anyone = everyone = users[ordered[0]]
    for seen in set(users.values()):
        anyone |= seen
        everyone &= seen
    rows: list[list[Any]] = []
    for day in days:
        bit = user_day_bit(day, lateness_ms)
        if everyone & bit:
            rows.append([day, ordered[:]])
        elif anyone & bit:
            rows.append([day, [user for user in ordered if users[user] & bit]])
    return rows


def users_from_state(rows: list[list[Any]], lateness_ms: int) -> dict[int, int] | None:
    """The dict of :func:`users_by_day`'s rows (None when there are none)."""
    users: dict[int, int] = {}
    for day, hashes in rows:
        bit = user_day_bit(day, lateness_ms)
        for user in hashes:
            users[user] = users.get(user, 0) | bit
    return users or None
