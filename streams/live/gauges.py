"""The worker's gauges: accounts and revenue at risk after each sweep, the counters exported at 0."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from streams.engine.answers import AnswerOutcome
from streams.engine.detection import Detection
from streams.engine.steps import Steps
from streams.engine.uplift import Tally
from streams.events import DeadLetterReason
from streams.feedback import FeedbackLabel
from streams.live.poison import PoisonReason
from streams.metrics import Metrics

OTHER_PLAN = "other"
T = TypeVar("T")
# A census of the stored rows takes at most about this share of the worker's time (1 / CENSUS_SPACING).
CENSUS_SPACING = 50.0


class Spacing:
    """Whether a recurring pass over every row may run now: no sooner than ``spacing`` times its last
    duration after its last start, so a pass whose cost grows with the accounts (the census: ~0.25 s at 1 M
    accounts, 5 % of a worker's CPU every 5 s in docs/performance.md) takes a bounded share of the worker's
    time; a quick one runs at every tick of its timer. Only the pass's own steps are timed
    (:meth:`measured`), not what the event loop runs between them.

    >>> from streams.engine.steps import drain
    >>> now = [0.0]
    >>> spacing = Spacing(spacing=200.0, clock=lambda: now[0])
    >>> def census():  # two steps of 5 ms each
    ...     now[0] += 0.005
    ...     yield
    ...     now[0] += 0.005
    ...     return 42
    >>> spacing.due()
    True
    >>> steps = spacing.measured(census())
    >>> next(steps)  # its first step; then the event loop runs other work for a second
    >>> now[0] += 1.0
    >>> drain(steps)
    42
    >>> spacing.due()  # it took 10 ms of its own: due again 2 s after it started
    False
    >>> now[0] = 2.0; spacing.due()
    True
    """

    __slots__ = ("clock", "next_at", "spacing")

    def __init__(
        self, *, spacing: float = CENSUS_SPACING, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.spacing = spacing
        self.clock = clock
        self.next_at = -float("inf")

    def due(self) -> bool:
        return self.clock() >= self.next_at

    def measured(self, steps: Steps[T]) -> Steps[T]:
        """``steps`` unchanged, timed: when they end, the next pass is due ``spacing`` times their own
        time after they started."""
        started = self.clock()
        took = 0.0
        while True:
            begun = self.clock()
            try:
                step = next(steps)
            except StopIteration as done:
                self.next_at = started + self.spacing * (took + self.clock() - begun)
                return done.value
            took += self.clock() - begun
            yield step


class PlanLabels:
    """Plan names as metric label values, capped so a stray plan id cannot explode cardinality.

    >>> labels = PlanLabels(cap=1)
    >>> labels("pro"), labels("pro"), labels("enterprise"), labels(None)
    ('pro', 'pro', 'other', 'unknown')
    """

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


def zero_counters(metrics: Metrics, event_types: Iterable[str]) -> None:
    """Export known label sets at 0 from the start: rate() cannot see a series' first increment."""
    roles = list(event_types)
    for event_type in roles:
        metrics.events_consumed.labels(topic=event_type, outcome="ok")
    for reason in DeadLetterReason:
        metrics.deadletters.labels(reason=reason.value)
    for poison_reason, role in itertools.product(PoisonReason, [*roles, "alerts"]):
        metrics.undecodable_skipped.labels(reason=poison_reason.value, topic=role)
    for reader in ("events", "outbox"):
        metrics.reader_rebuilds.labels(reader=reader)
    for scope in ("all", "changed"):
        metrics.accounts_swept.labels(scope=scope)
    for label, outcome in itertools.product(FeedbackLabel, AnswerOutcome):
        metrics.answers_folded.labels(label=label.value, outcome=outcome.value)


def holdout_gauges(metrics: Metrics, tally: Tally) -> None:
    """Settled alerted accounts and churners per holdout group, pending ones (streams/engine/uplift.py)."""
    for group, settled, churned in (
        ("delivered", tally.delivered, tally.delivered_churned),
        ("held_out", tally.held_out, tally.held_out_churned),
    ):
        metrics.holdout_settled_accounts.labels(group=group).set(settled)
        metrics.holdout_churned_accounts.labels(group=group).set(churned)
    metrics.holdout_pending_accounts.set(tally.pending)


class RiskGauges:
    """Accounts and revenue at risk per severity and plan, and the opt-in top-N accounts, after a sweep."""

    def __init__(self, metrics: Metrics, detection: Callable[[], Detection], top_accounts: int) -> None:
        self.metrics = metrics
        self.detection = detection
        self.top_accounts = top_accounts
        self.plan_label = PlanLabels()

    def update(self) -> None:
        metrics = self.metrics
        detection = self.detection()
        metrics.accounts_at_risk.clear()
        metrics.revenue_at_risk.clear()
        for row in detection.at_risk.values():
            plan = self.plan_label(row.plan)
            metrics.accounts_at_risk.labels(severity=row.severity, plan=plan).inc()
            metrics.revenue_at_risk.labels(plan=plan).inc(row.revenue_at_risk)
        cap = self.top_accounts
        if cap:
            metrics.top_account_risk.clear()
            total, top = detection.page(limit=cap, offset=0, severity=None)
            for row in top:
                metrics.top_account_risk.labels(
                    account_id=row.account_id, plan=self.plan_label(row.plan), severity=row.severity
                ).set(row.risk)
            metrics.top_accounts_truncated.set(1 if total > cap else 0)
