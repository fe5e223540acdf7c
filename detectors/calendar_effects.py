"""Calendar effects shared by many accounts (a holiday, a holiday week), recognised from the population.

Every account's baseline expects its usual activity on a weekday. On a holiday most accounts are quiet at
once; judged one by one, each looks like the start of a drop or a silence, and together they look like an
ingestion outage. :class:`PopulationCalendar` tallies, for each completed day, every warm account's usage
against what its own baseline expected, before the accounts are assessed (``AccountMonitor.census``). A day
is *quiet* (a calendar effect) when, over at least ``min_accounts`` accounts,

* the population used less than ``quiet_ratio`` of what it expected, and
* the accounts that *were* active were quiet too (their median usage/expected below ``active_ratio``).

The second condition tells a holiday from an ingestion outage: when events of some accounts are lost, the
others arrive at their usual level; on a holiday the ones who show up are quieter too. Quiet days are then
left out of the accounts' baselines and drift tests, do not count as silent days, and their expected usage
is scaled by the population's ratio in drop ratios, so they neither alert accounts nor trip the outage guard.
"""

from __future__ import annotations

import statistics
from typing import Any, ClassVar


class PopulationCalendar:
    """Recognises population-wide quiet days from per-account (usage, expected) tallies.

    Parameters
    ----------
    quiet_ratio
        A day is quiet when the population's usage is below this share of its expected usage ...
    active_ratio
        ... and the median usage/expected of the accounts active that day is below this.
    min_accounts
        Accounts with an expectation needed before a day is judged at all.
    keep_days
        Quiet days older than this (relative to the newest closed day) are forgotten.

    Examples
    --------
    >>> cal = PopulationCalendar(min_accounts=10)
    >>> for i in range(40):  # a holiday: everybody at ~20% of the usual level, some not at all
    ...     cal.learn_one(100, usage=8.0 if i % 4 else 0.0, expected=40.0)
    ...     cal.learn_one(101, usage=40.0, expected=40.0)  # the day after: normal
    ...     cal.learn_one(102, usage=40.0 if i % 2 else 0.0, expected=40.0)  # half the events lost
    >>> cal.close_through(102)
    >>> cal.is_quiet(100), cal.is_quiet(101), cal.is_quiet(102), round(cal.ratio(100), 2)
    (True, False, False, 0.15)
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 800
    __slots__ = (
        "active_ratio",
        "closed_through",
        "keep_days",
        "min_accounts",
        "quiet",
        "quiet_ratio",
        "tally",
    )

    def __init__(
        self,
        quiet_ratio: float = 0.6,
        active_ratio: float = 0.7,
        min_accounts: int = 20,
        keep_days: int = 70,
    ) -> None:
        self.quiet_ratio = quiet_ratio
        self.active_ratio = active_ratio
        self.min_accounts = min_accounts
        self.keep_days = keep_days
        # Open days: day -> [accounts, usage, expected, [usage/expected of the active accounts]].
        self.tally: dict[int, list[Any]] = {}
        self.quiet: dict[int, float] = {}  # quiet day -> the population's usage/expected that day
        self.closed_through: int | None = None

    def clone(self) -> PopulationCalendar:
        return PopulationCalendar(self.quiet_ratio, self.active_ratio, self.min_accounts, self.keep_days)

    def learn_one(self, day: int, *, usage: float, expected: float) -> None:
        """Tally one account's completed ``day`` (ignored once that day is closed, or without expectation)."""
        if expected <= 0 or (self.closed_through is not None and day <= self.closed_through):
            return
        row = self.tally.get(day)
        if row is None:
            row = self.tally[day] = [0, 0.0, 0.0, []]
        row[0] += 1
        row[1] += usage
        row[2] += expected
        if usage > 0:
            row[3].append(usage / expected)

    def close_through(self, day: int) -> None:
        """Judge every tallied day up to ``day`` (call after all accounts of a sweep were tallied)."""
        for open_day in sorted(d for d in self.tally if d <= day):
            accounts, usage, expected, active = self.tally.pop(open_day)
            if accounts < self.min_accounts:
                continue
            ratio = usage / expected
            typical_active = statistics.median(active) if active else 1.0
            if ratio < self.quiet_ratio and typical_active < self.active_ratio:
                self.quiet[open_day] = round(ratio, 4)
        if self.closed_through is None or day > self.closed_through:
            self.closed_through = day
        for old in [d for d in self.quiet if d < day - self.keep_days]:
            del self.quiet[old]

    def is_quiet(self, day: int) -> bool:
        return day in self.quiet

    def ratio(self, day: int) -> float:
        """The population's usage/expected on a quiet day (1.0 on an ordinary day)."""
        return self.quiet.get(day, 1.0)

    def quiet_between(self, first_day: int, last_day: int) -> list[int]:
        """Quiet days in ``first_day..last_day`` (inclusive)."""
        if not self.quiet or last_day < first_day:
            return []
        return [d for d in self.quiet if first_day <= d <= last_day]

    def to_state(self) -> dict[str, Any]:
        return {
            "q": [[d, r] for d, r in sorted(self.quiet.items())],
            "c": self.closed_through,
            "t": [[d, *row] for d, row in sorted(self.tally.items())],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> PopulationCalendar:
        calendar = cls(**params)
        calendar.quiet = {int(d): float(r) for d, r in state["q"]}
        calendar.closed_through = state["c"]
        calendar.tally = {int(row[0]): [row[1], row[2], row[3], list(row[4])] for row in state["t"]}
        return calendar
