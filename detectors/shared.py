"""Objects shared between accounts' windows (issue 15): many windows hold equal immutable values, and one
object each saves the memory of the copies.

- :data:`DAYS`: one int object per day number (too large for CPython's cache of small ints).
- :data:`CLOSED`: one tuple per distinct content of a closed day's bucket (:func:`closed_bucket`).
- :data:`STORED`: the stored form of each shared closed bucket (:func:`stored_bucket`), remembered; a
  window's days in their stored form: :func:`stored_days`.
- :data:`FLOATS`: one float object per value of the rounded numbers detector states keep in many copies
  (:func:`shared_float`: the features of pending snapshots, at 2 decimals; an account's reference MRR);
  :func:`shared_zero`: one +0.0 for the numbers that are mostly zero.

Sharing is safe because both are immutable; a window that must change a closed day replaces its bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from detectors.day_table import DayTable

# One int object per day number, shared by every window's keys. Values typed Any: compiled by mypyc
# (streams/dev/mypyc_build.py), a value typed int would be unboxed and boxed again as a new object.
DAYS: dict[int, Any] = {}
# Closed days' buckets, one tuple per distinct content, shared by every window: most closed days hold a small
# usage count, one or two users and a few key events, so contents repeat (in 1,000 simulated accounts, 42 k
# closed days held 9.3 k distinct buckets). Cleared when full, which only ends the sharing of new ones.
CLOSED: dict[tuple[int, ...], tuple[int, ...]] = {}
MAX_SHARED_BUCKETS = 1 << 18


def shared_day(day: int) -> Any:
    """``day`` as the int object every window uses for it (a day number is too large for CPython's cache of
    small ints, so each window would hold its own: 32 bytes a day)."""
    return DAYS.setdefault(day, day)


def closed_buckets(adding: int) -> dict[tuple[int, ...], tuple[int, ...]]:
    """The table of shared buckets, with room for ``adding`` more (cleared first when it would be full)."""
    if len(CLOSED) + adding > MAX_SHARED_BUCKETS:
        CLOSED.clear()
    return CLOSED


def closed_bucket(values: Iterable[int]) -> tuple[int, ...]:
    """A closed day's bucket: an immutable tuple, the same object for every window with this content."""
    return interned(CLOSED, tuple(values), MAX_SHARED_BUCKETS)


# The stored form of a closed bucket: its content without trailing zero columns (stored_days writes one per
# day at every write of a state: ~0.2 µs a day, 45 days for an account of 90 days).
STORED: dict[tuple[int, ...], tuple[int, ...]] = {}


def stored_bucket(bucket: tuple[int, ...]) -> tuple[int, ...]:
    """``bucket`` (a closed day's) without its trailing zero columns, remembered for the next write.

    >>> stored_bucket((3, 1, 0, 2, 0, 0))
    (3, 1, 0, 2)
    """
    stored = STORED.get(bucket)
    if stored is None:
        if len(STORED) >= MAX_SHARED_BUCKETS:
            STORED.clear()
        stored = STORED[bucket] = trimmed(bucket)
    return stored


def stored_days(days: DayTable, since: int | None = None, until: int | None = None) -> list[list[int]]:
    """``[[day, *stored form of its bucket], ...]`` of ``days``, ascending (a window state's ``"d"``); with
    ``since`` and ``until``, of the days from ``since`` and before ``until`` alone.

    It runs once per day kept at every write of a state, so ``days.items()`` and the look-up of
    :func:`stored_bucket` are written out here (an empty stored form, of a closed day of zeros, is falsy and
    goes through :func:`stored_bucket`, with the same result).

    >>> days = DayTable()
    >>> days[20_000] = (3, 1, 0, 0); days[20_002] = [0, 2, 0]
    >>> stored_days(days), stored_days(days, until=20_001), stored_days(days, since=20_001)
    ([[20000, 3, 1], [20002, 0, 2]], [[20000, 3, 1]], [[20002, 0, 2]])
    """
    remembered = STORED.get
    first, slots = days.first, days.slots
    start = 0 if since is None else max(0, since - first)
    if until is not None:
        slots = slots[: max(0, until - first)]
    return [
        [day, *((remembered(bucket) or stored_bucket(bucket)) if type(bucket) is tuple else trimmed(bucket))]
        for day, bucket in enumerate(slots[start:] if start else slots, first + start)
        if bucket is not None
    ]


def trimmed(bucket: Sequence[int]) -> Any:
    """``bucket`` (a list or a tuple, sliced as such) without its trailing zero columns: a day's stored form.

    >>> trimmed([3, 0, 1, 0]), trimmed((0, 0))
    ([3, 0, 1], ())
    """
    end = len(bucket)
    while end and not bucket[end - 1]:
        end -= 1
    return bucket[:end]


# Rounded floats, one object per value (24 bytes each saved per copy). Cleared when full, as CLOSED.
FLOATS: dict[float, float] = {}
MAX_SHARED_FLOATS = 1 << 16


def shared_float(value: Any) -> Any:
    """``value`` as the object every state uses for it, when it is a float (ints are returned as they are;
    the zeros as :func:`shared_zero` does, a look-up by equality would lose their sign).

    >>> a, b = shared_float(float("1.25")), shared_float(float("1.25"))
    >>> a is b, shared_float(1), type(shared_float(1)), shared_float(-0.0)
    (True, 1, <class 'int'>, -0.0)
    """
    if type(value) is not float:
        return value
    if not value:
        return shared_zero(value)
    return interned(FLOATS, value, MAX_SHARED_FLOATS)


_ZERO: Any = 0.0  # typed Any: compiled by mypyc, a float would be boxed again as a new object


def shared_zero(value: Any) -> Any:
    """``value``, or one shared object when it is the float +0.0 (what most accounts hold in numbers that are
    seldom anything else: a decoded state's floats are new objects, 24 bytes each).

    >>> shared_zero(float("0.0")) is shared_zero(float("0.0"))
    True
    >>> shared_zero(-0.0), shared_zero(0), shared_zero(2.5)
    (-0.0, 0, 2.5)
    """
    if type(value) is float and not value and math.copysign(1.0, value) > 0:
        return _ZERO
    return value


def interned(table: dict[Any, Any], value: Any, capacity: int) -> Any:
    """The object ``table`` keeps for ``value`` (``value`` itself the first time); the table is cleared when
    it holds ``capacity`` values, which only ends the sharing of the ones already handed out."""
    shared = table.get(value)
    if shared is None:
        if len(table) >= capacity:
            table.clear()
        shared = table[value] = value
    return shared
