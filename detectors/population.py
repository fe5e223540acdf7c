"""The worker-wide view of the customer base, and the level, recency and trend features read against it.

Change detectors compare an account with itself; :class:`PopulationModel` supplies what only the whole
population can tell: where an account's engagement sits among accounts of the same plan
(:class:`~detectors.engagement.SegmentQuantiles`), how likely its activity pattern is to belong to a
customer who already left (:class:`~detectors.btyd.BtydModel`, parameters fitted on the accounts'
summaries) and which days were quiet for everybody (:class:`~detectors.calendar_effects.PopulationCalendar`).

It is updated by :meth:`PopulationModel.census` once per day, over every account of a sweep, *before* the
accounts are assessed (``AccountMonitor.census``; replay and the live sweep call it), so an account
assessed first and one assessed last see the same population. Nothing of it is stored per account; the
engine saves it with its own state (``streams/engine/saved.py``; :meth:`to_state` / :meth:`from_state` give
the whole model, parameters included).

Features it adds (all >= 0, 0 = nothing unusual; each has an explanation sentence in
:mod:`detectors.reasons`):

``low_engagement``
    1 - percentile of the account's EW usage per day among accounts of its plan.
``low_activity``
    1 - percentile of its EW usage per day among *all* accounts: where plans follow size (a bigger plan for
    a bigger team), the plan percentile hides a level that is low for the whole customer base.
``low_depth``
    1 - percentile of its EW usage per active user and day within the plan.
``inactive_ahead``
    MBG/NBD probability of no activity at all in the next ``horizon_days``
    (:func:`~detectors.btyd.p_inactive`), for the same irregular accounts as ``lapsed``: it separates a
    rare visitor that is alive but probably quiet for a month from a frequent one.
``lapsed``
    1 - P(alive) of the MBG/NBD model from ``x`` (active days after the first), ``t_x`` and ``T``; for
    irregular accounts only (too new, fewer than 3 active days, or sparse with gaps whose spread exceeds
    half their mean).
``infrequent``
    1 - EW share of days with activity.
``recency``
    ``log1p(days since the last active day - 1) / log(31)``: 1 after a month of silence, capped at 2.
``new_account``
    ``1 - tenure / 90 days`` (tenure from the account's first event of any kind, billing included).
``trend_4w``, ``trend_8w``
    Share of the weekly usage level lost over the last 4 / 8 weeks, from the least-squares slope of weekly
    totals (holiday days scaled back up by the population's ratio).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from detectors.btyd import BtydModel
from detectors.calendar_effects import PopulationCalendar
from detectors.engagement import ALL_SEGMENTS, SegmentQuantiles, slope_of, weekly_totals
from detectors.windows import DAY_MS, USAGE, AccountWindow, day_of

if TYPE_CHECKING:
    from detectors.monitor import AccountDetectorState

_LOG31 = math.log(31.0)


class PopulationModel:
    """Segment percentiles, the buy-till-you-die model and the holiday calendar of one worker's accounts.

    Parameters
    ----------
    min_history_days
        Days an account must have been active for before its days are tallied for the calendar.
    sparse_gap_days
        Accounts whose usual gap is shorter (daily accounts) stay out of the BTYD sample: the model is
        fitted on, and scores, the irregular accounts (fitted on a base of mostly daily accounts it would
        find every sparse account dead).
    horizon_days
        Horizon of ``inactive_ahead`` (the risk model's horizon).
    levels, depths, btyd, calendar
        The pieces (defaults when omitted).

    Examples
    --------
    >>> from detectors.monitor import AccountMonitor, DetectorConfig
    >>> from detectors.windows import AccountWindow, WindowConfig, DAY_MS
    >>> monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    >>> accounts = {f"a{i}": (AccountWindow(WindowConfig()), monitor.new_state()) for i in range(60)}
    >>> day0 = 20_600
    >>> for day in range(day0, day0 + 40):
    ...     for i, (window, state) in enumerate(accounts.values()):
    ...         for k in range(1 + i // 6):  # accounts a0-a5 use 1 event a day ... a54-a59 use 10
    ...             _ = window.add_usage(day * DAY_MS + 36_000_000 + k, "login", "u1", 1)
    ...     now = (day + 1) * DAY_MS
    ...     monitor.census([(a, w, s) for a, (w, s) in accounts.items()], now)
    ...     results = {a: monitor.observe(a, w, s, now) for a, (w, s) in accounts.items()}
    >>> low = {a: r.features.get("low_engagement", 0.0) for a, r in results.items()}
    >>> low["a0"] > 0.8, low["a59"] < 0.15
    (True, True)
    >>> len(monitor.population.btyd.sample)  # daily accounts: the BTYD model is for irregular ones
    0
    """

    STATE_BUDGET_BYTES = 50_000  # both sketches, the BTYD sample, the calendar (once per worker)
    __slots__ = (
        "btyd",
        "calendar",
        "census_day",
        "depths",
        "horizon_days",
        "levels",
        "min_history_days",
        "sparse_gap_days",
    )

    def __init__(
        self,
        min_history_days: int = 14,
        sparse_gap_days: float = 2.5,
        *,
        horizon_days: int = 30,
        levels: SegmentQuantiles | None = None,
        depths: SegmentQuantiles | None = None,
        btyd: BtydModel | None = None,
        calendar: PopulationCalendar | None = None,
    ) -> None:
        self.min_history_days = min_history_days
        self.sparse_gap_days = sparse_gap_days
        self.horizon_days = horizon_days
        self.levels = levels if levels is not None else SegmentQuantiles()
        self.depths = depths if depths is not None else SegmentQuantiles()
        self.btyd = btyd if btyd is not None else BtydModel()
        self.calendar = calendar if calendar is not None else PopulationCalendar()
        self.census_day: int | None = None

    def clone(self) -> PopulationModel:
        return PopulationModel(
            self.min_history_days,
            self.sparse_gap_days,
            horizon_days=self.horizon_days,
            levels=self.levels.clone(),
            depths=self.depths.clone(),
            btyd=self.btyd.clone(),
            calendar=self.calendar.clone(),
        )

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state of every piece (tens of kB, once per worker)."""
        return {
            "params": [self.min_history_days, self.sparse_gap_days, self.horizon_days],
            "levels": self.levels.to_state(),
            "depths": self.depths.to_state(),
            "btyd": self.btyd.to_state(),
            "calendar": self.calendar.to_state(),
            "day": self.census_day,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PopulationModel:
        """Rebuild from :meth:`to_state` (the pieces keep their default parameters)."""
        min_history, sparse_gap, horizon = state["params"]
        model = cls(
            int(min_history),
            float(sparse_gap),
            horizon_days=int(horizon),
            levels=SegmentQuantiles.from_state(state["levels"]),
            depths=SegmentQuantiles.from_state(state["depths"]),
            btyd=BtydModel.from_state(state["btyd"]),
            calendar=PopulationCalendar.from_state(state["calendar"]),
        )
        model.census_day = state["day"]
        return model

    def census(self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState]], today: int) -> None:
        """Update every piece from the accounts' states and windows, once per day (later calls: no-op)."""
        if self.census_day is not None and today <= self.census_day:
            return
        calendar = self.calendar
        for account_id, window, state in accounts:
            first = state.first_active_day
            canceled = window.canceled_ts_ms
            if first is None or (canceled is not None and canceled < today * DAY_MS):
                continue
            learned = state.learned_through
            if learned is not None and learned - first >= self.min_history_days and state.drop_since is None:
                baseline = state.baselines[0]
                for day in range(max(learned + 1, today - 7), today):
                    bucket = window.days.get(day)
                    calendar.learn_one(
                        day, usage=float(bucket[USAGE]) if bucket else 0.0, expected=baseline.expected(day)
                    )
            engagement = state.engagement
            last_active = state.gaps.last_active_day
            if not engagement.n_days or last_active is None:
                continue
            self.levels.learn_one(window.plan, engagement.usage, today)
            if engagement.users > 0:
                self.depths.learn_one(window.plan, engagement.per_user, today)
            gaps = state.gaps
            if gaps.n_gaps >= gaps.min_gaps and gaps.mean_gap < self.sparse_gap_days:
                # Daily accounts: the BTYD model describes (and scores) the irregular ones only.
                self.btyd.forget(account_id)
                continue
            x, t_x, T = self._summary(state, last_active, today)
            self.btyd.learn_one(account_id, x=x, t_x=t_x, T=T, day=today)
        calendar.close_through(today - 1)
        self.census_day = today

    def _summary(self, state: AccountDetectorState, last_active: int, today: int) -> tuple[int, int, int]:
        """BTYD summary ``(x, t_x, T)`` in days; quiet (holiday) days after the last activity do not count."""
        first = state.first_active_day
        assert first is not None
        quiet = len(self.calendar.quiet_between(last_active + 1, today - 1))
        t_x = last_active - first
        return max(0, state.engagement.n_active - 1), t_x, max(t_x, today - first - quiet)

    def features(
        self,
        window: AccountWindow,
        state: AccountDetectorState,
        today: int,
        features: dict[str, float],
        context: dict[str, Any],
        *,
        irregular: bool = True,
    ) -> None:
        """Add the level, recency, tenure and trend features of an account (see the module docstring).

        ``lapsed`` is only added for ``irregular`` accounts (too new, no rhythm yet, or sparse with irregular
        gaps): a daily or regular account's silence is judged by its own rhythm (the ``silence`` feature).
        """
        engagement = state.engagement
        first = state.first_active_day
        last_active = state.gaps.last_active_day
        if not engagement.n_days or first is None or last_active is None:
            return
        segment = window.plan or "unknown"
        pct = self.levels.percentile(window.plan, engagement.usage)
        if pct is not None and pct < 1.0:
            features["low_engagement"] = round(1.0 - pct, 4)
            context["level"] = (pct, engagement.usage, segment)
        pct = self.levels.percentile(ALL_SEGMENTS, engagement.usage)
        if pct is not None and pct < 1.0:
            features["low_activity"] = round(1.0 - pct, 4)
            context["activity_level"] = (pct, engagement.usage)
        if engagement.users > 0:
            pct = self.depths.percentile(window.plan, engagement.per_user)
            if pct is not None and pct < 1.0:
                features["low_depth"] = round(1.0 - pct, 4)
                context["depth"] = (pct, engagement.per_user, segment)
        if irregular and self.btyd.fitted:
            x, t_x, T = self._summary(state, last_active, today)
            lapsed = round(1.0 - self.btyd.score_one(x, t_x, T), 4)
            context["btyd"] = (x, t_x, T)
            if lapsed > 0:
                features["lapsed"] = lapsed
            inactive = round(self.btyd.inactive_one(x, t_x, T, self.horizon_days), 4)
            if inactive > 0:
                features["inactive_ahead"] = inactive
                context["horizon_days"] = self.horizon_days
        if engagement.active_share < 1.0:
            features["infrequent"] = round(1.0 - engagement.active_share, 4)
        recency_days = today - last_active
        context["recency_days"] = recency_days
        if recency_days > 1:
            features["recency"] = round(min(2.0, math.log(recency_days) / _LOG31), 4)
        if window.first_seen_ms is not None:
            tenure = today - day_of(window.first_seen_ms)
            context["tenure_days"] = tenure
            if tenure < 90:
                features["new_account"] = round(1.0 - max(0, tenure) / 90.0, 4)
        if today - first >= 28:
            # One pass over the window for both trends: 8 weekly totals, the last 4 of them for the short one.
            totals = weekly_totals(window.days, today - 1, 8, self.calendar.quiet)
            for name, weeks in (("trend_4w", 4), ("trend_8w", 8)):
                if today - first < 7 * weeks:
                    break
                slope = slope_of(totals[-weeks:])
                if slope is not None and slope < 0:
                    features[name] = round(min(1.0, -slope * weeks), 4)
