"""Account monitoring: baselines, drops, silence, risk, explanations and alert episodes in one call.

:class:`AccountMonitor` is what the stream processors (Faust agents, offline replay) call. It owns no
per-account data: each account's detector state (:class:`AccountDetectorState`, a few hundred bytes of JSON)
lives beside the account's :class:`~detectors.windows.AccountWindow` in the caller's table, and
:meth:`AccountMonitor.observe` updates it in place. The one global piece is the
:class:`~detectors.risk.RiskModel` (``monitor.risk_model``), which learns from outcomes reported by every
account.

Time is event time: ``observe(..., now_ms)`` treats every UTC day before ``day_of(now_ms)`` as complete,
learns the completed days it has not learned yet (tracked in ``state.learned_through``, so a replayed or
repeated call learns nothing twice) and judges silence against ``now_ms``. Callers pass the event-time
watermark after folding events, and the clock (or the watermark, offline) in periodic sweeps so that accounts
that stopped sending events are still evaluated.

:class:`OutageGuard` looks at all assessments of one sweep: when many accounts go quiet or drop at the same
moment it raises one pipeline incident and holds back the account alerts it explains.

Size: ~950 lines, over the ~400 the project aims for. It still holds the per-account feature extraction,
the episode policy and the outcome learning; issue 13 splits it into one feature extractor per signal and an
``Episode`` type. Reasons and the outage guard already moved out (``detectors/reasons.py``, ``outage.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors.alerts import Alert, AlertKind, Severity, Transition
from detectors.baseline import DropDetector, GapTracker, SeasonalBaseline, half_life_alpha
from detectors.engagement import EngagementTracker
from detectors.outage import GuardDecision, OutageGuard
from detectors.population import PopulationModel
from detectors.reasons import SIGNALS, explain
from detectors.risk import FEATURE_INDEX, FEATURES, RiskModel
from detectors.windows import (
    ACTIVE_USERS,
    CSAT_COUNT,
    CSAT_SUM,
    DAY_MS,
    ESCALATED,
    N_COLUMNS,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    TICKETS_HIGH,
    TICKETS_LOW,
    TICKETS_NORMAL,
    TICKETS_URGENT,
    USAGE,
    AccountWindow,
    WindowConfig,
    day_of,
)

__all__ = [
    "SEVERITY_ORDER",
    "AccountDetectorState",
    "AccountMonitor",
    "Assessment",
    "DetectorConfig",
    "GuardDecision",
    "OutageGuard",
    "Outcome",
    "RiskModel",
]

SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
_RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}
# Bucket columns from TICKETS_LOW on are support and billing; most days have none, so they are skipped whole.
_SUPPORT_FROM = TICKETS_LOW
_NO_SUPPORT = [0] * (N_COLUMNS - TICKETS_LOW)


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """Every threshold of detection, risk and the alert policy (defaults tuned on simulator seeds 1-2).

    Parameters
    ----------
    horizon_days
        Risk is the probability of cancelling within this many days; snapshots are labelled after it.
    baseline_half_life_days
        Memory of the seasonal baselines.
    min_history_days
        Days since an account's first activity before its usage baselines are trusted (warm-up).
    drift_threshold, drift_delta, drift_alpha, drift_min_days
        Page-Hinkley parameters on the daily z-scores (threshold in z units).
    z_clip
        Daily z-scores are clipped to this magnitude.
    recover_ratio, recover_days
        A flagged drop is over when the last 7 days' usage is at least ``recover_ratio`` of the baseline on
        ``recover_days`` consecutive days; until then the baseline is frozen.
    max_freeze_days
        A drop that lasts this long becomes the new normal (the baseline is re-levelled).
    min_expected_events
        Drop ratios are only computed when the baseline expects at least this many events in the window.
    drop_pseudo_count
        Added to actual and expected counts of a drop ratio, so small accounts need more evidence.
    sparse_gap_days
        Accounts whose usual gap between active days is at least this are sparse: silence is judged by the
        gap model (:class:`~detectors.baseline.GapTracker`) and drops over windows of two usual gaps; other
        accounts by the per-weekday/weekend chance of a silent day.
    alert_threshold
        Risk at which an episode opens.
    severity_bands
        Risk at which severity becomes medium, high and critical (below the first: low).
    resolve_threshold, resolve_after_days
        An episode resolves after this many consecutive days with risk below ``resolve_threshold``, usage back
        to ``recover_ratio`` of the baseline and no unusual silence.
    cooldown_days
        No new episode for this long after one resolved.
    min_positives, learning_rate, l2
        The global :class:`~detectors.risk.RiskModel`.
    snapshot_every_days
        How often an account's features are kept as a snapshot to label later (positives and negatives).
    reason_min_logodds, max_reasons
        Reasons are features adding at least this much log-odds, at most ``max_reasons`` of them.
    outage_share, outage_min_accounts, outage_onset_days, outage_min_expected
        The outage guard: an incident when at least ``outage_min_accounts`` and ``outage_share`` of monitored
        accounts went quiet or dropped within ``outage_onset_days``; an account counts as quiet when its
        baseline expected at least ``outage_min_expected`` events since its last activity.
    day_close_delay_ms
        A UTC day counts as complete this long after midnight (room for in-flight events in live mode).
    inactivity_is_churn
        Outcome used to train the risk model: a snapshot is positive when the account cancels within the
        horizon, or (when True) shows no activity at all during the horizon. Keep True for data without
        explicit cancellations (purchase histories); with it False only cancellations count.
    """

    horizon_days: int = 30
    baseline_half_life_days: float = 28.0
    min_history_days: int = 14
    drift_threshold: float = 6.0
    drift_delta: float = 0.5
    drift_alpha: float = 0.98
    drift_min_days: int = 7
    z_clip: float = 4.0
    recover_ratio: float = 0.8
    recover_days: int = 5
    max_freeze_days: int = 56
    min_expected_events: float = 5.0
    drop_pseudo_count: float = 5.0
    sparse_gap_days: float = 2.5
    gap_half_life: float = 12.0
    alert_threshold: float = 0.5
    severity_bands: tuple[float, float, float] = (0.45, 0.6, 0.8)
    resolve_threshold: float = 0.15
    resolve_after_days: int = 7
    cooldown_days: int = 14
    min_positives: int = 30
    learning_rate: float = 0.05
    l2: float = 1e-4
    snapshot_every_days: int = 7
    reason_min_logodds: float = 0.4
    max_reasons: int = 4
    outage_share: float = 0.3
    outage_min_accounts: int = 20
    outage_onset_days: int = 4
    outage_min_expected: float = 5.0
    day_close_delay_ms: int = 0
    inactivity_is_churn: bool = True


class AccountDetectorState:
    """One account's detector state: baselines, drift and gap detectors, episode, pending snapshots.

    Plain data with JSON-compatible :meth:`to_state` / :meth:`from_state` (about 300-700 bytes), kept next
    to the account's window. Create it with :meth:`AccountMonitor.new_state`.
    """

    STATE_BUDGET_BYTES = 1_024
    __slots__ = (
        "baselines",
        "canceled_ts_ms",
        "cooldown_until_ms",
        "drifts",
        "drop_depth",
        "drop_signals",
        "drop_since",
        "engagement",
        "episode",
        "first_active_day",
        "gaps",
        "last_snapshot_day",
        "learned_through",
        "pending",
        "recovered_days",
        "ref_mrr",
        "snoozed_until_ms",
        "ticket_days",
        "ticket_rate",
    )

    def __init__(self, config: DetectorConfig) -> None:
        self.baselines = [
            SeasonalBaseline(config.baseline_half_life_days, z_clip=config.z_clip) for _ in SIGNALS
        ]
        self.drifts = [
            DropDetector(
                config.drift_threshold, config.drift_delta, config.drift_alpha, config.drift_min_days
            )
            for _ in SIGNALS
        ]
        self.gaps = GapTracker(config.gap_half_life)
        self.engagement = EngagementTracker()
        self.learned_through: int | None = None
        self.first_active_day: int | None = None
        self.drop_since: int | None = None
        self.drop_signals = 0  # bit i set: SIGNALS[i] drifted down
        self.drop_depth = 0.0  # 1 - usage ratio of the 3 days up to the flag: how abrupt the drop was
        self.recovered_days = 0
        self.ticket_rate = 0.0  # EW tickets per day
        self.ticket_days = 0
        self.ref_mrr: float | None = None  # recent peak MRR, decaying towards the current MRR
        self.canceled_ts_ms: int | None = None
        # Open episode: [episode_id, opened_ts_ms, highest severity rank, healthy days, muted 0/1].
        self.episode: list[Any] | None = None
        self.cooldown_until_ms = 0
        self.snoozed_until_ms = 0
        # Scored snapshots awaiting their outcome: [day, risk, [feature index, value, index, value, ...]].
        self.pending: list[list[Any]] = []
        self.last_snapshot_day: int | None = None

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state (short keys: this is stored once per account)."""
        return {
            "b": [b.to_state() for b in self.baselines],
            "r": [d.to_state() for d in self.drifts],
            "g": self.gaps.to_state(),
            "eg": self.engagement.to_state(),
            "l": self.learned_through,
            "f": self.first_active_day,
            "ds": self.drop_since,
            "dm": self.drop_signals,
            "dd": self.drop_depth,
            "rd": self.recovered_days,
            "t": [self.ticket_rate, self.ticket_days],
            "m": self.ref_mrr,
            "c": self.canceled_ts_ms,
            "e": self.episode,
            "cd": self.cooldown_until_ms,
            "sz": self.snoozed_until_ms,
            "p": self.pending,
            "ps": self.last_snapshot_day,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig | None = None) -> AccountDetectorState:
        """Rebuild from :meth:`to_state` output; ``config`` must be the one the state was made with."""
        cfg = config if config is not None else DetectorConfig()
        self = cls(cfg)
        self.baselines = [
            SeasonalBaseline.from_state(s, half_life_days=cfg.baseline_half_life_days, z_clip=cfg.z_clip)
            for s in state["b"]
        ]
        self.drifts = [
            DropDetector.from_state(
                s,
                threshold=cfg.drift_threshold,
                delta=cfg.drift_delta,
                alpha=cfg.drift_alpha,
                min_instances=cfg.drift_min_days,
            )
            for s in state["r"]
        ]
        self.gaps = GapTracker.from_state(state["g"], half_life_gaps=cfg.gap_half_life)
        if "eg" in state:  # states stored before the engagement tracker start with a fresh one
            self.engagement = EngagementTracker.from_state(state["eg"])
        self.learned_through = state["l"]
        self.first_active_day = state["f"]
        self.drop_since = state["ds"]
        self.drop_signals = state["dm"]
        self.drop_depth = state["dd"]
        self.recovered_days = state["rd"]
        self.ticket_rate, self.ticket_days = state["t"]
        self.ref_mrr = state["m"]
        self.canceled_ts_ms = state["c"]
        self.episode = list(state["e"]) if state["e"] is not None else None
        self.cooldown_until_ms = state["cd"]
        self.snoozed_until_ms = state["sz"]
        self.pending = [list(p) for p in state["p"]]
        self.last_snapshot_day = state["ps"]
        return self


