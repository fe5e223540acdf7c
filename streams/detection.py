"""Live detection: sweep the accounts a worker owns through the detectors, as replay does on history.

A sweep evaluates every account that has usage on a clock (``now_ms``): the wall clock in live mode, the
event-time watermark when ``evaluation_clock="event"`` (demos and replay-equivalence tests). It returns the
alerts to write to the outbox, the accounts whose state changed, and refreshes the at-risk view behind the
API and the gauges. Detector work is per account per sweep and idempotent within a day, never per event.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor, Assessment, OutageGuard
from detectors.risk import RiskModel
from detectors.windows import DAY_MS
from streams.ingest import AccountState

OTHER_PLAN = "other"
# A gap in the events is swept day by day, up to this many days (as replay does).
MAX_SWEPT_GAP_DAYS = 62


class EventClock:
    """The event-time clock of a worker: the UTC day every usage partition it reads has reached.

    Each partition's watermark is the day of its newest usage event; the clock is the smallest of them over
    the partitions that delivered usage. A partition read ahead of another (a backlog, a lagging fetch, a
    slower broker) must not sweep days whose usage the other has not delivered yet: its accounts would look
    silent all at once, which is what an ingestion outage looks like. Only usage moves the clock: the sparse
    support and billing topics are read in large chunks that can run days ahead of usage.

    >>> clock = EventClock()
    >>> list(clock.advance(0, 10 * DAY_MS)), list(clock.advance(1, 10 * DAY_MS))
    ([], [])
    >>> list(clock.advance(0, 13 * DAY_MS))  # partition 1 is still on day 10: nothing is complete yet
    []
    >>> [midnight // DAY_MS for midnight in clock.advance(1, 12 * DAY_MS + 5)]
    [11, 12]
    """

    __slots__ = ("day", "partition_days")

    def __init__(self) -> None:
        self.day: int | None = None
        self.partition_days: dict[int, int] = {}

    def advance(self, partition: int, ts_ms: int) -> list[int]:
        """Take one usage event; returns the midnights (epoch ms) the clock crossed, oldest first."""
        day = ts_ms // DAY_MS
        known = self.partition_days.get(partition)
        if known is not None and day <= known:
            return []
        self.partition_days[partition] = day
        low = min(self.partition_days.values())
        if self.day is None:
            self.day = low
            return []
        if low <= self.day:
            return []
        crossed = range(max(self.day + 1, low - MAX_SWEPT_GAP_DAYS), low + 1)
        self.day = low
        return [midnight * DAY_MS for midnight in crossed]

    def retain(self, partitions: Iterable[int]) -> None:
        """After a rebalance: forget partitions handed to another worker (they no longer hold the clock)."""
        kept = set(partitions)
        self.partition_days = {p: day for p, day in self.partition_days.items() if p in kept}


@dataclass(frozen=True, slots=True)
class AtRisk:
    """One account in an open risk episode, as the at-risk API shows it."""

    account_id: str
    risk: float
    severity: str
    plan: str | None
    mrr: float | None
    reasons: tuple[str, ...]
    episode_id: str | None
    since_ms: int | None
    partition: int

    @property
    def revenue_at_risk(self) -> float:
        return self.risk * (self.mrr or 0.0)


@dataclass(slots=True)
class SweepOutcome:
    alerts: list[Alert] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)
    assessments: list[Assessment] = field(default_factory=list)
    at_risk: dict[str, AtRisk] = field(default_factory=dict)


class PlanLabels:
    """Plan names as metric label values, capped so a stray plan id cannot explode cardinality."""

    def __init__(self, cap: int = 20) -> None:
        self.cap = cap
        self.known: set[str] = set()

    def __call__(self, plan: str | None) -> str:
        if plan is None:
            return "unknown"
        if plan in self.known:
            return plan
        if len(self.known) < self.cap:
            self.known.add(plan)
            return plan
        return OTHER_PLAN


class LiveDetection:
    """The detectors of one worker: a monitor, its global risk model, the outage guard, the at-risk view."""

    def __init__(self, monitor: AccountMonitor) -> None:
        self.monitor = monitor
        self.guard = OutageGuard(monitor.config)
        self.at_risk: dict[str, AtRisk] = {}

    @property
    def risk_model(self) -> RiskModel:
        return self.monitor.risk_model

    def adopt_risk_model(self, state: dict[str, Any]) -> bool:
        """Take a persisted model when it has learned from more outcomes than the one in memory."""
        stored = RiskModel.from_state(state)
        current = self.risk_model
        if stored.n_positives + stored.n_negatives > current.n_positives + current.n_negatives:
            self.monitor.risk_model = stored
            return True
        return False

    def sweep(
        self, accounts: Iterable[tuple[bytes, AccountState, int]], now_ms: int, clock_ms: int
    ) -> SweepOutcome:
        """Evaluate ``(key, state, partition)`` accounts at ``now_ms``; states are updated in place."""
        outcome = SweepOutcome()
        monitor = self.monitor
        detector_states = {}
        batch = []
        for key, state, partition in accounts:
            window = state.window
            if window.watermarks[0] is None:  # no usage yet: nothing to judge (replay does the same)
                continue
            detector = state.live_detector
            if detector is None:
                detector = (
                    monitor.state_from(state.detector) if state.detector is not None else monitor.new_state()
                )
                state.live_detector = detector
            batch.append((key.decode(), key, state, partition, detector))
        # The population (segment percentiles, BTYD, holidays) first, so every account sees the same one.
        monitor.census([(account_id, s.window, d) for account_id, _, s, _, d in batch], now_ms)
        for account_id, key, state, partition, detector in batch:
            window = state.window
            assessment = monitor.observe(account_id, window, detector, now_ms, clock_ms=clock_ms)
            detector_states[account_id] = (key, state, detector)
            outcome.assessments.append(assessment)
            episode = detector.episode
            # At risk = in an open episode (until it resolves), unless the outage guard muted it. Its severity
            # is that of its current risk (as in alerts), so a listed severity always agrees with the risk.
            if assessment.episode_id is not None and episode is not None and not episode[4]:
                outcome.at_risk[account_id] = AtRisk(
                    account_id=account_id,
                    risk=assessment.risk,
                    severity=monitor.severity_of(assessment.risk).value,
                    plan=assessment.plan,
                    mrr=assessment.mrr,
                    reasons=assessment.reasons,
                    episode_id=assessment.episode_id,
                    since_ms=int(episode[1]) if episode is not None else None,
                    partition=partition,
                )
        decision = self.guard.review(outcome.assessments, now_ms)
        for alert in decision.suppressed:
            monitor.suppress(detector_states[alert.account_id][2], alert)
        outcome.alerts = [*decision.incident_alerts, *decision.alerts]
        for key, state, detector in detector_states.values():
            serialized = detector.to_state()
            if serialized != state.detector:
                state.detector = serialized
                outcome.changed.append(key)
        self.at_risk = outcome.at_risk
        return outcome

    def page(
        self, *, limit: int, offset: int, severity: str | None, partitions: set[int] | None = None
    ) -> tuple[int, list[AtRisk]]:
        """At-risk accounts ranked by revenue at risk (then risk), filtered by severity, paginated.

        ``partitions`` keeps only accounts of partitions this worker still owns (a rebalance may have moved
        some away since the last sweep).
        """
        rows = [
            row
            for row in self.at_risk.values()
            if (severity is None or row.severity == severity)
            and (partitions is None or row.partition in partitions)
        ]
        ranked = heapq.nlargest(offset + limit, rows, key=lambda row: (row.revenue_at_risk, row.risk))
        return len(rows), ranked[offset : offset + limit]
