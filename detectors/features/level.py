"""Level evidence: the account against the customer base (:class:`~detectors.population.PopulationModel`).

Change detectors compare an account with itself; these features say where its engagement sits among the
accounts of its plan and of the whole base, how likely its activity pattern is to belong to a customer who
already left, and how its weekly usage trends (all >= 0, 0 = nothing unusual):

``low_engagement``
    1 - percentile of the account's EW usage per day among accounts of its plan.
``low_activity``
    1 - percentile of its EW usage per day among *all* accounts: where plans follow size (a bigger plan for
    a bigger team), the plan percentile hides a level that is low for the whole customer base.
``low_depth``
    1 - percentile of its EW usage per active user and day within the plan.
``lapsed``
    1 - P(alive) of the MBG/NBD model from ``x`` (active days after the first), ``t_x`` and ``T``; for
    irregular accounts only (too new, fewer than 3 active days, or sparse with gaps whose spread exceeds
    half their mean).
``inactive_ahead``
    MBG/NBD probability of no activity at all in the next ``horizon_days``
    (:func:`~detectors.btyd.p_inactive`), for the same irregular accounts as ``lapsed``: it separates a
    rare visitor that is alive but probably quiet for a month from a frequent one.
``infrequent``
    1 - EW share of days with activity.
``recency``
    ``log1p(days since the last active day - 1) / log(31)``: 1 after a month of silence, capped at 2.
``new_account``
    How much newer the account is than the base: its ``1 - tenure / 90 days`` (tenure from its first event of
    any kind, billing included; 0 from 90 days on) less the mean of the same over the live accounts that day
    (:meth:`~detectors.population.PopulationModel.new_account`), 0 when it is no newer than the base. So a
    base that ages as a whole (every account of a file joining together) does not move it: an absolute
    tenure drifts with the calendar, and the risk model, which learns positives up to a horizon earlier
    than negatives, read that drift as churn (``DetectorConfig.relative_tenure`` False: the absolute value).
``trend_4w``, ``trend_8w``
    Share of the weekly usage level lost over the last 4 / 8 weeks, from the least-squares slope of weekly
    totals (holiday days scaled back up by the population's ratio). With ``DetectorConfig.relative_trends``
    (off by default), what the account loses beyond the mean of the same over the base that day
    (:meth:`~detectors.population.PopulationModel.trend`): a base whose accounts start together gets its
    trends all at once, at 4 and 8 weeks, and a decline shared by the whole base is not one account's news.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.account_state import AccountDetectorState
from detectors.census import TENURE_DAYS, btyd_summary
from detectors.engagement import ALL_SEGMENTS, TRENDS, downtrends, weekly_totals
from detectors.population import PopulationModel
from detectors.reasons import Evidence, plural
from detectors.windows import AccountWindow, day_of

__all__ = [
    "InactiveAhead",
    "Infrequent",
    "Lapsed",
    "LowActivity",
    "LowDepth",
    "LowEngagement",
    "NewAccount",
    "Recency",
    "Trend",
    "level_evidence",
]

_LOG31 = math.log(31.0)
_WEEKS = dict(TRENDS)


@dataclass(frozen=True, slots=True)
class LowEngagement:
    """EW usage per day ``level`` at percentile ``pct`` of the ``segment`` (plan) accounts."""

    value: float
    pct: float
    level: float
    segment: str
    feature: str = "low_engagement"

    def describe(self, value: float) -> str:
        """The reason sentence.

        >>> LowEngagement(0.93, 0.07, 2.1, "pro").describe(0.93)
        'engagement in the bottom 7% of pro accounts (2.1 events/day)'
        """
        level = f"{self.level:.1f} events/day"
        return f"engagement in the bottom {self.pct:.0%} of {self.segment} accounts ({level})"


@dataclass(frozen=True, slots=True)
class LowActivity:
    """EW usage per day ``level`` at percentile ``pct`` of all accounts."""

    value: float
    pct: float
    level: float
    feature: str = "low_activity"

    def describe(self, value: float) -> str:
        return f"engagement in the bottom {self.pct:.0%} of all accounts ({self.level:.1f} events/day)"


@dataclass(frozen=True, slots=True)
class LowDepth:
    """EW use per active user and day at percentile ``pct`` of the ``segment`` accounts."""

    value: float
    pct: float
    per_user: float
    segment: str
    feature: str = "low_depth"

    def describe(self, value: float) -> str:
        return (
            f"use per active user in the bottom {self.pct:.0%} of {self.segment} accounts "
            f"({self.per_user:.1f}/user/day)"
        )


@dataclass(frozen=True, slots=True)
class Lapsed:
    """The BTYD model's chance the account has left for good, from its summary ``(x, t_x, T)``."""

    value: float
    x: int
    t_x: int
    T: int
    feature: str = "lapsed"

    def describe(self, value: float) -> str:
        return f"{value:.0%} chance it has lapsed for good ({_btyd(self.x, self.t_x, self.T)})"


@dataclass(frozen=True, slots=True)
class InactiveAhead:
    """The BTYD model's chance of no activity in the next ``horizon_days``, from ``(x, t_x, T)``."""

    value: float
    x: int
    t_x: int
    T: int
    horizon_days: int
    feature: str = "inactive_ahead"

    def describe(self, value: float) -> str:
        return (
            f"{value:.0%} chance of no activity in the next {plural(self.horizon_days, 'day')} "
            f"({_btyd(self.x, self.t_x, self.T)})"
        )


