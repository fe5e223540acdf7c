"""The alert budget: an opening threshold read from the base's own risk, so alert volume is a setting.

A fixed ``alert_threshold`` opens as many episodes as the base's shape happens to push across it: the same 0.5
alerted 3.9 % of non-churners per 30 days on our simulator, 6.9 % on the tuning shapes and 16.5 % on a
held-out B2B-like base (``docs/detection.md``, ninth pass). With ``DetectorConfig.alert_budget`` set,
:class:`AlertBudget` (one per worker, in the :class:`~detectors.population.PopulationModel`) counts, at each
daily census, which levels of a grid each account's risk rose past since its previous day while it had no
episode open and no cooldown (an opening at that level), decayed over ``half_life_days``; the threshold is
then the lowest level, from ``alert_threshold`` up, whose recent openings per account per 30 days stay
within the budget. So the budget caps the volume and never lowers the threshold below the configured one.

Counting crossings rather than actual openings lets every level be judged at once (an opening at a lower
level would have kept some accounts' episodes open, so crossings there count a little more than openings
would): the cap errs on the side of fewer alerts. Each account adds only its own three numbers to its census
record, so the sharded replay (``--jobs``) takes the same census as one process.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detectors.baseline import half_life_alpha

__all__ = ["AlertBudget", "levels_from", "note_risk"]

STEP = 0.02  # grid spacing of the levels (risk units)
TOP = 0.98  # highest level: above it, risk no longer tells accounts apart


def levels_from(floor: float) -> tuple[float, ...]:
    """The grid of thresholds from ``floor`` up to 0.98, every 0.02.

    >>> levels_from(0.9)
    (0.9, 0.92, 0.94, 0.96, 0.98)
    """
    n = max(0, round((TOP - floor) / STEP))
    return tuple(round(floor + STEP * k, 4) for k in range(n + 1))


def note_risk(risk_days: list[Any] | None, today: int, risk: float, *, free: bool) -> list[Any]:
    """An account's ``risk_days`` (``[day, risk the assessed day before, risk that day, free 0/1]``) after an
    assessment on ``today``: a new day shifts the last risk back and notes whether the account began it
    free (no episode, no cooldown); a later assessment the same day only updates that day's risk.

    >>> days = note_risk(None, 100, 0.2, free=True)
    >>> days = note_risk(days, 100, 0.3, free=False)
    >>> note_risk(days, 101, 0.7, free=True)
    [101, 0.3, 0.7, 1]
    """
    rounded = round(risk, 4)
    if risk_days is None or today > risk_days[0]:
        return [today, risk_days[2] if risk_days is not None else 0.0, rounded, int(free)]
    risk_days[2] = rounded
    return risk_days


class AlertBudget:
    """Decayed counts of the base's risk crossings by level, and the threshold that keeps them in budget.

    Parameters
    ----------
    budget
        Openings allowed per account per 30 days (0.05: one account in twenty a month).
    floor
        The lowest threshold (``DetectorConfig.alert_threshold``); the grid runs from it to 0.98.
    half_life_days
        Memory of the counts.
    min_account_days
        Account-days counted before the budget applies (until then the threshold is ``floor``).

    Examples
    --------
    A base of 100 accounts where, every day, two accounts without an episode see their risk rise from 0.1 to
    0.6 and one from 0.1 to 0.9: at a threshold of 0.5 that is 90 openings per 100 accounts a month.

    >>> b = AlertBudget(budget=0.3, floor=0.5)
    >>> for day in range(20_600, 20_660):
    ...     b.close(day)
    ...     for k in range(100):
    ...         b.learn_one(0.1, 0.6 if k < 2 else 0.9 if k == 2 else 0.1, free=True)
    >>> b.threshold()  # 0.62 and up: one crossing a day, 30 per 100 accounts a month, within 0.3
    0.62
    >>> round(b.rate(0.5), 2), round(b.rate(0.62), 2)
    (0.9, 0.3)
    >>> AlertBudget(budget=0.3, floor=0.5).threshold()  # nothing counted yet: the floor
    0.5
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 700
    __slots__ = (
        "_decay",
        "account_days",
        "budget",
        "crossings",
        "day",
        "floor",
        "half_life_days",
        "levels",
        "min_account_days",
    )

    def __init__(
        self,
        budget: float = 0.05,
        floor: float = 0.5,
        half_life_days: float = 30.0,
        min_account_days: float = 1_500.0,
    ) -> None:
        self.budget = budget
        self.floor = floor
        self.half_life_days = half_life_days
        self.min_account_days = min_account_days
        self.levels = levels_from(floor)
        self._decay = 1.0 - half_life_alpha(half_life_days)
        self.crossings = [0.0] * len(self.levels)
        self.account_days = 0.0
        self.day: int | None = None  # the last day closed

    def clone(self) -> AlertBudget:
        return AlertBudget(self.budget, self.floor, self.half_life_days, self.min_account_days)

    def close(self, day: int) -> None:
        """Start counting ``day``'s account-days: what was counted before decays by the days passed."""
        if self.day is not None and day > self.day:
            factor = self._decay ** (day - self.day)
            self.crossings = [round(c * factor, 6) for c in self.crossings]
            self.account_days = round(self.account_days * factor, 6)
        self.day = day if self.day is None else max(self.day, day)

    def learn_one(self, before: float, after: float, *, free: bool) -> None:
        """One account-day: the account's risk the day before and that day; ``free``: it had no episode open
        and no cooldown when that day began (a rise past a level would have opened one)."""
        self.account_days += 1.0
        if not free or after <= before:
            return
        for k, level in enumerate(self.levels):
            if before < level <= after:
                self.crossings[k] += 1.0

    def rate(self, level: float) -> float:
        """Recent crossings of ``level`` (a grid level) per account per 30 days."""
        k = self.levels.index(level)
        return self.crossings[k] / (self.account_days / 30.0) if self.account_days else 0.0

    def threshold(self) -> float:
        """The lowest level whose recent crossings stay within the budget (``floor`` until
        ``min_account_days`` are counted; the top level when none does)."""
        if self.account_days < self.min_account_days or not self.levels:
            return self.floor
        per_30 = self.account_days / 30.0
        for level, crossings in zip(self.levels, self.crossings, strict=True):
            if crossings / per_30 <= self.budget:
                return level
        return self.levels[-1]

    def to_state(self) -> list[Any]:
        return [self.day, self.account_days, self.crossings]

    @classmethod
    def from_state(cls, state: list[Any], **params: Any) -> AlertBudget:
        budget = cls(**params)
        budget.day, budget.account_days, crossings = state
        if len(crossings) == len(budget.levels):  # saved under another floor: start afresh
            budget.crossings = list(crossings)
        return budget
