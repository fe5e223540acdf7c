"""The event names' counts of a window's open days (issue 15, resident bytes per account).

Until a day closes, its key events (:func:`row_key_events`: the day's tracked events less its most
common name) need the day's count of every tracked name. They were a dict of names per open day in a
dict by day: ~700 bytes of a window with three open days. Here they are two values:

* ``names``: the names counted on any open day, a tuple shared by every window that counts the same names in
  the same order (:func:`shared_names`), so a window holds a pointer;
* ``counts``: one ``array('q')``, a row per open-day slot (``day % slots``, ``slots`` being the lateness in
  whole days + 2, the days open at once, as :mod:`detectors.open_users`' bits) and a column per name (the
  shared empty :data:`NO_COUNTS` while no name is counted; nothing writes to it, as it has no column).

A name gets its column at its first count on an open day (:func:`add_name`) and keeps it while any open day
counts a name: when the last open day that counted names closes (:func:`close_rows`), or the window stops
tracking the name (:func:`drop_name`), the columns go. Pruning a column at every day's close cost ~12 µs
per account-day under cProfile and saved ~30 bytes. The stored form (:func:`names_state`) is the names once
and a row of counts per day; states written before it held a dict of names per day, still read
(:func:`names_from_dicts`).
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

from detectors.shared import interned

DAY_MS = 86_400_000
# Tuples of names shared between windows; cleared when full, which only ends the sharing of new ones.
NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
MAX_SHARED_NAMES = 1 << 16
NO_NAMES: tuple[str, ...] = ()
NO_COUNTS: array[int] = array("q")


def open_slots(lateness_ms: int) -> int:
    """Days open to late usage at once, at most: the lateness in whole days + 2."""
    return lateness_ms // DAY_MS + 2


def shared_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` as the tuple every window counting them (in that order) holds."""
    return interned(NAMES, names, MAX_SHARED_NAMES)


def add_name(
    names: tuple[str, ...], counts: array[int], name: str, slots: int
) -> tuple[tuple[str, ...], array[int]]:
    """``names`` and ``counts`` with a column of zeros for ``name`` (not among ``names``)."""
    width = len(names)
    grown = array("q", [0]) * (slots * (width + 1))
    if width:
        for row in range(slots):
            grown[row * (width + 1) : row * (width + 1) + width] = counts[row * width : row * width + width]
    return shared_names((*names, sys.intern(name))), grown


def drop_name(
    names: tuple[str, ...], counts: array[int], name: str, slots: int
) -> tuple[tuple[str, ...], array[int]]:
    """``names`` and ``counts`` without ``name``'s column (unchanged when it has none)."""
    if name not in names:
        return names, counts
    if len(names) == 1:
        return NO_NAMES, NO_COUNTS
    width, gone = len(names), names.index(name)
    kept = array("q", [value for i, value in enumerate(counts) if i % width != gone])
    return shared_names(names[:gone] + names[gone + 1 :]), kept


def row_key_events(counts: array[int], width: int, row: int) -> int:
    """The key events of the day of ``row``: its tracked events other than its most common name.

    The dominant name is usually passive (page views); what remains is deliberate work. Taking the day's own
    maximum (rather than the account's all-time top name) keeps the signal stable when names are close in
    frequency and their ranking flips.

    >>> row_key_events(array("q", [0, 0, 0, 30, 6, 4]), 3, 1), row_key_events(NO_COUNTS, 0, 1)
    (10, 0)
    """
    if not width:
        return 0
    values = counts[row * width : row * width + width]
    return sum(values) - max(values)


def close_rows(
    names: tuple[str, ...], counts: array[int], days: range, slots: int
) -> tuple[dict[int, int], tuple[str, ...], array[int]]:
    """Close ``days`` (at most ``slots`` of them count): the key events of each that counted names, and the
    names and counts without them (none at all once no open day counts a name).

    >>> names, counts = add_name(*add_name(NO_NAMES, NO_COUNTS, "view", 4), "export", 4)
    >>> counts[0:2] = array("q", [5, 2]); counts[2:4] = array("q", [3, 0])  # days 20,000 and 20,001
    >>> closed, names, counts = close_rows(names, counts, range(20_000, 20_001), 4)
    >>> closed, names, counts.tolist()
    ({20000: 2}, ('view', 'export'), [0, 0, 3, 0, 0, 0, 0, 0])
    >>> close_rows(names, counts, range(20_001, 20_002), 4)
    ({20001: 0}, (), array('q'))
    """
    width = len(names)
    closed: dict[int, int] = {}
    for day in days[:slots] if width else ():
        start = day % slots * width
        values = counts[start : start + width]
        if any(values):
            closed[day] = sum(values) - max(values)  # row_key_events, with the row at hand
            counts[start : start + width] = array("q", [0]) * width
    if closed and not any(counts):
        return closed, NO_NAMES, NO_COUNTS
    return closed, names, counts


def open_key_events(names: tuple[str, ...], counts: array[int], days: range, slots: int) -> dict[int, int]:
    """The key events of each of the open ``days`` that counted names."""
    width = len(names)
    values = counts.tolist()  # once: slices of a list are cheaper than an array's (a sweep reads this twice)
    found: dict[int, int] = {}
    for day in days:
        start = day % slots * width
        row = values[start : start + width]
        if any(row):
            found[day] = sum(row) - max(row)  # row_key_events, with the row at hand
    return found


def names_state(names: tuple[str, ...], counts: array[int], days: range, slots: int) -> list[Any]:
    """The counts of the open ``days`` that counted names, as a window state's ``"k"``: ``[[name, ...],
    [day, count, ...], ...]``, a count per name in their order (``[]`` when no day counted a name).

    Written at every checkpoint for every account changed, so a day is a row of numbers: built from these
    counts, a dict of names per day took ~3.9 µs for three open days of seven names, rows ~1.0 µs.

    >>> names, counts = add_name(*add_name(NO_NAMES, NO_COUNTS, "view", 4), "export", 4)
    >>> counts[2:4] = array("q", [3, 1])  # day 20,001 (row 1)
    >>> names_state(names, counts, range(20_000, 20_002), 4)
    [['view', 'export'], [20001, 3, 1]]
    """
    width = len(names)
    if not width:
        return []
    values = counts.tolist()  # one conversion: slices of a list are cheaper than an array's
    rows: list[Any] = [list(names)]
    for day in days:
        start = day % slots * width
        row = values[start : start + width]
        if any(row):
            rows.append([day, *row])
    return rows if len(rows) > 1 else []


def names_from_state(rows: list[Any], slots: int) -> tuple[tuple[str, ...], array[int]]:
    """The names and counts :func:`names_state` wrote as ``rows``."""
    if not rows:
        return NO_NAMES, NO_COUNTS
    width = len(rows[0])
    counts = [0] * (slots * width)
    for day, *values in rows[1:]:
        start = day % slots * width
        counts[start : start + width] = values
    return shared_names(tuple(rows[0])), array("q", counts)


def names_from_dicts(rows: list[list[Any]], slots: int) -> tuple[tuple[str, ...], array[int]]:
    """The names and counts of a state written before :func:`names_state`: ``"e"``, ``[[day, {name:
    count, ...}], ...]``."""
    order: dict[str, int] = {}
    for _, day_names in rows:
        for name in day_names:
            order.setdefault(name, len(order))
    if not order:
        return NO_NAMES, NO_COUNTS
    width = len(order)
    counts = array("q", [0]) * (slots * width)
    for day, day_names in rows:
        row = day % slots
        for name, value in day_names.items():
            counts[row * width + order[name]] += value
    return shared_names(tuple(order)), counts
