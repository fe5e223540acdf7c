"""Engagement *level*: how much an account uses the product, compared with accounts of the same plan.

The change detectors (:mod:`detectors.baseline`, :mod:`detectors.drop`) compare an account with itself, so
an account that was always barely engaged never looks unusual. These pieces measure the level itself:

* :class:`EngagementTracker` (per account, five numbers): exponentially weighted usage per day, active users
  per day and share of active days, and the lifetime count of active days (the ``x`` of
  :mod:`detectors.btyd`).
* :class:`SegmentQuantiles` (worker-wide, one small histogram per plan): where an account's level sits among
  accounts of the same plan, as a percentile, from a decayed histogram on a log scale (a cheap online
  quantile sketch: 48 counts per segment).
* :func:`weekly_trend`: the slope of weekly usage over the last 4 or 8 weeks, read from the window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from detectors.baseline import half_life_alpha
from detectors.day_table import DayTable
from detectors.windows import USAGE

ALL_SEGMENTS = "*"


@functools.lru_cache(maxsize=64, typed=True)
def _shared_params(half_life_days: float) -> tuple[float, float]:
    """The half-life and its smoothing factor: one tuple shared by every account's tracker (issue 15)."""
    return half_life_days, half_life_alpha(half_life_days)


class EngagementTracker:
    """EW level of one account's daily usage, active users and active-day share, plus its active-day count.

    Parameters
    ----------
    half_life_days
        Days after which a day's weight has halved (short: the level should follow a fade).

    Examples
    --------
    >>> t = EngagementTracker()
    >>> for day in range(28):
    ...     t.learn_one(usage=30.0 if day % 7 < 5 else 0.0, users=3.0 if day % 7 < 5 else 0.0)
    >>> round(t.usage, 1), round(t.active_share, 2), round(t.per_active_day, 1), round(t.per_user, 1)
    (21.1, 0.7, 30.0, 10.0)
    >>> t.n_active
    20
    >>> EngagementTracker.from_state(t.to_state()).to_state() == t.to_state()
    True
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 48
    # The parameters in one shared tuple (issue 15); the numbers boxed (an array is one more object for the
    # garbage collector to track and walk).
    __slots__ = ("_params", "active_share", "n_active", "n_days", "usage", "users")

    def __init__(self, half_life_days: float = 14.0) -> None:
        self._params = _shared_params(half_life_days)
        self.n_days = 0
        self.n_active = 0
        self.usage = 0.0
        self.users = 0.0
        self.active_share = 0.0

    # The parameter and its smoothing factor, read-only.
    @property
    def half_life_days(self) -> float:
        return self._params[0]

    @property
    def _alpha(self) -> float:
        return self._params[1]

    def clone(self) -> EngagementTracker:
        return EngagementTracker(self._params[0])

    def learn_one(self, usage: float, users: float, *, quiet: bool = False) -> None:
        """Fold one completed day (from the account's first active day on).

        A ``quiet`` day (the whole population quiet: a holiday) counts an activity but leaves the levels
        alone: it says nothing about how engaged the account usually is.

        >>> t = EngagementTracker()
        >>> t.learn_one(10.0, 2.0); t.learn_one(1.0, 1.0, quiet=True)
        >>> t.usage, t.n_active
        (10.0, 2)
        """
        active = usage > 0
        self.n_active += active
        if quiet:
            return
        self.n_days += 1
        alpha = max(self._params[1], 1.0 / self.n_days)
        self.usage = round(self.usage + alpha * (usage - self.usage), 4)
        self.users = round(self.users + alpha * (users - self.users), 4)
        self.active_share = round(self.active_share + alpha * (active - self.active_share), 4)

    @property
    def per_active_day(self) -> float:
        """Usage events per active day (intensity, apart from how often the account shows up)."""
        return self.usage / self.active_share if self.active_share > 0 else 0.0

    @property
    def per_user(self) -> float:
        """Usage events per active user and day (depth of use, apart from team size)."""
        return self.usage / self.users if self.users > 0 else 0.0

    def to_state(self) -> list[float]:
        return [self.n_days, self.n_active, self.usage, self.users, self.active_share]

    @classmethod
    def from_state(cls, state: list[float], **params: Any) -> EngagementTracker:
        tracker = cls(**params)
        n_days, n_active, tracker.usage, tracker.users, tracker.active_share = state
        tracker.n_days, tracker.n_active = int(n_days), int(n_active)
        return tracker


class SegmentQuantiles:
    """Online percentiles of a positive quantity per segment (plan), from decayed log-scale histograms.

    Each account adds its current value once per day; counts decay with ``half_life_days``, so the sketch
    follows the population as it changes. ``percentile(segment, value)`` is the share of the segment's
    (decayed) weight below ``value``, interpolated within a bin; a segment with less than ``min_weight``
    falls back to all accounts together.

    Parameters
    ----------
    bins, bin_width
        Histogram of ``log1p(value)`` over ``[0, bins * bin_width)``; larger values land in the last bin.
    half_life_days
        Memory of the sketch.
    max_segments
        Segments beyond this many share the all-accounts sketch (a stray plan id cannot grow the model).
    min_weight
        Weight a segment needs before its own percentiles are used.

    Examples
    --------
    >>> q = SegmentQuantiles()
    >>> for day in range(3):
    ...     for i in range(100):
    ...         q.learn_one("pro", float(i), day)
    ...         q.learn_one("starter", float(i) / 10, day)
    >>> round(q.percentile("pro", 10.0), 1), round(q.percentile("starter", 1.0), 1)
    (0.1, 0.1)
    >>> round(q.percentile("pro", 90.0), 1), q.percentile("enterprise", 5.0) == q.percentile("*", 5.0)
    (0.9, True)
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 12_000
    __slots__ = (
        "_sums",
        "bin_width",
        "bins",
        "day",
        "half_life_days",
        "max_segments",
        "min_weight",
        "segments",
    )

    def __init__(
        self,
        bins: int = 48,
        bin_width: float = 0.25,
        half_life_days: float = 7.0,
        max_segments: int = 16,
        min_weight: float = 30.0,
    ) -> None:
        self.bins = bins
        self.bin_width = bin_width
        self.half_life_days = half_life_days
        self.max_segments = max_segments
        self.min_weight = min_weight
        self.day: int | None = None
        self.segments: dict[str, list[float]] = {}  # changed by learn_one only (percentile caches sums)
        self._sums: dict[str, list[float]] = {}

    def clone(self) -> SegmentQuantiles:
        return SegmentQuantiles(
            self.bins, self.bin_width, self.half_life_days, self.max_segments, self.min_weight
        )

    def _bin(self, value: float) -> tuple[int, float]:
        position = math.log1p(max(0.0, value)) / self.bin_width
        index = min(self.bins - 1, int(position))
        return index, min(1.0, position - index)

    def learn_one(self, segment: str | None, value: float, day: int) -> None:
        """Add one account's current ``value`` on ``day`` (days must not go backwards)."""
        if self._sums:
            self._sums = {}
        if self.day is None:
            self.day = day
        elif day > self.day:
            factor = 0.5 ** ((day - self.day) / self.half_life_days)
            for counts in self.segments.values():
                for i, c in enumerate(counts):
                    counts[i] = round(c * factor, 3)
            self.day = day
        index, _ = self._bin(value)
        keys = [ALL_SEGMENTS]
        name = segment or "unknown"
        if name in self.segments or len(self.segments) <= self.max_segments:
            keys.append(name)
        for key in keys:
            row = self.segments.get(key)
            if row is None:
                row = self.segments[key] = [0.0] * self.bins
            row[index] += 1.0

    def weight(self, segment: str | None) -> float:
        return sum(self.segments.get(segment or "unknown", ()))

    def percentile(self, segment: str | None, value: float) -> float | None:
        """Share of the segment's accounts below ``value`` (None before the population has data)."""
        key = segment or "unknown"
        sums = self._cumulative(key)
        if sums is None or sums[-1] < self.min_weight:
            key = ALL_SEGMENTS
            sums = self._cumulative(key)
        if sums is None:
            return None
        total = sums[-1]
        if total < self.min_weight:
            return None
        index, within = self._bin(value)
        below = sums[index] + within * self.segments[key][index]
        return round(below / total, 4)

    def _cumulative(self, key: str) -> list[float] | None:
        """``[sum(counts[:i]) for each bin i] + [sum(counts)]`` of a segment, kept until the next
        :meth:`learn_one` (a sweep reads every account's percentiles from unchanged counts)."""
        sums = self._sums.get(key)
        if sums is None:
            counts = self.segments.get(key)
            if counts is None:
                return None
            sums = self._sums[key] = [sum(counts[:i]) for i in range(len(counts))] + [sum(counts)]
        return sums

    def to_state(self) -> dict[str, Any]:
        return {"d": self.day, "s": self.segments}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **params: Any) -> SegmentQuantiles:
        sketch = cls(**params)
        sketch.day = state["d"]
        sketch.segments = {k: list(v) for k, v in state["s"].items()}
        return sketch


