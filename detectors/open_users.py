"""The distinct users of a window's open days (issue 15, resident bytes per account).

A window counts each day's distinct users exactly while the day is open to late usage (today and the days
within the lateness allowance). Their user hashes are one sorted ``array('Q')`` for all open days, an entry
per user: ``user hash << DAY_BITS | a bit per open day the user was seen on`` (:func:`user_day_bit`), rather
than a set per day or a dict: a user active on three open days costs one entry, and an entry costs 8 bytes
(a dict of user hash -> days cost ~70 bytes a user with its int objects). When a day closes its bit is
cleared (:func:`close_days`), before a later day can reuse the bit; the day's count stays in its bucket.
"""

from __future__ import annotations

from array import array
from typing import Any

DAY_MS = 86_400_000
# Low bits of an entry: one per day open at once (the lateness in whole days + 2), so at most 32 such days.
DAY_BITS = 32
DAYS_MASK = (1 << DAY_BITS) - 1
MAX_LATENESS_DAYS = DAY_BITS - 2


def user_day_bit(day: int, lateness_ms: int) -> int:
    """The bit of ``day``: distinct for the days open to late usage at once (at most the lateness in whole
    days + 2).

    >>> [user_day_bit(day, 2 * DAY_MS) for day in range(20_000, 20_005)]
    [1, 2, 4, 8, 1]
    """
    return 1 << day % (lateness_ms // DAY_MS + 2)


def close_days(users: array[int], was_open_from: int, open_from: int, lateness_ms: int) -> array[int]:
    """``users`` without the days ``was_open_from .. open_from - 1``, which have closed (a new array).

    >>> lateness = 2 * DAY_MS
    >>> users = array("Q", [9 << DAY_BITS | 3, 12 << DAY_BITS | 2])  # 9: days 20,000 and 20,001; 12: 20,001
    >>> [(entry >> DAY_BITS, entry & DAYS_MASK) for entry in close_days(users, 20_000, 20_001, lateness)]
    [(9, 2), (12, 2)]
    >>> list(close_days(users, 20_000, 20_002, lateness))
    []
    """
    span = lateness_ms // DAY_MS + 2
    closing = 0
    for day in range(was_open_from, min(open_from, was_open_from + span)):
        closing |= user_day_bit(day, lateness_ms)
    keep = DAYS_MASK & ~closing
    return array("Q", [entry & ~closing for entry in users if entry & keep])


def users_by_day(users: array[int], days: range, lateness_ms: int) -> list[list[Any]]:
    """``[[day, sorted user hashes], ...]`` of the open ``days``, by day (a window state's ``"u"``).

    Written at every checkpoint for every account changed (at 1 M accounts ~8 % of a worker's CPU in
    2026-12-05's profile), so it reads the users once per open day without a call per bit, and not at all
    for a day every user or no user was on (the users' few distinct sets of days tell which).

    >>> lateness = 2 * DAY_MS
    >>> first, second = user_day_bit(20_000, lateness), user_day_bit(20_001, lateness)
    >>> users = array("Q", [4 << DAY_BITS | second, 9 << DAY_BITS | first | second])
    >>> users_by_day(users, range(20_000, 20_003), lateness)
    [[20000, [9]], [20001, [4, 9]]]
    """
    if not users:
        return []
    anyone = 0
    everyone = DAYS_MASK
    for seen in {entry & DAYS_MASK for entry in users}:
        anyone |= seen
        everyone &= seen
    rows: list[list[Any]] = []
    for day in days:
        bit = user_day_bit(day, lateness_ms)
        if everyone & bit:
            rows.append([day, [entry >> DAY_BITS for entry in users]])
        elif anyone & bit:
            rows.append([day, [entry >> DAY_BITS for entry in users if entry & bit]])
    return rows


def users_from_state(rows: list[list[Any]], lateness_ms: int) -> array[int] | None:
    """The array of :func:`users_by_day`'s rows (None when there are none).

    >>> lateness = 2 * DAY_MS
    >>> users = users_from_state([[20000, [9]], [20001, [4, 9]]], lateness)
    >>> users is not None and users_by_day(users, range(20_000, 20_003), lateness)
    [[20000, [9]], [20001, [4, 9]]]
    """
    days_of: dict[int, int] = {}
    for day, hashes in rows:
        bit = user_day_bit(day, lateness_ms)
        for user in hashes:
            days_of[user] = days_of.get(user, 0) | bit
    if not days_of:
        return None
    return array("Q", sorted(user << DAY_BITS | seen for user, seen in days_of.items()))