@dataclass(frozen=True, slots=True)
class Infrequent:
    """Active on few days (the value is 1 - the EW share of active days)."""

    value: float
    feature: str = "infrequent"

    def describe(self, value: float) -> str:
        return f"active on {1 - value:.0%} of days"


@dataclass(frozen=True, slots=True)
class Recency:
    """Last active ``days`` days ago."""

    value: float
    days: int
    feature: str = "recency"

    def describe(self, value: float) -> str:
        return f"last active {plural(self.days, 'day')} ago"


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A tenure of ``tenure_days`` (from the account's first event of any kind), against the base's mean
    tenure ``base_days`` counted up to 90 days (None: not compared with the base)."""

    value: float
    tenure_days: int
    base_days: int | None = None
    feature: str = "new_account"

    def describe(self, value: float) -> str:
        """The reason sentence.

        >>> NewAccount(0.4, 9, 45).describe(0.4)
        'new account (9 days; accounts here average 45 days, counted up to 90)'
        >>> NewAccount(0.9, 9).describe(0.9)
        'new account (9 days)'
        """
        tenure = plural(round(self.tenure_days), "day")
        if self.base_days is None:
            return f"new account ({tenure})"
        base = plural(self.base_days, "day")
        return f"new account ({tenure}; accounts here average {base}, counted up to 90)"


@dataclass(frozen=True, slots=True)
class Trend:
    """Weekly usage trending down over the last ``weeks`` weeks (``trend_4w`` or ``trend_8w``), ``base`` more
    than the base's mean trend (None: not compared with the base)."""

    feature: str
    value: float
    weeks: int
    base: float | None = None

    def describe(self, value: float) -> str:
        """The reason sentence.

        >>> Trend("trend_8w", 0.3, 8, 0.05).describe(0.3)
        'weekly usage trending down: -35% against -5% for the base, over the last 8 weeks'
        """
        if not self.base:
            return f"weekly usage trending down: -{value:.0%} over the last {self.weeks} weeks"
        own = f"-{value + self.base:.0%} against -{self.base:.0%} for the base"
        return f"weekly usage trending down: {own}, over the last {self.weeks} weeks"


def _btyd(x: int, t_x: int, T: int) -> str:
    last = plural(T - t_x, "day")
    return f"BTYD model: {plural(x, 'repeat active day')} in {plural(T, 'day')}, the last {last} ago"


def level_evidence(
    population: PopulationModel,
    window: AccountWindow,
    state: AccountDetectorState,
    today: int,
    *,
    irregular: bool = True,
    weekly: list[float] | None = None,
) -> list[Evidence]:
    """The level, recency, tenure and trend features of an account (see the module docstring).

    ``lapsed`` and ``inactive_ahead`` are only added for ``irregular`` accounts (too new, no rhythm yet, or
    sparse with irregular gaps): a daily or regular account's silence is judged by its own rhythm (the
    ``silence`` feature). ``weekly``: the window's last 8 weekly usage totals when the caller has them
    (:func:`~detectors.features.sums.window_sums` sums them in its pass), else they are summed here.
    """
    engagement = state.engagement
    first = state.first_active_day
    last_active = state.gaps.last_active_day
    if not engagement.n_days or first is None or last_active is None:
        return []
    out: list[Evidence] = []
    segment = window.plan or "unknown"
    pct = population.levels.percentile(window.plan, engagement.usage)
    if pct is not None and pct < 1.0:
        out.append(LowEngagement(round(1.0 - pct, 4), pct, engagement.usage, segment))
    pct = population.levels.percentile(ALL_SEGMENTS, engagement.usage)
    if pct is not None and pct < 1.0:
        out.append(LowActivity(round(1.0 - pct, 4), pct, engagement.usage))
    if engagement.users > 0:
        pct = population.depths.percentile(window.plan, engagement.per_user)
        if pct is not None and pct < 1.0:
            out.append(LowDepth(round(1.0 - pct, 4), pct, engagement.per_user, segment))
    if irregular and population.btyd.fitted:
        x, t_x, T = btyd_summary(first, engagement.n_active, last_active, today, population.calendar)
        lapsed = round(1.0 - population.btyd.score_one(x, t_x, T), 4)
        if lapsed > 0:
            out.append(Lapsed(lapsed, x, t_x, T))
        inactive = round(population.btyd.inactive_one(x, t_x, T, population.horizon_days), 4)
        if inactive > 0:
            out.append(InactiveAhead(inactive, x, t_x, T, population.horizon_days))
    if engagement.active_share < 1.0:
        out.append(Infrequent(round(1.0 - engagement.active_share, 4)))
    recency_days = today - last_active
    if recency_days > 1:
        out.append(Recency(round(min(2.0, math.log(recency_days) / _LOG31), 4), recency_days))
    if window.first_seen_ms is not None:
        tenure = today - day_of(window.first_seen_ms)
        new = round(population.new_account(tenure), 4)
        if new > 0:
            base = population.newness if population.relative_tenure else None
            days = round(TENURE_DAYS * (1.0 - base)) if base is not None else None
            out.append(NewAccount(new, tenure, days))
    if today - first >= 28:
        # One pass over the window for both trends: 8 weekly totals, the last 4 of them for the short one.
        totals = weekly
        if totals is None:
            quiet = population.calendar.quiet
            totals = weekly_totals(window.days, today - 1, 8, quiet, engagement.usage, first)
        for name, own in downtrends(totals, today - first).items():
            value = round(population.trend(name, own), 4)
            if value > 0:
                base = (
                    population.trends.get(name) if population.relative_trends and population.trends else None
                )
                out.append(Trend(name, value, _WEEKS[name], base))
    return out
