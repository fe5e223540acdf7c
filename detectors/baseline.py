"""Per-account baselines of engagement signals: what a normal day and a normal gap are for one account.

Two small, River-style pieces learn an account's own normal; each keeps a few numbers of state so thousands
of accounts fit in a changelog-backed table:

* :class:`SeasonalBaseline` learns what a normal day looks like for one daily signal (usage events, active
  users, key events) with weekly seasonality: separate exponentially weighted statistics for weekdays and
  weekends, so a quiet weekend is compared with other weekends. Its z-scores feed the sustained-drop test,
  :class:`~detectors.drop.DropDetector`.
* :class:`GapTracker` learns an account's usual gap between active days, so silence is judged against the
  account's own rhythm (daily, weekly, monthly) instead of a fixed number of days.

Both have ``clone()``, JSON-compatible ``to_state()`` / ``from_state()`` and keep their floats rounded to
:data:`STATE_DECIMALS` decimals in memory, so a JSON round trip (what the live table does on every update)
gives bit-identical subsequent outputs to an in-memory run (what offline replay does). The calendar helpers
(:func:`weekday_of`, :func:`is_weekend`, :func:`weekend_days`) and :func:`half_life_alpha` are shared with
other detectors.
"""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from typing import Any, ClassVar

from detectors.shared import shared_day

# Rounding of stored floats: short JSON and exact round trips; 1e-4 is far below any decision boundary.
STATE_DECIMALS = 4
# 1970-01-01 (day 0) was a Thursday; Monday = 0.
_EPOCH_WEEKDAY = 3


def weekday_of(day: int) -> int:
    """Weekday (Monday = 0) of a UTC day number.

    >>> weekday_of(20_600)  # 2026-05-27
    2
    """
    return (day + _EPOCH_WEEKDAY) % 7


def is_weekend(day: int) -> bool:
    """Whether a UTC day number is a Saturday or Sunday.

    >>> is_weekend(20_603), is_weekend(20_605)
    (True, False)
    """
    return weekday_of(day) >= 5