@dataclass(frozen=True, slots=True)
class Outcome:
    """A labelled snapshot: the features and risk an account had on ``day`` and whether it then cancelled."""

    account_id: str
    day: int
    risk: float
    features: dict[str, float]
    label: bool


@dataclass(slots=True, kw_only=True)
class Assessment:
    """What :meth:`AccountMonitor.observe` concluded about one account at ``now_ms``.

    ``alerts`` are the episode transitions to emit (after the :class:`OutageGuard`, if used). ``monitored``
    is False while the account has no trusted baseline yet (warm-up) or has cancelled. ``quiet_since`` is the
    day its next activity was due (last active day + usual gap) while it is silent or quiet (else None).
    ``onset_day`` is the
    first day of the current quiet spell or flagged drop (what the outage guard groups accounts by).
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
    A daily account with a stable weekday/weekend rhythm that then goes silent:

    >>> from detectors.windows import AccountWindow, WindowConfig, DAY_MS
    >>> monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    >>> window, state = AccountWindow(WindowConfig()), monitor.new_state()
    >>> day0 = 20_600
    >>> for day in range(day0, day0 + 40):
    ...     for k in range(20 if (day + 3) % 7 < 5 else 5):
    ...         _ = window.add_usage(day * DAY_MS + 36_000_000 + k, "report_exported", f"u{k % 4}", 1)
    ...     a = monitor.observe("acme", window, state, (day + 1) * DAY_MS)
    >>> a.risk < 0.05, a.alerts
    (True, [])
    >>> for day in range(day0 + 41, day0 + 60):  # nothing arrives any more; sweeps keep evaluating
    ...     a = monitor.observe("acme", window, state, day * DAY_MS)
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
                min_positives=config.min_positives, learning_rate=config.learning_rate, l2=config.l2
            )
        )
        self.population = PopulationModel(
            config.min_history_days, config.sparse_gap_days, horizon_days=config.horizon_days
        )
        self._unlearned: list[Outcome] = []  # labelled, learned by the next learn_pending()
        self._unlearned_day: int | None = None
        self._ticket_alpha = half_life_alpha(56.0)
        self._mrr_decay = 0.5 ** (1.0 / 60.0)

    def clone(self) -> AccountMonitor:
        """A fresh monitor with the same configuration and an untrained risk model of the same parameters."""
        return AccountMonitor(self.config, self.window_config, self.risk_model.clone())

    def new_state(self) -> AccountDetectorState:
        return AccountDetectorState(self.config)

    def census(
        self, accounts: Iterable[tuple[str, AccountWindow, AccountDetectorState]], now_ms: int
    ) -> None:
        """Update the worker-wide :class:`~detectors.population.PopulationModel` from a sweep's accounts.

        Call it with every account of a sweep *before* observing them (once per day is enough; later calls
        the same day do nothing). Without it, level, BTYD and calendar features are simply absent. It first
        learns the outcomes labelled since the last one (:meth:`learn_pending`), so the whole sweep is scored
        by one model.
        """
        self.learn_pending()
        self.population.census(accounts, day_of(now_ms - self.config.day_close_delay_ms))

    def state_from(self, state: dict[str, Any]) -> AccountDetectorState:
        """Rebuild a state saved with ``to_state()`` under this monitor's config."""
        return AccountDetectorState.from_state(state, self.config)

    # -- public operations --------------------------------------------------------------------------------

    def snooze(self, state: AccountDetectorState, until_ms: int) -> None:
        """Emit no alerts for this account until ``until_ms`` (its episode is still tracked)."""
        state.snoozed_until_ms = max(state.snoozed_until_ms, until_ms)

    def suppress(self, state: AccountDetectorState, alert: Alert) -> None:
        """Record that ``alert`` was held back by the outage guard: an episode it opened stays muted."""
        episode = state.episode
        if alert.transition is Transition.OPENED and episode is not None and episode[0] == alert.episode_id:
            episode[4] = 1

    def severity_of(self, risk: float) -> Severity:
        bands = self.config.severity_bands
        if risk >= bands[2]:
            return Severity.CRITICAL
        if risk >= bands[1]:
            return Severity.HIGH
        if risk >= bands[0]:
            return Severity.MEDIUM
        return Severity.LOW

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
        cfg = self.config
        today = day_of(now_ms - cfg.day_close_delay_ms)
        if self._unlearned_day is None or today > self._unlearned_day:
            self.learn_pending()  # a new day: what was labelled before it is learned now
            self._unlearned_day = today
        outcomes: list[Outcome] = []
        # A cancellation counts once the clock reaches it: a backfill can read billing days ahead of usage.
        if window.canceled_ts_ms is not None and window.canceled_ts_ms <= now_ms:
            return self._canceled(account_id, window, state, now_ms, outcomes)
        if state.canceled_ts_ms is not None:  # re-subscribed: start over with the labels
            state.canceled_ts_ms = None
        new_days = self._learn_days(window, state, today - 1)
        self._track_mrr(window, state, new_days)
        features, context = self._features(window, state, today)
        observed = features  # what the risk model learns from: the account as it is, not as answers weigh it
        if feature_weights:
            features = _weighed(features, feature_weights)
        risk = self.risk_model.predict_proba_one(features)
        self._label_and_snapshot(account_id, state, today, risk, observed, outcomes)
        flags, onset_day = self._flags(state, features, context)
        monitored = "warming_up" not in flags
        severity = self.severity_of(risk) if risk >= cfg.alert_threshold else None
        reasons: tuple[str, ...] = ()
        # Every alerted or listed (open episode) account carries at least one reason.
        listed = risk >= cfg.alert_threshold or state.episode is not None
        if risk >= cfg.resolve_threshold or listed:
            reasons = self._reasons(features, context, at_least_one=listed)
        alerts = self._episode_step(
            account_id,
            window,
            state,
            now_ms,
            clock_ms if clock_ms is not None else now_ms,
            risk,
            reasons,
            features,
            new_days,
        )
        return Assessment(
            account_id=account_id,
            now_ms=now_ms,
            risk=risk,
            severity=severity,
            reasons=reasons,
            flags=frozenset(flags),
            features=features,
            monitored=monitored,
            onset_day=onset_day,
            quiet_since=self._overdue_since(state, flags),
            episode_id=state.episode[0] if state.episode is not None else None,
            plan=window.plan,
            mrr=window.mrr,
            alerts=alerts,
            outcomes=outcomes,
        )

    # -- learning ---------------------------------------------------------------------------------------

    def _learn_days(self, window: AccountWindow, state: AccountDetectorState, last_day: int) -> int:
        """Learn the completed days ``learned_through + 1 .. last_day``; returns how many were new."""
        start = state.learned_through + 1 if state.learned_through is not None else None
        if start is None:
            if not window.days:
                return 0
            start = min(window.days)
        if start > last_day:
            return 0
        # Days beyond the window's retention are gone; they were empty or the account would have been seen.
        start = max(start, last_day - self.window_config.retention_days + 1)
        new_days = last_day - start + 1
        cfg = self.config
        days = window.days
        calendar = self.population.calendar
        for day in range(start, last_day + 1):
            bucket = days.get(day)
            usage = bucket[USAGE] if bucket is not None else 0
            if state.first_active_day is None:
                if usage == 0:
                    continue
                state.first_active_day = day
            if usage > 0:
                state.gaps.learn_one(day)
            tickets = (
                bucket[TICKETS_LOW] + bucket[TICKETS_NORMAL] + bucket[TICKETS_HIGH] + bucket[TICKETS_URGENT]
                if bucket is not None
                else 0
            )
            state.ticket_days += 1
            alpha = max(self._ticket_alpha, 1.0 / state.ticket_days)
            state.ticket_rate = round(state.ticket_rate + alpha * (tickets - state.ticket_rate), 5)
            if bucket is None:
                values = (0.0, 0.0, 0.0)
            else:
                key = window.key_events(day)
                values = (float(usage), float(bucket[ACTIVE_USERS]), float(key))
            state.engagement.learn_one(values[0], values[1])
            # A day the whole population was quiet (a holiday) says nothing about this account's normal.
            if not calendar.is_quiet(day):
                self._learn_signals(window, state, day, values, cfg)
        state.learned_through = last_day
        return new_days

    def _learn_signals(
        self,
        window: AccountWindow,
        state: AccountDetectorState,
        day: int,
        values: tuple[float, float, float],
        cfg: DetectorConfig,
    ) -> None:
        assert state.first_active_day is not None
        warm = day - state.first_active_day >= cfg.min_history_days
        if state.drop_since is None:
            flagged = 0
            if warm:
                for i, baseline in enumerate(state.baselines):
                    # Signals too small to have a level (an account without user ids) are not tested.
                    if baseline.slots[0][1] < 1.0:
                        continue
                    if state.drifts[i].update(baseline.score_one(day, values[i])):
                        flagged |= 1 << i
            if flagged:
                state.drop_since = day
                state.drop_signals = flagged
                state.recovered_days = 0
                ratio = self._recent_ratio(window, state.baselines[0], USAGE, day, 3)
                state.drop_depth = round(max(0.0, min(1.0, 1.0 - ratio)), 4)
            else:
                for baseline, value in zip(state.baselines, values, strict=True):
                    baseline.learn_one(day, value)
            return
        # A drop is flagged: the baseline is frozen so the decline does not become the new normal.
        ratio = self._recent_ratio(window, state.baselines[0], USAGE, day, 7)
        state.recovered_days = state.recovered_days + 1 if ratio >= cfg.recover_ratio else 0
        if state.recovered_days >= cfg.recover_days:
            self._clear_drop(state)
        elif day - state.drop_since >= cfg.max_freeze_days:
            for baseline in state.baselines:
                baseline.rescale(max(ratio, 0.05))
            self._clear_drop(state)

    @staticmethod
    def _clear_drop(state: AccountDetectorState) -> None:
        state.drop_since = None
        state.drop_signals = 0
        state.drop_depth = 0.0
        state.recovered_days = 0
        for detector in state.drifts:
            detector.reset()

    @staticmethod
    def _recent_ratio(
        window: AccountWindow, baseline: SeasonalBaseline, column: int, last_day: int, length: int
    ) -> float:
        days = window.days
        actual = 0
        for day in range(last_day - length + 1, last_day + 1):
            bucket = days.get(day)
            if bucket is not None:
                actual += bucket[column]
        expected = baseline.expected_total(last_day - length + 1, last_day)
        return actual / expected if expected > 0 else 1.0

    def _track_mrr(self, window: AccountWindow, state: AccountDetectorState, new_days: int) -> None:
        mrr = window.mrr
        if mrr is None:
            return
        if state.ref_mrr is None or mrr >= state.ref_mrr:
            state.ref_mrr = mrr
        elif new_days:
            state.ref_mrr = round(mrr + (state.ref_mrr - mrr) * self._mrr_decay**new_days, 2)

    # -- features and reasons ---------------------------------------------------------------------------

    def _features(
        self, window: AccountWindow, state: AccountDetectorState, today: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Risk features (only the non-zero ones) and the numbers behind them, for explanations.

        One pass over the window's (at most ``retention_days``) buckets collects every sum; expected sums
        come from the baselines in O(1). This runs once per account-day in sweeps, so it is kept lean.
        """
        cfg = self.config
        features: dict[str, float] = {}
        context: dict[str, Any] = {}
        last = today - 1
        days = window.days
        first = state.first_active_day
        warm = first is not None and last - first >= cfg.min_history_days
        gaps = state.gaps
        mean_gap = gaps.mean_gap if gaps.n_gaps >= gaps.min_gaps else 1.0
        sparse = mean_gap >= cfg.sparse_gap_days
        # Compare whole weeks, and at least two usual gaps, so a sparse account's quiet weeks are normal.
        length = (
            min(self.window_config.retention_days, 7 * math.ceil(2.0 * (mean_gap + gaps.spread()) / 7.0))
            if sparse
            else 7
        )
        signal_from = last - length + 1
        calendar = self.population.calendar
        quiet = calendar.quiet_between(signal_from, last)
        actual = [0, 0, 0]
        recent = old = 0
        tickets = urgent = escalated = csat_count = csat_sum = failed = 0
        success_day = -1
        failure_days: list[int] = []
        signal_age = today - signal_from  # ages (days before today) inside the signal window: 1..signal_age
        for day, bucket in days.items():
            age = today - day
            if age <= 0:
                # Today (still open): only its support and billing events count already.
                if age == 0 and bucket[_SUPPORT_FROM:] != _NO_SUPPORT:
                    tickets += bucket[TICKETS_LOW] + bucket[TICKETS_NORMAL] + bucket[TICKETS_HIGH]
                    tickets += bucket[TICKETS_URGENT]
                    urgent += bucket[TICKETS_HIGH] + bucket[TICKETS_URGENT]
                    escalated += bucket[ESCALATED]
                    csat_sum += bucket[CSAT_SUM]
                    csat_count += bucket[CSAT_COUNT]
                    if bucket[PAYMENT_FAILED]:
                        failed += bucket[PAYMENT_FAILED]
                        failure_days.append(day)
                    if bucket[PAYMENT_SUCCEEDED]:
                        success_day = max(success_day, day)
                continue
            usage = bucket[USAGE]
            if age <= 14:
                recent += usage
            elif 29 <= age <= 56:
                old += usage
            if warm and age <= signal_age:
                actual[0] += usage
                actual[1] += bucket[ACTIVE_USERS]
                actual[2] += window.key_events(day)
            if age < 30 and bucket[_SUPPORT_FROM:] != _NO_SUPPORT:
                csat_sum += bucket[CSAT_SUM]
                csat_count += bucket[CSAT_COUNT]
                if bucket[PAYMENT_FAILED]:
                    failed += bucket[PAYMENT_FAILED]
                    failure_days.append(day)
                if bucket[PAYMENT_SUCCEEDED] and day > success_day:
                    success_day = day
                if age < 14:
                    tickets += bucket[TICKETS_LOW] + bucket[TICKETS_NORMAL] + bucket[TICKETS_HIGH]
                    tickets += bucket[TICKETS_URGENT]
                    urgent += bucket[TICKETS_HIGH] + bucket[TICKETS_URGENT]
                    escalated += bucket[ESCALATED]
        if warm:
            assert first is not None
            context["length"] = length
            pseudo = cfg.drop_pseudo_count
            for i, name in enumerate(("usage_drop", "users_drop", "key_drop")):
                baseline = state.baselines[i]
                expected = baseline.expected_total(signal_from, last)
                for q in quiet:  # holidays: expect what the population managed those days
                    expected -= baseline.expected(q) * (1.0 - calendar.ratio(q))
                if expected >= cfg.min_expected_events and actual[i] < expected:
                    # The pseudo-count shrinks ratios of small counts: 2 of 5 events is weak evidence.
                    features[name] = round(1.0 - (actual[i] + pseudo) / (expected + pseudo), 4)
                    context[name] = (actual[i] / length, expected / length)
            if state.drop_since is not None:
                features["drop_weeks"] = round(min(8.0, (today - state.drop_since) / 7.0), 4)
                context["drop_weeks"] = state.drop_since
                if state.drop_depth:
                    features["abrupt"] = state.drop_depth
            if not sparse and last - first >= 55 and old >= 28:
                # +1/day shrinks small accounts' ratios; declines under 25% are ordinary seat churn.
                ratio = (recent / 14 + 1.0) / (old / 28 + 1.0)
                if ratio < 0.75:
                    features["decline"] = round((0.75 - ratio) / 0.75, 4)
                    context["decline"] = (recent / 14, old / 28, 1.0 - recent * 2 / old)
            silent_days = gaps.silent_days(today)
            if silent_days:
                silent_from = last - min(silent_days, 56) + 1
                holidays = calendar.quiet_between(silent_from, last)  # silent holidays are no news
                if sparse:
                    # Regular sparse rhythm: Gaussian tail of the gap excess beyond one spread, in nats.
                    z = max(0.0, gaps.score_one(today - len(holidays)) - 1.0)
                    surprise = 0.5 * z * z
                else:
                    baseline = state.baselines[0]
                    surprise = baseline.silence_surprise(silent_from, last)
                    surprise -= sum(baseline.silent_day_cost(q) for q in holidays)
                silence = round(min(10.0, surprise / 2.0), 4)
                if silence > 0:
                    features["silence"] = silence
            context["silent_days"] = silent_days
            context["mean_gap"] = mean_gap
        # Support and billing: the last 14 / 30 days including today's events so far.
        expected_tickets = 14.0 * state.ticket_rate
        excess = tickets - 2.0 * expected_tickets - 1.0
        if excess > 0:
            features["ticket_burst"] = round(math.log1p(excess), 4)
        if urgent + escalated:
            features["urgent"] = float(min(8, urgent + escalated))
        context["tickets"] = (tickets, expected_tickets, urgent, escalated)
        if csat_count:
            mean_csat = csat_sum / csat_count
            if mean_csat < 3.5:
                features["low_csat"] = round((3.5 - mean_csat) * min(csat_count, 3) / 3.0, 4)
            context["csat"] = (mean_csat, csat_count)
        if failed:
            features["payment_failed"] = float(min(4, failed))
            last_failure = max(failure_days)
            context["payments"] = (failed, last_failure, success_day if success_day >= 0 else None)
            open_failures = [d for d in failure_days if d > success_day]
            if open_failures:
                first_open = min(open_failures)
                features["payment_unresolved"] = round(min(2.0, (today - first_open) / 7.0), 4)
                context["unresolved_since"] = first_open
        mrr = window.mrr
        if mrr is not None and state.ref_mrr and mrr < state.ref_mrr:
            features["mrr_drop"] = round(1.0 - mrr / state.ref_mrr, 4)
            context["mrr"] = (state.ref_mrr, mrr)
        # Irregular accounts are judged by the BTYD model: too new, no rhythm yet (fewer than 3 active days),
        # or sparse with irregular gaps (spread above half the mean gap). Daily and regular sparse accounts
        # are judged by the silence of their own rhythm (counting both would count one silence twice).
        rhythm = gaps.n_gaps >= gaps.min_gaps
        regular = rhythm and math.sqrt(gaps.var_gap) <= 0.5 * gaps.mean_gap
        irregular = not warm or not rhythm or (sparse and not regular)
        self.population.features(window, state, today, features, context, irregular=irregular)
        return features, context

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
        self, state: AccountDetectorState, features: dict[str, float], context: dict[str, Any]
    ) -> tuple[set[str], int | None]:
        flags: set[str] = set()
        onset: int | None = None
        cfg = self.config
        first = state.first_active_day
        last = state.learned_through
        if first is None or last is None or last - first < cfg.min_history_days:
            flags.add("warming_up")
        if state.drop_since is not None:
            flags.add("drop")
            onset = state.drop_since
        if "silence" in features:
            flags.add("silent")
        last_active = state.gaps.last_active_day
        if last_active is not None and last is not None and last > last_active and "warming_up" not in flags:
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

    def _reasons(
        self, features: dict[str, float], context: dict[str, Any], *, at_least_one: bool
    ) -> tuple[str, ...]:
        cfg = self.config
        return explain(
            self.risk_model.contributions(features),
            features,
            context,
            min_logodds=cfg.reason_min_logodds,
            max_reasons=cfg.max_reasons,
            at_least_one=at_least_one,
        )

    # -- outcomes ---------------------------------------------------------------------------------------

    def _label_and_snapshot(
        self,
        account_id: str,
        state: AccountDetectorState,
        today: int,
        risk: float,
        features: dict[str, float],
        outcomes: list[Outcome],
    ) -> None:
        cfg = self.config
        horizon = cfg.horizon_days
        last_active = state.gaps.last_active_day
        while state.pending and today - state.pending[0][0] >= horizon:
            # Survived the horizon after the snapshot: a negative, unless it did nothing at all since (when
            # inactivity counts as churn: data without explicit cancellations).
            snapshot = state.pending.pop(0)
            inactive = last_active is None or last_active < snapshot[0]
            self._learn_outcome(account_id, snapshot, cfg.inactivity_is_churn and inactive, outcomes)
        first = state.first_active_day
        last = state.learned_through
        if first is None or last is None or last - first < cfg.min_history_days:
            return
        if state.last_snapshot_day is None or today - state.last_snapshot_day >= cfg.snapshot_every_days:
            # Flat [index, value, ...] at 2 decimals (values under 0.005 left out): up to five of these are
            # stored per account, and learning needs no finer grain.
            flat: list[float] = []
            for k, v in features.items():
                if v >= 0.005:
                    flat += (FEATURE_INDEX[k], round(v, 2))
            state.pending.append([today, round(risk, 4), flat])
            state.last_snapshot_day = today

    def _learn_outcome(
        self, account_id: str, snapshot: list[Any], label: bool, outcomes: list[Outcome]
    ) -> None:
        day, risk, flat = snapshot
        if flat and isinstance(flat[0], list):  # stored before snapshots were flat: [[index, value], ...]
            features = {FEATURES[i]: v for i, v in flat}
        else:
            features = {FEATURES[int(flat[i])]: flat[i + 1] for i in range(0, len(flat), 2)}
        outcome = Outcome(account_id, day, risk, features, label)
        self._unlearned.append(outcome)
        outcomes.append(outcome)

    def learn_pending(self) -> int:
        """Learn the outcomes labelled since the last call into the risk model; returns how many.

        Outcomes are not learned the moment they are labelled: the model stays the same for a whole day,
        so every account of a sweep is scored by the same model (learning during a sweep made the accounts
        scored late incomparable with those scored early: with mostly-positive labels, as on purchase data,
        the intercept climbed within each sweep). :meth:`census` calls this first; so does the first
        :meth:`observe` of a later day, for callers that take no census.
        """
        pending, self._unlearned = self._unlearned, []
        for outcome in pending:
            self.risk_model.learn_one(outcome.features, outcome.label)
        return len(pending)

    def _canceled(
        self,
        account_id: str,
        window: AccountWindow,
        state: AccountDetectorState,
        now_ms: int,
        outcomes: list[Outcome],
    ) -> Assessment:
        canceled = window.canceled_ts_ms
        assert canceled is not None
        if state.canceled_ts_ms != canceled:
            state.canceled_ts_ms = canceled
            horizon_ms = self.config.horizon_days * DAY_MS
            for snapshot in state.pending:
                if 0 <= canceled - snapshot[0] * DAY_MS <= horizon_ms:
                    self._learn_outcome(account_id, snapshot, True, outcomes)
            state.pending = []
            # The account is gone: its episode ends with the subscription (no alert; the cancel is the news).
            state.episode = None
        return Assessment(
            account_id=account_id,
            now_ms=now_ms,
            risk=1.0,
            severity=None,
            reasons=(f"subscription canceled at {_rfc3339(canceled)}",),
            flags=frozenset({"canceled"}),
            plan=window.plan,
            mrr=window.mrr,
            outcomes=outcomes,
        )

    # -- episodes ---------------------------------------------------------------------------------------

    def _episode_step(
        self,
        account_id: str,
        window: AccountWindow,
        state: AccountDetectorState,
        now_ms: int,
        clock_ms: int,
        risk: float,
        reasons: tuple[str, ...],
        features: dict[str, float],
        new_days: int,
    ) -> list[Alert]:
        cfg = self.config
        snoozed = now_ms < state.snoozed_until_ms
        episode = state.episode

        def alert(transition: Transition, severity: Severity) -> Alert:
            assert state.episode is not None
            return Alert(
                kind=AlertKind.ACCOUNT_RISK,
                account_id=account_id,
                episode_id=state.episode[0],
                transition=transition,
                severity=severity,
                risk=round(risk, 4),
                reasons=reasons,
                plan=window.plan,
                mrr=window.mrr,
                event_ts_ms=now_ms,
                detected_ts_ms=clock_ms,
            )

        if episode is None:
            if risk < cfg.alert_threshold or now_ms < state.cooldown_until_ms:
                return []
            severity = self.severity_of(risk)
            # Muted from the start when snoozed: a snooze covers the whole episode it hides.
            state.episode = [f"{account_id}:{now_ms}", now_ms, _RANK[severity], 0, int(snoozed)]
            return [] if snoozed else [alert(Transition.OPENED, severity)]
        alerts: list[Alert] = []
        muted = snoozed or bool(episode[4])
        severity = self.severity_of(risk)
        if risk >= cfg.alert_threshold and _RANK[severity] > episode[2]:
            episode[2] = _RANK[severity]
            if not muted:
                alerts.append(alert(Transition.ESCALATED, severity))
        if new_days:
            healthy = (
                risk < cfg.resolve_threshold
                and features.get("usage_drop", 0.0) <= 1.0 - cfg.recover_ratio
                and "silence" not in features
            )
            episode[3] = episode[3] + new_days if healthy else 0
            if episode[3] >= cfg.resolve_after_days:
                if not muted:
                    alerts.append(alert(Transition.RESOLVED, Severity.LOW))
                state.episode = None
                state.cooldown_until_ms = now_ms + cfg.cooldown_days * DAY_MS
        return alerts


def _weighed(features: dict[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """``features`` times their ``weights`` (a feature weighted to 0 is left out)."""
    out = {name: round(value * weights.get(name, 1.0), 4) for name, value in features.items()}
    return {name: value for name, value in out.items() if value > 0}


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
