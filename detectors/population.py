"""The worker-wide view of the customer base: segment percentiles, the BTYD model and the holiday calendar.

Change detectors compare an account with itself; :class:`PopulationModel` supplies what only the whole
population can tell: where an account's engagement sits among accounts of the same plan
(:class:`~detectors.engagement.SegmentQuantiles`), how likely its activity pattern is to belong to a
customer who already left (:class:`~detectors.btyd.BtydModel`, parameters fitted on the accounts'
summaries), which days were quiet for everybody (:class:`~detectors.calendar_effects.PopulationCalendar`),
how the base's silent spells and flagged drops ended (:class:`~detectors.spells.SpellOutcomes`: back or
gone, by how long they had lasted) and how new the base itself is and how much its weekly usage trends
down (:attr:`PopulationModel.newness`, :attr:`PopulationModel.trends`: means over the live accounts),
which ``new_account`` and the trends are read against (the trends with ``relative_trends`` only), so
that neither drifts with the calendar for the whole base.

:meth:`PopulationModel.census` updates it once per day, over every account of a sweep, *before* any is
assessed (``AccountMonitor.census``), so the first and the last see the same population; it aggregates each
live account's record (:mod:`detectors.census`; the lock-step replay builds them in several processes).
The level, recency and trend features read against it are :mod:`detectors.features.level`'s. Nothing of it
is stored per account; the engine saves it with its own state (``streams/engine/saved.py``;
:meth:`~PopulationModel.to_state` / :meth:`~PopulationModel.from_state`: the whole model, parameters
included). The pieces live in their own modules (segments, BTYD, calendar, spells, the budget).

Size: ~430 lines, over the ~400 aim: what is left is one job, the model of the whole base (its state
round trip, the census that updates it, and the readers of it); its class docstring's example runs it end
to end. The per-account census records moved to :mod:`detectors.census`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.btyd import BtydModel
from detectors.budget import AlertBudget
from detectors.calendar_effects import PopulationCalendar
from detectors.census import CensusInputs, CensusRecord, census_record, live_accounts, newness
from detectors.engagement import TRENDS, SegmentQuantiles, downtrends, weekly_totals
from detectors.spells import SpellOutcomes, spell_class
from detectors.steps import Steps, drain
from detectors.windows import AccountWindow

if TYPE_CHECKING:
    from detectors.account_state import AccountDetectorState

CENSUS_STEP = 1024  # records the census learns between two steps (a few ms)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


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
    relative_tenure, relative_trends, silence_outcomes
        ``new_account`` is the account's newness *above the base's mean newness that day*
        (:meth:`new_account`); ``trend_4w`` and ``trend_8w`` its downtrend *beyond the base's mean
        downtrend that day* (:meth:`trend`); ``silence`` is weighed by the share of the base's spells as
        long as the account's that did not come back within the horizon (:meth:`silence_fate`; the spells
        are counted either way). ``DetectorConfig``'s options of the same names say why.
    drop_outcomes
        The same for the drop features while a sustained drop is flagged (:meth:`drop_fate`), from the
        base's flagged drops by their age (:attr:`drops`).
    levels, depths, btyd, calendar, spells, drops
        The pieces (defaults when omitted).
    budget
        The alert budget (:class:`~detectors.budget.AlertBudget`; ``DetectorConfig.alert_budget``), None
        without one: the census counts the base's risk crossings into it
        (:attr:`~detectors.census.CensusRecord.risk`).

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
    >>> round(monitor.population.newness, 3)  # all 60 joined on day0: 40 days old, no newer than the base
    0.556
    >>> monitor.population.new_account(40), round(PopulationModel(relative_tenure=False).new_account(40), 3)
    (0.0, 0.556)
    """

    # Both sketches, the BTYD sample, the calendar (once per worker).
    STATE_BUDGET_BYTES: ClassVar[int] = 50_000
    __slots__ = (
        "btyd",
        "budget",
        "calendar",
        "census_day",
        "depths",
        "drop_outcomes",
        "drops",
        "horizon_days",
        "levels",
        "min_history_days",
        "newness",
        "relative_tenure",
        "relative_trends",
        "silence_outcomes",
        "sparse_gap_days",
        "spells",
        "trends",
    )

    def __init__(
        self,
        min_history_days: int = 14,
        sparse_gap_days: float = 2.5,
        *,
        horizon_days: int = 30,
        relative_tenure: bool = True,
        relative_trends: bool = False,
        silence_outcomes: bool = False,
        drop_outcomes: bool = False,
        levels: SegmentQuantiles | None = None,
        depths: SegmentQuantiles | None = None,
        btyd: BtydModel | None = None,
        calendar: PopulationCalendar | None = None,
        spells: SpellOutcomes | None = None,
        drops: SpellOutcomes | None = None,
        budget: AlertBudget | None = None,
    ) -> None:
        self.min_history_days = min_history_days
        self.sparse_gap_days = sparse_gap_days
        self.horizon_days = horizon_days
        self.relative_tenure = relative_tenure
        self.relative_trends = relative_trends
        self.silence_outcomes = silence_outcomes
        self.spells = spells if spells is not None else SpellOutcomes()
        self.drop_outcomes = drop_outcomes
        self.drops = drops if drops is not None else SpellOutcomes()
        self.levels = levels if levels is not None else SegmentQuantiles()
        self.depths = depths if depths is not None else SegmentQuantiles()
        self.btyd = btyd if btyd is not None else BtydModel()
        self.calendar = calendar if calendar is not None else PopulationCalendar()
        self.budget = budget
        self.census_day: int | None = None
        self.newness: float | None = None  # mean newness of the live accounts at the last census
        self.trends: dict[str, float] | None = None  # their mean trend_4w / trend_8w (0 when none)

    def clone(self) -> PopulationModel:
        return PopulationModel(
            self.min_history_days,
            self.sparse_gap_days,
            horizon_days=self.horizon_days,
            relative_tenure=self.relative_tenure,
            relative_trends=self.relative_trends,
            silence_outcomes=self.silence_outcomes,
            drop_outcomes=self.drop_outcomes,
            levels=self.levels.clone(),
            depths=self.depths.clone(),
            btyd=self.btyd.clone(),
            calendar=self.calendar.clone(),
            spells=self.spells.clone(),
            drops=self.drops.clone(),
            budget=self.budget.clone() if self.budget is not None else None,
        )

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state of every piece (tens of kB, once per worker; the budget only when set)."""
        state: dict[str, Any] = {
            "params": [
                self.min_history_days,
                self.sparse_gap_days,
                self.horizon_days,
                self.relative_tenure,
                self.relative_trends,
                self.silence_outcomes,
                self.drop_outcomes,
            ],
            "levels": self.levels.to_state(),
            "depths": self.depths.to_state(),
            "btyd": self.btyd.to_state(),
            "calendar": self.calendar.to_state(),
            "spells": self.spells.to_state(),
            "drops": self.drops.to_state(),
            "day": self.census_day,
            "new": self.newness,
            "trends": self.trends,
        }
        if self.budget is not None:
            state["budget"] = [self.budget.budget, self.budget.floor, self.budget.to_state()]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PopulationModel:
        """Rebuild from :meth:`to_state` (the pieces keep their default parameters)."""
        min_history, sparse_gap, horizon, *relative = state["params"]
        model = cls(
            int(min_history),
            float(sparse_gap),
            horizon_days=int(horizon),
            relative_tenure=bool(relative[0]) if relative else True,
            relative_trends=bool(relative[1]) if len(relative) > 1 else False,
            silence_outcomes=bool(relative[2]) if len(relative) > 2 else False,
            drop_outcomes=bool(relative[3]) if len(relative) > 3 else False,
            levels=SegmentQuantiles.from_state(state["levels"]),
            depths=SegmentQuantiles.from_state(state["depths"]),
            btyd=BtydModel.from_state(state["btyd"]),
            calendar=PopulationCalendar.from_state(state["calendar"]),
            spells=SpellOutcomes.from_state(state["spells"]) if state.get("spells") else None,
            drops=SpellOutcomes.from_state(state["drops"]) if state.get("drops") else None,
        )
        if state.get("budget"):
            budget, floor, saved = state["budget"]
            model.budget = AlertBudget.from_state(saved, budget=budget, floor=floor)
        model.census_day = state["day"]
        model.newness = state.get("new")
        model.trends = state.get("trends")
        return model

    def census(
        self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState | CensusInputs]], today: int
    ) -> None:
        """Update every piece from the accounts' states and windows, once per day (later calls: no-op, but
        for the base's newness and trends when a restored model has none).

        The same as :meth:`take_census` over each live account's :meth:`record`, in the accounts' order (what
        a sharded replay does across processes, ``streams/offline/replay_lockstep.py``)."""
        live = list(live_accounts(accounts, today))
        if self.take_census((self.record(a, w, s, today) for a, w, s in live), today):
            self.trends = self._base_trends(live, today)

    def records(
        self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState | CensusInputs]], today: int
    ) -> list[CensusRecord]:
        """What :meth:`take_census` needs of each live account, in the accounts' order."""
        return [self.record(a, w, s, today) for a, w, s in live_accounts(accounts, today)]

    def record(self, account_id: str, window: AccountWindow, state: CensusInputs, today: int) -> CensusRecord:
        """One live account's contribution to the census of ``today`` under this model's parameters
        (:func:`~detectors.census.census_record`)."""
        return census_record(
            account_id,
            window,
            state,
            today,
            min_history_days=self.min_history_days,
            sparse_gap_days=self.sparse_gap_days,
            calendar=self.calendar,
            budgeted=self.budget is not None,
        )

    def take_census(self, records: Iterable[CensusRecord], today: int) -> bool:
        """Update every piece from the live accounts' records, in order, once per day; True when the base's
        trends are still to be read from the accounts' windows (``relative_trends`` only, :meth:`census`)."""
        return drain(self.take_census_steps(records, today))

    def take_census_steps(self, records: Iterable[CensusRecord], today: int) -> Steps[bool]:
        """:meth:`take_census` in steps of :data:`CENSUS_STEP` records (:mod:`detectors.steps`)."""
        if self.census_day is not None and today <= self.census_day:
            if self.newness is None or self.trends is None:
                self.newness = _mean([r.newness for r in records if r.newness is not None])
                return self._trends_to_read()
            return False
        self.spells.close(today)  # the spell outcomes seen by the last sweep's observations
        self.drops.close(today)
        calendar = self.calendar
        budget = self.budget
        if budget is not None:
            budget.close(today)
        seen: list[float] = []
        for n, record in enumerate(records, 1):
            if n % CENSUS_STEP == 0:
                yield
            if budget is not None and record.risk is not None:
                before, after, free = record.risk
                budget.learn_one(before, after, free=free)
            for day, usage, expected in record.tallies:
                calendar.learn_one(day, usage=usage, expected=expected)
            if record.newness is not None:
                seen.append(record.newness)
            if record.usage is None:
                continue
            self.levels.learn_one(record.plan, record.usage, today)
            if record.per_user is not None:
                self.depths.learn_one(record.plan, record.per_user, today)
            if record.btyd is None:
                # Daily accounts: the BTYD model describes (and scores) the irregular ones only.
                self.btyd.forget(record.account_id)
                continue
            x, t_x, T = record.btyd
            self.btyd.learn_one(record.account_id, x=x, t_x=t_x, T=T, day=today)
        calendar.close_through(today - 1)
        self.census_day = today
        self.newness = _mean(seen)
        return self._trends_to_read()

    def alert_threshold(self, floor: float) -> float:
        """The risk at which an episode opens today: ``floor`` (``alert_threshold``), or the alert budget's
        threshold (:meth:`~detectors.budget.AlertBudget.threshold`) when there is one."""
        return floor if self.budget is None else self.budget.threshold()

    def _trends_to_read(self) -> bool:
        if self.relative_trends:
            return True
        self.trends = {}  # nothing read against the base: no account's trend counted
        return False

    def _base_trends(
        self, live: list[tuple[str, AccountWindow, CensusInputs]], today: int
    ) -> dict[str, float]:
        """The live accounts' mean downtrends (over those with engagement, as
        :func:`~detectors.features.level.level_evidence` reads them), with the calendar closed."""
        sums = {name: 0.0 for name, _ in TRENDS}
        n = 0
        for _, window, state in live:
            first = state.first_active_day
            if not state.n_days or first is None or state.last_active_day is None:
                continue
            n += 1
            if today - first >= TRENDS[0][1] * 7:
                quiet, usual = self.calendar.quiet, state.usage
                totals = weekly_totals(window.days, today - 1, 8, quiet, usual, first)
                for name, value in downtrends(totals, today - first).items():
                    sums[name] += value
        return {name: total / n for name, total in sums.items()} if n else {}

    def new_account(self, tenure_days: float) -> float:
        """The ``new_account`` feature of an account ``tenure_days`` old: its own
        :func:`~detectors.census.newness`, less the base's mean newness with ``relative_tenure`` (0 when it
        is no newer than the base), in [0, 1].

        >>> population = PopulationModel()
        >>> population.newness = 0.5  # the base's accounts are 45 days old on average (counted up to 90)
        >>> population.new_account(9), population.new_account(60)
        (0.4, 0.0)
        """
        own = newness(tenure_days)
        if not self.relative_tenure:
            return own
        return max(0.0, own - self.newness) if self.newness is not None else 0.0

    def trend(self, name: str, value: float) -> float:
        """The ``name`` trend feature of an account whose own downtrend is ``value``: with
        ``relative_trends``, what it loses beyond the base's mean (0 when no more), in [0, 1].

        >>> population = PopulationModel(relative_trends=True)
        >>> population.trends = {"trend_4w": 0.1, "trend_8w": 0.0}
        >>> [round(population.trend(name, own), 4) for name, own in [("trend_4w", 0.35), ("trend_4w", 0.05)]]
        [0.25, 0.0]
        >>> population.trend("trend_8w", 0.2)
        0.2
        """
        if not self.relative_trends:
            return value
        base = self.trends.get(name, 0.0) if self.trends else 0.0
        return max(0.0, value - base)

    def silence_fate(self, state: AccountDetectorState, silent_days: int) -> tuple[float, float | None]:
        """``(weight, share back)`` for the silence of an account silent ``silent_days`` days: the share of
        the base's spells as long (in the account's usual gaps, its class: daily or sparse) that did not
        come back within the horizon (with ``silence_outcomes``; else, or before a spell is one usual gap
        long, 1), and the observed share that came back (None without evidence; for the reason sentence).

        >>> from detectors.account_state import AccountDetectorState
        >>> from detectors.config import DetectorConfig
        >>> from detectors.spells import reached
        >>> population, state = PopulationModel(silence_outcomes=True), AccountDetectorState(DetectorConfig())
        >>> for day in range(20_000, 20_010):
        ...     state.gaps.learn_one(day)  # a daily account
        >>> for _ in range(45):
        ...     population.spells.learn_spell(0, 0, reached(6, 1.0), gone=False)  # 45 back after 6 days
        >>> population.spells.close(20_020)
        >>> population.silence_fate(state, 5), population.silence_fate(state, 9)
        ((0.1, 1.0), (1.0, None))
        """
        gaps = state.gaps
        cls, unit = spell_class(gaps.mean_gap if gaps.n_gaps >= gaps.min_gaps else 1.0, self.sparse_gap_days)
        weight = self.spells.p_gone(cls, silent_days, unit) if self.silence_outcomes else None
        return (1.0 if weight is None else weight), self.spells.share_back(cls, silent_days, unit)

    def drop_fate(self, age_days: int) -> tuple[float, float | None]:
        """``(weight, share back)`` for the drop features of an account whose sustained drop was flagged
        ``age_days`` ago: the share of the base's flagged drops as old that did not recover (with
        ``drop_outcomes``; else, or without evidence, 1), and the observed share that did (None without
        evidence).

        >>> from detectors.spells import reached
        >>> population = PopulationModel(drop_outcomes=True)
        >>> for _ in range(35):
        ...     population.drops.learn_spell(0, 0, reached(8, 1.0), gone=False)  # recovered within 8 days
        >>> population.drops.close(20_020)
        >>> population.drop_fate(6), population.drop_fate(12)
        ((0.125, 1.0), (1.0, None))
        """
        weight = self.drops.p_gone(0, age_days) if self.drop_outcomes else None
        return (1.0 if weight is None else weight), self.drops.share_back(0, age_days)

    def usually_back(self, state: AccountDetectorState, today: int) -> bool:
        """Whether the account is in a silent spell or a flagged drop, and the base's spells of each kind
        it is in, as long, *usually* (more often than not) came back: :meth:`~SpellOutcomes.p_gone` under
        one half for each (with its pseudo-spells that did not come back, so thin evidence never holds).

        >>> from detectors.account_state import AccountDetectorState
        >>> from detectors.config import DetectorConfig
        >>> from detectors.spells import reached
        >>> population, state = PopulationModel(), AccountDetectorState(DetectorConfig())
        >>> for day in range(20_000, 20_010):
        ...     state.gaps.learn_one(day)  # a daily account, last active on day 20_009
        >>> for _ in range(45):
        ...     population.spells.learn_spell(0, 0, reached(6, 1.0), gone=False)  # 45 back after 6 days
        >>> population.spells.close(20_020)
        >>> [population.usually_back(state, today) for today in (20_010, 20_013, 20_018)]  # 0, 3, 8 days
        [False, True, False]
        """
        gaps = state.gaps
        fates = []
        silent = gaps.silent_days(today)
        if silent and gaps.n_gaps >= gaps.min_gaps:
            cls, unit = spell_class(gaps.mean_gap, self.sparse_gap_days)
            fates.append(self.spells.p_gone(cls, silent, unit))
        if state.drop_since is not None:
            fates.append(self.drops.p_gone(0, today - state.drop_since))
        known = [p for p in fates if p is not None]
        return bool(known) and all(p < 0.5 for p in known)