def weekend_days(first_day: int, last_day: int) -> int:
    """Number of Saturdays and Sundays in ``first_day..last_day`` (inclusive), in O(1).

    >>> weekend_days(20_600, 20_613), weekend_days(20_603, 20_603), weekend_days(5, 4)
    (4, 1, 0)
    """
    if last_day < first_day:
        return 0
    n = last_day - first_day + 1
    count = 2 * (n // 7)
    weekday = (first_day + _EPOCH_WEEKDAY) % 7  # that of the first remaining day (whole weeks shift none)
    for step in range(n % 7):  # the remainder: at most 6 days
        count += (weekday + step) % 7 >= 5
    return count


def _round(value: float) -> float:
    return round(value, STATE_DECIMALS)


@lru_cache(maxsize=64)
def half_life_alpha(half_life: float) -> float:
    """Smoothing factor of an exponentially weighted mean whose weights halve every ``half_life`` steps.

    Cached: every account's trackers hold the same float object, not one each (issue 15's resident state).

    >>> round(half_life_alpha(1.0), 3), half_life_alpha(28.0) is half_life_alpha(28.0)
    (0.5, True)
    """
    return 1.0 - 0.5 ** (1.0 / half_life)


@lru_cache(maxsize=64)
def half_life_decay(half_life: float) -> float:
    """Factor by which a weight decays per step when it halves every ``half_life`` steps (cached, shared).

    >>> half_life_decay(2.0) ** 2
    0.5000000000000001
    """
    return 0.5 ** (1.0 / half_life)


@lru_cache(maxsize=64, typed=True)  # typed: an int parameter stays an int
def _baseline_params(
    half_life_days: float, sd_floor: float, z_clip: float
) -> tuple[float, float, float, float, float]:
    """A baseline's parameters and its weekday and weekend smoothing factors: one tuple shared by every
    baseline of a configuration (issue 15)."""
    alphas = half_life_alpha(half_life_days * 5 / 7), half_life_alpha(half_life_days * 2 / 7)
    return half_life_days, sd_floor, z_clip, *alphas


@lru_cache(maxsize=64, typed=True)  # typed: an int parameter stays an int
def _gap_params(
    half_life_gaps: float, rel_floor: float, abs_floor_days: float, min_gaps: int
) -> tuple[float, float, float, int, float]:
    """A gap tracker's parameters and smoothing factor: one tuple shared by every account's (issue 15)."""
    return half_life_gaps, rel_floor, abs_floor_days, min_gaps, half_life_alpha(half_life_gaps)


_ZEROS = array("d", bytes(8 * 10))  # ten doubles of 0.0: new baselines copy it (a slice, of its exact size)


class SeasonalBaseline:
    """Exponentially weighted baseline of one daily count signal, per weekly slot (weekday / weekend).

    For each slot it keeps the number of days seen, the EW mean of the raw value (the expected level, used for
    ratios in explanations), the EW mean and variance of ``log1p(value)`` (used for z-scores, which tames
    the skew of counts) and the EW share of days with a non-zero value (how surprising a silent day is).
    Early on the weights are ``1/n`` so the first days are averaged exactly.

    Parameters
    ----------
    half_life_days
        Calendar days after which an observation's weight has halved; each slot converts this to its own
        number of observations (5 per week for weekdays, 2 for weekends).
    sd_floor
        Smallest standard deviation of ``log1p(value)`` used in z-scores, so a perfectly regular account does
        not turn a tiny wobble into an alarm.
    z_clip
        z-scores are clipped to ``[-z_clip, z_clip]`` so one extreme day cannot dominate the drift test.

    Examples
    --------
    >>> b = SeasonalBaseline()
    >>> for day in range(20_600, 20_628):  # four weeks: 40 events on weekdays, 10 on weekends
    ...     b.learn_one(day, 10.0 if is_weekend(day) else 40.0)
    >>> round(b.expected(20_628), 1), round(b.expected(20_631), 1)  # a Thursday, then a Sunday
    (40.0, 10.0)
    >>> abs(b.score_one(20_631, 10.0)) < 0.01  # a normal Sunday is not a drop
    True
    >>> b.score_one(20_628, 10.0) < -3  # but a weekday at the weekend level is
    True
    >>> round(b.silence_surprise(20_628, 20_629), 1)  # two silent weekdays of an always-active account
    7.0
    >>> SeasonalBaseline.from_state(b.to_state()).to_state() == b.to_state()
    True
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 140
    __slots__ = ("_params", "stats")

    def __init__(self, half_life_days: float = 28.0, sd_floor: float = 0.25, z_clip: float = 4.0) -> None:
        # The parameters and the two slots' smoothing factors (at 3 and 4), shared (issue 15).
        self._params = _baseline_params(half_life_days, sd_floor, z_clip)
        # Five numbers per slot (weekdays at 0, weekends at 5): days seen, EW mean of the value, EW mean and
        # EW variance of log1p(value), EW share of active days. One flat array of doubles: 144 bytes where
        # two lists of boxed numbers took ~460 (issue 15's resident state).
        self.stats = _ZEROS[:]

    @property
    def half_life_days(self) -> float:
        return self._params[0]

    @property
    def sd_floor(self) -> float:
        return self._params[1]

    @property
    def z_clip(self) -> float:
        return self._params[2]

    def clone(self) -> SeasonalBaseline:
        """A fresh, untrained baseline with the same parameters."""
        return SeasonalBaseline(*self._params[:3])

    def days_seen(self, day: int | None = None) -> int:
        """Days learned in ``day``'s slot, or in both slots when ``day`` is None."""
        if day is None:
            return int(self.stats[0] + self.stats[5])
        return int(self.stats[5 * is_weekend(day)])

    def level(self, weekend: bool = False) -> float:
        """The EW mean of the raw value in the weekday (or weekend) slot; 0 before it has data."""
        return self.stats[5 * weekend + 1]

    def learn_one(self, day: int, value: float) -> None:
        """Fold one completed day's value into its slot."""
        weekend = (day + _EPOCH_WEEKDAY) % 7 >= 5  # is_weekend, inlined: every signal of every account-day
        s = self.stats
        i = 5 * weekend
        n = s[i] + 1.0
        alpha = max(self._params[3 + weekend], 1.0 / n)
        log_value = math.log1p(value)
        mean_log = s[i + 2]
        delta = log_value - mean_log
        s[i] = n
        # round(x, 4) inline rather than _round: this runs for every signal of every account-day.
        s[i + 1] = round(s[i + 1] + alpha * (value - s[i + 1]), 4)
        s[i + 2] = round(mean_log + alpha * delta, 4)
        # West's EW variance update: incremental and stable.
        s[i + 3] = round((1.0 - alpha) * (s[i + 3] + alpha * delta * delta), 4)
        s[i + 4] = round(s[i + 4] + alpha * ((value > 0) - s[i + 4]), 4)

    def silence_surprise(self, first_day: int, last_day: int, max_share: float = 0.97) -> float:
        """Surprise (nats, ``-log P``) of no activity on ``first_day..last_day`` if days were independent.

        Each day adds ``-log(1 - p)`` with ``p`` its slot's share of active days (capped at ``max_share`` so
        one silent day is never conclusive): a silent weekend costs a weekday-only team almost nothing.
        """
        if last_day < first_day:
            return 0.0
        weekend = weekend_days(first_day, last_day)
        weekday_cost = -math.log(1.0 - min(self.stats[4], max_share))
        weekend_cost = -math.log(1.0 - min(self.stats[9], max_share))
        return (last_day - first_day + 1 - weekend) * weekday_cost + weekend * weekend_cost

    def silent_day_cost(self, day: int, max_share: float = 0.97) -> float:
        """What one silent ``day`` adds to :meth:`silence_surprise` (nats)."""
        return -math.log(1.0 - min(self.stats[5 * is_weekend(day) + 4], max_share))

    def expected(self, day: int) -> float:
        """Expected raw value on ``day`` (the EW mean of its slot; 0 before the slot has data)."""
        s, weekend = self.stats, is_weekend(day)
        if s[5 * weekend] == 0:
            # Before the slot has data (the first days), the other slot is the best guess.
            return s[5 * (not weekend) + 1]
        return s[5 * weekend + 1]

    def expected_total(self, first_day: int, last_day: int) -> float:
        """Expected sum of the raw value over ``first_day..last_day`` (O(1); see :meth:`expected`)."""
        if last_day < first_day:
            return 0.0
        weekend = weekend_days(first_day, last_day)
        s = self.stats
        weekday_level = s[1] if s[0] else s[6]
        weekend_level = s[6] if s[5] else s[1]
        return (last_day - first_day + 1 - weekend) * weekday_level + weekend * weekend_level

    def score_one(self, day: int, value: float) -> float:
        """z-score of ``value`` against ``day``'s slot in ``log1p`` space, clipped; 0 without history."""
        s = self.stats
        i = 5 * ((day + _EPOCH_WEEKDAY) % 7 >= 5)  # is_weekend, inlined (every account-day)
        if s[i] == 0:
            return 0.0
        _, sd_floor, z_clip, _, _ = self._params
        sd = max(math.sqrt(s[i + 3]), sd_floor)
        z = (math.log1p(value) - s[i + 2]) / sd
        return max(-z_clip, min(z_clip, z))

    def rescale(self, factor: float) -> None:
        """Move both slots to ``factor`` times their level (accepting a new normal after a lasting change)."""
        shift = math.log(max(factor, 1e-3))
        s = self.stats
        for i in (1, 6):
            s[i] = _round(s[i] * factor)
            s[i + 1] = _round(max(0.0, s[i + 1] + shift))

    def to_state(self) -> list[list[float]]:
        """Two slots of five numbers, the count of days an int (the stored rows' bytes of before)."""
        s = self.stats
        return [[int(s[0]), s[1], s[2], s[3], s[4]], [int(s[5]), s[6], s[7], s[8], s[9]]]

    @classmethod
    def from_state(cls, state: list[list[float]], **params: float) -> SeasonalBaseline:
        baseline = cls(**params)
        baseline.stats = array("d", [*state[0], *state[1]])
        return baseline


class GapTracker:
    """EW mean and variance of the gaps (in days) between an account's active days.

    ``score_one(today)`` says how far the current silence exceeds the usual gap, in units of a robust spread
    (at least ``rel_floor`` times the mean gap and at least ``abs_floor_days``), so a daily account is
    suspicious after a few silent days while a weekly or monthly account only once its own rhythm is clearly
    broken.

    Parameters
    ----------
    half_life_gaps
        Number of gaps after which a gap's weight has halved.
    rel_floor, abs_floor_days
        Floors of the spread: regular weekly accounts have almost no variance, and a day late is not alarming.
    min_gaps
        Gaps needed before silence is scored at all (a new monthly account has no rhythm yet).

    Examples
    --------
    >>> g = GapTracker()
    >>> for day in range(100, 150, 7):  # active once a week
    ...     g.learn_one(day)
    >>> round(g.mean_gap, 1)
    7.0
    >>> g.score_one(150)  # 1 day past the usual weekly visit: fine
    0.0
    >>> round(g.score_one(160), 2)  # 11 days past the last visit: well beyond the usual week
    2.29
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 60
    # The parameters in one tuple shared by every account's tracker, the last active day a shared int
    # (detectors.shared): issue 15's resident state. An array of the four numbers would cost more than the
    # numbers do boxed (~170 bytes a tracker against ~130-160).
    __slots__ = ("_params", "last_active_day", "mean_gap", "n_gaps", "var_gap")

    def __init__(
        self,
        half_life_gaps: float = 12.0,
        rel_floor: float = 0.25,
        abs_floor_days: float = 0.75,
        min_gaps: int = 2,
    ) -> None:
        self._params = _gap_params(half_life_gaps, rel_floor, abs_floor_days, min_gaps)
        self.last_active_day: int | None = None
        self.n_gaps = 0
        self.mean_gap = 0.0
        self.var_gap = 0.0

    # The parameters, read-only.
    @property
    def half_life_gaps(self) -> float:
        return self._params[0]

    @property
    def rel_floor(self) -> float:
        return self._params[1]

    @property
    def abs_floor_days(self) -> float:
        return self._params[2]

    @property
    def min_gaps(self) -> int:
        return self._params[3]

    @property
    def _alpha(self) -> float:
        return self._params[4]

    def clone(self) -> GapTracker:
        return GapTracker(*self._params[:4])

    def learn_one(self, day: int) -> None:
        """Record an active day (days must come in increasing order; repeats are ignored)."""
        last = self.last_active_day
        if last is not None and day > last:
            gap = float(day - last)
            self.n_gaps += 1
            alpha = max(self._params[4], 1.0 / self.n_gaps)
            delta = gap - self.mean_gap
            self.mean_gap = _round(self.mean_gap + alpha * delta)
            self.var_gap = _round((1.0 - alpha) * (self.var_gap + alpha * delta * delta))
        if last is None or day > last:
            self.last_active_day = shared_day(day)

    def spread(self) -> float:
        """Robust spread of the gap: the EW standard deviation, floored."""
        _, rel_floor, abs_floor_days, _, _ = self._params
        return max(math.sqrt(self.var_gap), rel_floor * self.mean_gap, abs_floor_days)

    def silent_days(self, today: int) -> int:
        """Completed days without activity before ``today`` (0 if active yesterday or never active)."""
        if self.last_active_day is None:
            return 0
        return max(0, today - 1 - self.last_active_day)

    def score_one(self, today: int) -> float:
        """Excess of the running gap (``today - last active day``) over the usual gap, in spreads (>= 0)."""
        if self.last_active_day is None or self.n_gaps < self._params[3]:
            return 0.0
        gap = today - self.last_active_day
        return _round(max(0.0, (gap - self.mean_gap) / self.spread()))

    def to_state(self) -> list[Any]:
        return [self.last_active_day, self.n_gaps, self.mean_gap, self.var_gap]

    @classmethod
    def from_state(cls, state: list[Any], **params: Any) -> GapTracker:
        tracker = cls(**params)
        last, tracker.n_gaps, tracker.mean_gap, tracker.var_gap = state
        tracker.last_active_day = shared_day(last) if last is not None else None
        return tracker
