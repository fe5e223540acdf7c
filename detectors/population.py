"""The worker-wide view of the customer base: segment percentiles, the BTYD model and the holiday calendar.

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

The level, recency and trend features read against it are :mod:`detectors.features.level`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from detectors.btyd import BtydModel
from detectors.calendar_effects import PopulationCalendar
from detectors.engagement import SegmentQuantiles
from detectors.windows import DAY_MS, USAGE, AccountWindow

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState


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
            x, t_x, T = self.summary(state, last_active, today)
            self.btyd.learn_one(account_id, x=x, t_x=t_x, T=T, day=today)
        calendar.close_through(today - 1)
        self.census_day = today

    def summary(self, state: AccountDetectorState, last_active: int, today: int) -> tuple[int, int, int]:
        """BTYD summary ``(x, t_x, T)`` in days; quiet (holiday) days after the last activity do not count."""
        first = state.first_active_day
        assert first is not None
        quiet = len(self.calendar.quiet_between(last_active + 1, today - 1))
        t_x = last_active - first
        return max(0, state.engagement.n_active - 1), t_x, max(t_x, today - first - quiet)
