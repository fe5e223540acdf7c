"""Account monitoring: what the engine calls to assess one account at one clock.

:class:`AccountMonitor` is what the engine's sweeps (live and replay) call. It owns no per-account data:
each account's detector state (:class:`~detectors.account_state.AccountDetectorState`, a few hundred bytes
of JSON) lives beside the account's :class:`~detectors.windows.AccountWindow` in the caller's store, and
:meth:`AccountMonitor.observe` updates it in place. The worker-wide pieces are the
:class:`~detectors.risk.RiskModel` (``monitor.risk_model``) and the
:class:`~detectors.population.PopulationModel` (``monitor.population``, updated by :meth:`census`).

One :meth:`observe` runs the parts in turn:

1. :class:`~detectors.history.HistoryLearner` learns the completed days the state has not learned yet
   (tracked in ``state.learned_through``, so a repeated call learns nothing twice);
2. :func:`~detectors.features.extract` reads the risk features, one extractor per signal, each with the
   typed evidence that explains it;
3. the risk model scores them; :mod:`detectors.reasons` picks the reasons;
4. :class:`~detectors.outcomes.OutcomeLabeller` labels the snapshots whose outcome is known and takes new
   ones;
5. :class:`~detectors.episode.EpisodePolicy` opens, escalates or resolves the account's episode.

Observing changes no worker-wide model: labelled outcomes come back in ``Assessment.outcomes`` and the
caller learns them with :meth:`AccountMonitor.learn` (the engine does at its next sweep, so every account of
a sweep is scored by the same model).

Time is event time: ``observe(..., now_ms)`` treats every UTC day before ``day_of(now_ms)`` as complete and
judges silence against ``now_ms``. Callers pass the event-time watermark after folding events, and the clock
(or the watermark, offline) in periodic sweeps so that accounts that stopped sending events are still
evaluated. Every part reads the window as of ``now_ms`` (:meth:`~detectors.windows.AccountWindow.as_of`):
days that start at or after it (a partition read ahead of the clock) wait for a later observation.
:class:`~detectors.outage.OutageGuard` then looks at all assessments of one sweep.

Size: ~480 lines, over the ~400 aim: the monitor is the one place that sequences every detector for an
account-day (history, census records and their learning, in one call or in steps, features, risk,
episodes, spells); each step is a short method calling its own module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors.account_state import AccountDetectorState
from detectors.alerts import Alert, Severity
from detectors.budget import AlertBudget, note_risk
from detectors.census import CensusInputs, CensusRecord
from detectors.config import SEVERITY_ORDER, DetectorConfig, severity_of
from detectors.episode import Episode, EpisodePolicy, RiskSnapshot
from detectors.features import Features, extract
from detectors.history import HistoryLearner
from detectors.outage import GuardDecision, OutageGuard
from detectors.outcomes import Outcome, OutcomeLabeller, ripe
from detectors.population import PopulationModel
from detectors.reasons import explain
from detectors.risk import RiskModel
from detectors.spells import track_drop, track_spell
from detectors.steps import Steps, drain
from detectors.windows import AccountWindow, WindowConfig, day_of

__all__ = [
    "SEVERITY_ORDER",
    "AccountDetectorState",
    "AccountMonitor",
    "Assessment",
    "DetectorConfig",
    "Episode",
    "GuardDecision",
    "OutageGuard",
    "Outcome",
    "RiskModel",
]


@dataclass(slots=True, kw_only=True)
class Assessment:
    """What :meth:`AccountMonitor.observe` concluded about one account at ``now_ms``.

    ``alerts`` are the episode transitions to emit (after the :class:`OutageGuard`, if used). ``monitored``
    is False while the account has no trusted baseline yet (warm-up) or has cancelled. ``quiet_since`` is the
    day its next activity was due (last active day + usual gap) while it is silent or quiet (else None).
    ``onset_day`` is the first day of the current quiet spell or flagged drop (what the outage guard groups
    accounts by). ``outcomes`` are the snapshots this observation labelled, for the caller to learn.
    """

    account_id: str
    now_ms: int
    risk: float
    severity: Severity | None
    reasons: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    features: dict[str, float] = field(default_factory=dict)
    monitored: bool = False
    onset_day: int | None = None
    quiet_since: int | None = None
    episode_id: str | None = None
    plan: str | None = None
    mrr: float | None = None
    alerts: list[Alert] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class AccountMonitor:
    """Per-account detection and alert policy over :class:`~detectors.windows.AccountWindow` data.

    Parameters
    ----------
    config
        Thresholds of detection, risk and alerting.
    window_config
        The windows' configuration (retention bounds how far back days can be learned).
    risk_model
        The global model; a fresh one (prior until ``config.min_positives`` outcomes) when omitted.

    Examples
    --------
    A daily account with a stable weekday/weekend rhythm that then goes silent (the caller learns the
    outcomes each observation labels):

    >>> from detectors.windows import AccountWindow, WindowConfig, DAY_MS
    >>> monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    >>> window, state = AccountWindow(WindowConfig()), monitor.new_state()
    >>> day0 = 20_600
    >>> for day in range(day0, day0 + 40):
    ...     for k in range(20 if (day + 3) % 7 < 5 else 5):
    ...         _ = window.add_usage(day * DAY_MS + 36_000_000 + k, "report_exported", f"u{k % 4}", 1)
    ...     a = monitor.observe("acme", window, state, (day + 1) * DAY_MS)
    ...     _ = monitor.learn(a.outcomes)
    >>> a.risk < 0.05, a.alerts
    (True, [])
    >>> for day in range(day0 + 41, day0 + 60):  # nothing arrives any more; sweeps keep evaluating
    ...     a = monitor.observe("acme", window, state, day * DAY_MS)
    ...     _ = monitor.learn(a.outcomes)
    ...     for alert in a.alerts:
    ...         print(day - day0 - 40, alert.transition.value, alert.severity.value, a.reasons[0])
    5 opened medium silent for 5 days (usually active every 1.0 days)
    6 escalated high silent for 6 days (usually active every 1.0 days)
    7 escalated critical silent for 7 days (usually active every 1.0 days)
    """

    def __init__(
        self, config: DetectorConfig, window_config: WindowConfig, risk_model: RiskModel | None = None
    ) -> None:
        self.config = config
        self.window_config = window_config
        self.risk_model = (
            risk_model
            if risk_model is not None
            else RiskModel(
                min_positives=config.min_positives,
                learning_rate=config.learning_rate,
                l2=config.l2,
                refit_every=config.refit_every,
                keeps_sgd=config.sgd_beside_refits,
                sgd_gate=config.refit_sgd_gate,
            )
        )
        self.population = PopulationModel(
            config.min_history_days,
            config.sparse_gap_days,
            horizon_days=config.horizon_days,
            relative_tenure=config.relative_tenure,
            relative_trends=config.relative_trends,
            silence_outcomes=config.silence_outcomes,
            drop_outcomes=config.drop_outcomes,
            budget=(
                AlertBudget(config.alert_budget, config.alert_threshold)
                if config.alert_budget is not None
                else None
            ),
        )
        self.history = HistoryLearner(config, window_config)
        self.labeller = OutcomeLabeller(config)
        self.episodes = EpisodePolicy(config)

    def clone(self) -> AccountMonitor:
        """A fresh monitor with the same configuration and an untrained risk model of the same parameters."""
        return AccountMonitor(self.config, self.window_config, self.risk_model.clone())

    def new_state(self) -> AccountDetectorState:
        return AccountDetectorState(self.config)

    def state_from(self, state: dict[str, Any], *, share: bool = True) -> AccountDetectorState:
        """Rebuild a state saved with ``to_state()`` under this monitor's config (``share``: see
        :meth:`AccountDetectorState.from_state`)."""
        return AccountDetectorState.from_state(state, self.config, share=share)

    def today(self, now_ms: int) -> int:
        """The day a sweep at ``now_ms`` judges as today (the days before it are complete): the UTC day of
        ``now_ms``, ``day_close_delay_ms`` late."""
        return day_of(now_ms - self.config.day_close_delay_ms)

    def census(
        self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState | CensusInputs]], now_ms: int
    ) -> None:
        """Update the worker-wide :class:`~detectors.population.PopulationModel` from a sweep's accounts.

        Call it with every account of a sweep *before* observing them (once per day is enough; later calls
        the same day do nothing). Without it, level, BTYD and calendar features are simply absent.
        """
        as_of = ((account_id, window.as_of(now_ms), state) for account_id, window, state in accounts)
        self.population.census(as_of, self.today(now_ms))

    def census_taken(self, now_ms: int) -> bool:
        """Whether the census of the day ``now_ms`` closes is taken (a later :meth:`census` that day only
        fills in what a restored population lacks)."""
        census_day = self.population.census_day
        return census_day is not None and self.today(now_ms) <= census_day

    def census_records(
        self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState | CensusInputs]], now_ms: int
    ) -> list[CensusRecord]:
        """:meth:`census` in two halves, for accounts spread over processes: what each live account adds
        (here), then :meth:`take_census` of every process's records in the accounts' order."""
        as_of = ((account_id, window.as_of(now_ms), state) for account_id, window, state in accounts)
        return self.population.records(as_of, self.today(now_ms))

    def take_census(self, records: Iterable[CensusRecord], now_ms: int) -> None:
        """The second half of :meth:`census` (see :meth:`census_records`); not with ``relative_trends``,
        whose base trends need every account's window."""
        drain(self.take_census_steps(records, now_ms))

    def take_census_steps(self, records: Iterable[CensusRecord], now_ms: int) -> Steps[None]:
        """:meth:`take_census` in steps (:mod:`detectors.steps`)."""
        if self.population.relative_trends:
            raise ValueError("relative_trends: the base's trends need the accounts' windows (use census)")
        yield from self.population.take_census_steps(records, self.today(now_ms))

    def ripe(self, outcomes: Iterable[Outcome], now_ms: int) -> tuple[list[Outcome], list[Outcome]]:
        """``(to learn now, to keep waiting)`` at ``now_ms``: all of them, unless
        ``config.learn_at_horizon``: then outcomes are learned once their snapshot's horizon has closed,
        positives too (:func:`~detectors.outcomes.ripe` says why)."""
        if not self.config.learn_at_horizon:
            return list(outcomes), []
        today = self.today(now_ms)
        return ripe(outcomes, today, self.config.horizon_days)

    def learn(self, outcomes: Iterable[Outcome]) -> int:
        """Learn labelled outcomes (``Assessment.outcomes``) into the risk model; returns how many.

        The caller chooses when: the engine learns a sweep's outcomes at the start of its next sweep, so the
        model stays the same for every account of a sweep (learning in the middle of one made the accounts
        scored late incomparable with those scored early: with mostly-positive labels, as on purchase data,
        the intercept climbed within each sweep).
        """
        return drain(self.learn_steps(outcomes))

    def learn_steps(self, outcomes: Iterable[Outcome]) -> Steps[int]:
        """:meth:`learn` in steps: it yields after each outcome (a sweep of 100 k accounts learns ~1 s of
        them)."""
        n = 0
        for outcome in outcomes:
            self.risk_model.learn_one(outcome.features, outcome.label, day=outcome.day)
            n += 1
            yield
        self.risk_model.refit_if_due()  # answers learned since the last sweep count towards it too
        return n

    # -- public operations --------------------------------------------------------------------------------

    def snooze(self, state: AccountDetectorState, until_ms: int) -> None:
        """Emit no alerts for this account until ``until_ms`` (its episode is still tracked)."""
        self.episodes.snooze(state, until_ms)

    def suppress(self, state: AccountDetectorState, alert: Alert) -> None:
        """Record that ``alert`` was held back by the outage guard: an episode it opened stays muted."""
        self.episodes.suppress(state, alert)

    def severity_of(self, risk: float) -> Severity:
        return severity_of(risk, self.config.severity_bands)

    def observe(
        self,
        account_id: str,
        window: AccountWindow,
        state: AccountDetectorState,
        now_ms: int,
        *,
        clock_ms: int | None = None,
        feature_weights: Mapping[str, float] | None = None,
    ) -> Assessment:
        """Bring ``state`` up to ``now_ms`` and assess the account; see the module docstring.

        Parameters
        ----------
        account_id
            The account (used in alert and episode ids).
        window, state
            The account's window (events already folded) and detector state (updated in place).
        now_ms
            Event time of the evaluation: the watermark after a batch, or the clock in a timer sweep.
        clock_ms
            Processing time stamped on alerts as ``detected_ts_ms`` (defaults to ``now_ms``).
        feature_weights
            Multipliers of this account's features (what answers to its alerts taught it,
            :mod:`detectors.answers`) in its risk and reasons; snapshots keep the features unweighted.
        """
        today = self.today(now_ms)
        window = window.as_of(now_ms)  # what was folded with a later event time waits for a later sweep
        # A cancellation counts once the clock reaches it: a backfill can read billing days ahead of usage.
        if window.canceled_ts_ms is not None and window.canceled_ts_ms <= now_ms:
            return self._canceled(account_id, window, state, now_ms)
        if state.canceled_ts_ms is not None:  # re-subscribed: start over with the labels
            state.canceled_ts_ms = None
        new_days = self.history.learn_days(window, state, today - 1, self.population.calendar)
        self.history.track_mrr(window, state, new_days)
        self._track_spell(window, state, today)
        clock = clock_ms if clock_ms is not None else now_ms
        return self._assess(account_id, window, state, now_ms, today, new_days, clock, feature_weights)

    def _assess(
        self,
        account_id: str,
        window: AccountWindow,
        state: AccountDetectorState,
        now_ms: int,
        today: int,
        new_days: int,
        clock_ms: int,
        feature_weights: Mapping[str, float] | None,
    ) -> Assessment:
        """Features, risk, reasons, outcomes and the episode's step of an account brought up to ``today``."""
        cfg = self.config
        found = extract(window, state, today, cfg, self.population, self.window_config.retention_days)
        observed = (
            found.values
        )  # what the risk model learns from: the account as it is, not as answers weigh it
        features = _weighed(observed, feature_weights) if feature_weights else observed
        risk = self.risk_model.predict_proba_one(features)
        outcomes = self.labeller.label_and_snapshot(account_id, state, today, risk, observed)
        flags, onset_day = self._flags(state, features, found.scheduled)
        reasons: tuple[str, ...] = ()
        # Every alerted or listed (open episode) account carries at least one reason.
        listed = risk >= cfg.alert_threshold or state.episode is not None
        if risk >= cfg.resolve_threshold or listed:
            reasons = self._reasons(features, found, at_least_one=listed)
        seen = RiskSnapshot.of(account_id, window.plan, window.mrr, risk, reasons, features)
        # Spell hold: no new episode while its silence or drop is one that here usually ends in a return.
        hold = cfg.spell_hold and self.population.usually_back(state, today)
        threshold = self.population.alert_threshold(cfg.alert_threshold)
        if self.population.budget is not None and "warming_up" not in flags:
            # What the account adds to the next census's budget (accounts still warming up cannot alert).
            free = state.episode is None and now_ms >= state.cooldown_until_ms
            state.risk_days = note_risk(state.risk_days, today, risk, free=free)
        alerts = self.episodes.step(state, seen, now_ms, clock_ms, new_days, hold=hold, threshold=threshold)
        return Assessment(
            account_id=account_id,
            now_ms=now_ms,
            risk=risk,
            severity=self.severity_of(risk) if risk >= cfg.alert_threshold else None,
            reasons=reasons,
            flags=frozenset(flags),
            features=features,
            monitored="warming_up" not in flags,
            onset_day=onset_day,
            quiet_since=self._overdue_since(state, flags),
            episode_id=state.episode.episode_id if state.episode is not None else None,
            plan=window.plan,
            mrr=window.mrr,
            alerts=alerts,
            outcomes=outcomes,
        )

    def _canceled(
        self, account_id: str, window: AccountWindow, state: AccountDetectorState, now_ms: int
    ) -> Assessment:
        canceled = window.canceled_ts_ms
        assert canceled is not None
        self._track_spell(window, state, self.today(now_ms), canceled=True)
        return Assessment(
            account_id=account_id,
            now_ms=now_ms,
            risk=1.0,
            severity=None,
            reasons=(f"subscription canceled at {_rfc3339(canceled)}",),
            flags=frozenset({"canceled"}),
            plan=window.plan,
            mrr=window.mrr,
            outcomes=self.labeller.canceled(account_id, state, canceled),
        )

    def _track_spell(
        self, window: AccountWindow, state: AccountDetectorState, today: int, *, canceled: bool = False
    ) -> None:
        """Follow the account's silent spell and flagged drop for the population's spell outcomes (counted
        at its next census), when an option reads them (``DetectorConfig.follows_spells``)."""
        cfg = self.config
        if not cfg.follows_spells:
            return
        track_spell(
            self.population.spells,
            state,
            window,
            today,
            sparse_gap_days=cfg.sparse_gap_days,
            horizon_days=cfg.horizon_days,
            inactivity_is_churn=cfg.inactivity_is_churn,
            canceled=canceled,
        )
        track_drop(
            self.population.drops,
            state,
            today,
            horizon_days=cfg.horizon_days,
            inactivity_is_churn=cfg.inactivity_is_churn,
            canceled=canceled,
        )

    # -- flags and reasons ------------------------------------------------------------------------------

    @staticmethod
    def _overdue_since(state: AccountDetectorState, flags: set[str]) -> int | None:
        """While silent or quiet: the day the account's next activity was due (its last one + usual gap)."""
        last_active = state.gaps.last_active_day
        if last_active is None or not flags & {"silent", "quiet"}:
            return None
        gaps = state.gaps
        usual = gaps.mean_gap if gaps.n_gaps >= gaps.min_gaps else 1.0
        return last_active + max(1, round(usual))

    def _flags(
        self, state: AccountDetectorState, features: dict[str, float], scheduled: bool
    ) -> tuple[set[str], int | None]:
        """What the account shows (``warming_up``, ``drop``, ``silent``, ``quiet``, ``payment_failed``,
        ``support``, ``downgrade``, ``episode_open``) and the onset day of its quiet spell or drop."""
        flags: set[str] = set()
        onset: int | None = None
        cfg = self.config
        first = state.first_active_day
        last = state.learned_through
        if first is None or last is None or last - first < cfg.min_history_days:
            flags.add("warming_up")
        last_active = state.gaps.last_active_day
        # A monthly account in its usual quiet weeks (``scheduled``) is neither in a drop nor quiet (for the
        # outage guard).
        if state.drop_since is not None and not scheduled:
            flags.add("drop")
            onset = state.drop_since
        if "silence" in features:
            flags.add("silent")
        if (
            last_active is not None
            and last is not None
            and last > last_active
            and "warming_up" not in flags
            and not scheduled
        ):
            # Quiet: no events at all although the baseline expected plenty (what an outage looks like).
            baseline, until = state.baselines[0], min(last, last_active + 14)
            expected = baseline.expected_total(last_active + 1, until)
            for q in self.population.calendar.quiet_between(last_active + 1, until):
                expected -= baseline.expected(q) * (1.0 - self.population.calendar.ratio(q))
            if expected >= cfg.outage_min_expected:
                flags.add("quiet")
                onset = last_active + 1 if onset is None else min(onset, last_active + 1)
        if "payment_failed" in features:
            flags.add("payment_failed")
        if "ticket_burst" in features or "urgent" in features or "low_csat" in features:
            flags.add("support")
        if "mrr_drop" in features:
            flags.add("downgrade")
        if state.episode is not None:
            flags.add("episode_open")
        return flags, onset

    def _reasons(self, features: dict[str, float], found: Features, *, at_least_one: bool) -> tuple[str, ...]:
        cfg = self.config
        return explain(
            self.risk_model.contributions(features),
            features,
            found.evidence,
            min_logodds=cfg.reason_min_logodds,
            max_reasons=cfg.max_reasons,
            at_least_one=at_least_one,
        )


def _weighed(features: dict[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """``features`` times their ``weights`` (a feature weighted to 0 is left out)."""
    out = {name: round(value * weights.get(name, 1.0), 4) for name, value in features.items()}
    return {name: value for name, value in out.items() if value > 0}


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
