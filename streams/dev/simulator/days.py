"""The simulator's calendar: timestamps, public holidays and monthly anchor days."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["DAY", "HOUR", "active_doms", "holidays", "rfc3339", "sec_suffixes"]

DAY = 86_400
HOUR = 3_600


@cache
def sec_suffixes() -> tuple[str, ...]:
    """``"HH:MM:SSZ"`` for every second of a day; string concat beats strftime in the hot loop."""
    return tuple(f"{s // HOUR:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(DAY))


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th (1-based) ``weekday`` of a month; ``n = -1`` for the last one."""
    days = [
        d
        for d in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, d).weekday() == weekday
    ]
    return date(year, month, days[n - 1 if n > 0 else n])


def _observed(d: date) -> date:
    # Fixed-date holidays falling on a weekend are observed on the nearest weekday.
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@cache
def holidays(year: int) -> frozenset[date]:
    """A few (US-centric) public holidays on which everybody's usage is low.

    >>> sorted(d.isoformat() for d in holidays(2026))[:3]
    ['2026-01-01', '2026-05-25', '2026-06-19']
    """
    return frozenset(
        {
            _observed(date(year, 1, 1)),
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            _observed(date(year, 6, 19)),  # Juneteenth
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving
            _nth_weekday(year, 11, 3, 4) + timedelta(days=1),
            date(year, 12, 24),
            _observed(date(year, 12, 25)),
            date(year, 12, 31),
        }
    )


def _first_weekday_on_or_after(year: int, month: int, dom: int) -> int:
    """Day of month of the first Monday-Friday on or after ``dom``."""
    d = date(year, month, dom)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d.day if d.month == month else 99


@cache
def active_doms(today: date) -> npt.NDArray[np.bool_]:
    """Mask over anchor days of month 1..28: which monthly-sparse anchors make ``today`` their active day."""
    out = np.zeros(29, dtype=bool)
    for dom in range(1, 29):
        out[dom] = _first_weekday_on_or_after(today.year, today.month, dom) == today.day
    return out
