"""Monthly rhythms: an account busy at one time of each month, quiet the rest, is on schedule while quiet.

Weekly rhythms are slots of the baselines (weekday / weekend). Some accounts follow the *month* instead:
a team that reports, bills or closes its books in the same few days of every month and barely uses the
product in between. Against a daily baseline their quiet three weeks look like a drop, a silence and a
lapse, every month. :class:`MonthlyCycle` learns where in the month an account's activity sits (a circular
mean of the day-of-month phase, weighted by ``log1p(usage)``, decayed) and says whether the account is
**on schedule**: its activity is concentrated in a phase of the month, and it was active in or after the
last busy window that has passed. A cyclic account that misses its busy window is judged normally from
then on, so a cyclic churner is flagged as soon as its month goes by without it.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, ClassVar

from detectors.baseline import half_life_decay

__all__ = ["MonthlyCycle"]

_EPOCH = date(1970, 1, 1)
_TWO_PI = 2.0 * math.pi


@lru_cache(maxsize=64, typed=True)
def _shared_params(
    half_life_days: float, min_concentration: float, min_active: float
) -> tuple[float, float, float, float]:
    """The parameters and the decay per day: one tuple shared by every account's cycle (issue 15)."""
    return half_life_days, min_concentration, min_active, half_life_decay(half_life_days)


@lru_cache(maxsize=4096)
def _month_of(day: int) -> tuple[int, int, float]:
    """(first day of the month, days in it, phase of ``day`` in [0, 1)) for an epoch day."""
    d = _EPOCH + timedelta(days=day)
    first = day - d.day + 1
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    length = (nxt - _EPOCH).days - first
    return first, length, (d.day - 0.5) / length


class MonthlyCycle:
    """Where in the month an account is active, and whether its current quiet is its usual one.

    Parameters
    ----------
    half_life_days
        Days after which a day's weight has halved (two months: a rhythm shows over several months).
    min_concentration
        Mean resultant length of the phases (0: spread over the month, 1: one day of it) from which the
        account counts as cyclic. A daily or weekly account stays near 0; random sparse days with at least
        ``min_active`` of them stay below ~0.4.
    min_active
        Decayed count of active days needed before any rhythm is read.

    Examples
    --------
    >>> cycle = MonthlyCycle()
    >>> first = 20_454  # 2026-01-01
    >>> for day in range(first, first + 120):  # busy on the 20th-26th of each month, silent otherwise
    ...     cycle.learn_one(day, 30.0 if 20 <= (_EPOCH + timedelta(days=day)).day <= 26 else 0.0)
    >>> round(cycle.concentration(), 2)
    0.9
    >>> last = first + 114  # 2026-04-25, inside April's busy days
    >>> cycle.on_schedule(first + 135, last)  # 2026-05-16: quiet until its days of May
    True
    >>> cycle.on_schedule(first + 152, last)  # 2026-06-02: May's busy days passed without it
    False
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 48
    # The parameters in one shared tuple (issue 15); the numbers boxed (an array is one more object for the
    # garbage collector to track and walk).
    __slots__ = ("_params", "active", "cos", "sin", "weight")

    def __init__(
        self, half_life_days: float = 60.0, min_concentration: float = 0.6, min_active: float = 8.0
    ) -> None:
        self._params = _shared_params(half_life_days, min_concentration, min_active)
        self.cos = 0.0
        self.sin = 0.0
        self.weight = 0.0
        self.active = 0.0  # decayed count of active days

    # The parameters, read-only.
    @property
    def half_life_days(self) -> float:
        return self._params[0]

    @property
    def min_concentration(self) -> float:
        return self._params[1]

    @property
    def min_active(self) -> float:
        return self._params[2]

    @property
    def _decay(self) -> float:
        return self._params[3]

    def clone(self) -> MonthlyCycle:
        return MonthlyCycle(*self._params[:3])

    def learn_one(self, day: int, usage: float) -> None:
        """Learn one completed day (every day, silent ones too: they age the rest). The numbers are kept at
        the stored precision, so a state read back continues exactly as the one in memory."""
        k = self._params[3]
        cos, sin, weight, active = self.cos * k, self.sin * k, self.weight * k, self.active * k
        if usage > 0:
            w = math.log1p(usage)
            angle = _TWO_PI * _month_of(day)[2]
            cos += w * math.cos(angle)
            sin += w * math.sin(angle)
            weight += w
            active += 1.0
        self.cos, self.sin, self.weight, self.active = (
            round(cos, 3),
            round(sin, 3),
            round(weight, 3),
            round(active, 3),
        )

    def concentration(self) -> float:
        """Mean resultant length of the activity's phases in the month (0 before any activity)."""
        return math.hypot(self.cos, self.sin) / self.weight if self.weight > 0 else 0.0

    def cyclic(self) -> bool:
        return self.active >= self.min_active and self.concentration() >= self.min_concentration

    def on_schedule(self, today: int, last_active: int | None) -> bool:
        """Whether the account is cyclic and was active in or after its last busy window that is over."""
        if last_active is None or not self.cyclic():
            return False
        r = self.concentration()
        phase = (math.atan2(self.sin, self.cos) / _TWO_PI) % 1.0
        spread = math.sqrt(-2.0 * math.log(r)) / _TWO_PI * 30.4  # circular standard deviation, in days
        tolerance = min(10, max(2, round(2.0 * spread + 1.0)))
        first, length, _ = _month_of(today)
        centre = first + int(phase * length)
        if centre + tolerance >= today:  # this month's window is not over: the last one was a month before
            first, length, _ = _month_of(first - 1)
            centre = first + int(phase * length)
        return last_active >= centre - tolerance

    def to_state(self) -> list[float]:
        return [self.cos, self.sin, self.weight, self.active]

    @classmethod
    def from_state(cls, state: list[float], **params: Any) -> MonthlyCycle:
        cycle = cls(**params)
        cycle.cos, cycle.sin, cycle.weight, cycle.active = state
        return cycle