def weekly_totals(
    days: Mapping[int, Sequence[int]] | DayTable,
    last_day: int,
    weeks: int,
    quiet: Mapping[int, float] | None = None,
    usual: float = 0.0,
    since: int | None = None,
) -> list[float]:
    """Usage per week over ``weeks`` weeks ending on ``last_day`` (oldest first).

    Days of a population-wide quiet spell (``quiet``: a holiday) count as the account's ``usual`` day,
    whatever they held, from its first active day (``since``) on: a holiday week is not a decline.

    >>> weekly_totals({0: [5], 6: [1], 7: [2]}, 13, 2)
    [6.0, 2.0]
    >>> weekly_totals({0: [5], 6: [1], 7: [2]}, 13, 2, quiet={7: 0.2, 8: 0.2}, usual=3.0, since=0)
    [6.0, 6.0]
    """
    totals = [0.0] * weeks
    first = last_day - 7 * weeks + 1
    for day, bucket in days.items():
        if first <= day <= last_day and not (quiet and day in quiet):
            totals[(day - first) // 7] += float(bucket[USAGE])
    if quiet:
        fill_quiet(totals, quiet, last_day, usual, first if since is None else max(first, since))
    return totals


def fill_quiet(
    totals: list[float], quiet: Mapping[int, float], last_day: int, usual: float, since: int
) -> None:
    """Add ``usual`` to ``totals`` (weeks ending on ``last_day``) for each quiet day from ``since`` on."""
    first = last_day - 7 * len(totals) + 1
    for day in quiet:
        if since <= day <= last_day and day >= first:
            totals[(day - first) // 7] += usual


def slope_of(totals: list[float]) -> float | None:
    """Least-squares slope of ``totals`` per step, divided by their mean + 1 (None when all are 0).

    >>> slope_of([10.0, 8.0, 6.0, 4.0])  # -2 a week around a mean of 7
    -0.25
    """
    weeks = len(totals)
    mean = sum(totals) / weeks
    if mean <= 0:
        return None
    offsets, spread = _centred(weeks)
    slope = sum(k * (v - mean) for k, v in zip(offsets, totals, strict=True)) / spread
    return slope / (mean + 1.0)


@functools.cache
def _centred(steps: int) -> tuple[tuple[float, ...], float]:
    """The steps' offsets from their middle, and the sum of their squares (what every slope divides by)."""
    mid = (steps - 1) / 2
    return tuple(k - mid for k in range(steps)), sum((k - mid) ** 2 for k in range(steps))


TRENDS: tuple[tuple[str, int], ...] = (("trend_4w", 4), ("trend_8w", 8))


def downtrends(totals: list[float], age_days: int) -> dict[str, float]:
    """``trend_4w`` and ``trend_8w`` from the last 8 weekly ``totals`` of an account active for ``age_days``:
    the share of the weekly level lost over 4 / 8 weeks (slope times weeks, capped at 1), for a falling
    trend only and once the account is old enough to have one (4 / 8 weeks).

    >>> downtrends([10.0, 10.0, 10.0, 10.0, 10.0, 8.0, 6.0, 4.0], 60)
    {'trend_4w': 1.0, 'trend_8w': 0.6817}
    >>> downtrends([1.0] * 4 + [4.0, 3.5, 3.0, 2.5], 40)
    {'trend_4w': 0.4706}
    """
    out: dict[str, float] = {}
    for name, weeks in TRENDS:
        if age_days < 7 * weeks:
            break
        slope = slope_of(totals[-weeks:])
        if slope is not None and slope < 0:
            out[name] = round(min(1.0, -slope * weeks), 4)
    return out


def weekly_trend(
    days: Mapping[int, Sequence[int]], last_day: int, weeks: int, quiet: Mapping[int, float] | None = None
) -> float | None:
    """Least-squares slope of weekly usage over ``weeks`` weeks ending on ``last_day``, per week, relative.

    The slope is divided by the mean weekly usage plus one, so -0.1 means "losing about 10% of its level a
    week". Days of a population-wide quiet spell (``quiet``) are left out (:func:`weekly_totals` without a
    ``usual`` day), so a holiday week does not read as a decline. None without usage.

    >>> days = {d: [200 - 2 * d] for d in range(56)}  # fading by 14 events a week (98 per week)
    >>> round(weekly_trend(days, 55, 4), 3), round(weekly_trend(days, 55, 8), 3)
    (-0.12, -0.096)
    >>> weekly_trend({}, 55, 4) is None
    True
    """
    return slope_of(weekly_totals(days, last_day, weeks, quiet))
