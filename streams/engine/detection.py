"""Sweeps: evaluate the accounts an engine owns through the detectors at one clock, as live and replay do.

A sweep evaluates every account that has usage (and is not an already-assessed cancellation) at ``now_ms``:
the wall clock in live mode, a UTC midnight of the event-time clock otherwise. It returns the alerts to
write, the accounts whose stored detector state changed, and refreshes the at-risk view behind the API and
the gauges. Detector work is per account per sweep and idempotent within a day, never per event.

Size: ~430 lines: a sweep's phases (prepare, census, observe, the guard's review, settle) share the batch's
shape and whether detector states are kept decoded between sweeps, and the lock-step replay runs them one at a
time in shards; they stay in one place.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from detectors.alerts import Alert
from detectors.answer_segments import SegmentAnswers, merged
from detectors.answers import AnswerPolicy
from detectors.census import CensusInputs
from detectors.monitor import (
    AccountDetectorState,
    AccountMonitor,
    Assessment,
    GuardDecision,
    OutageGuard,
    Outcome,
)
from detectors.population import CensusRecord
from detectors.risk import RiskModel
from detectors.windows import AccountWindow
from streams.engine.answers import remembering_alerts
from streams.engine.state import AccountState, decode_detector, detector_json, encode_detector
from streams.engine.steps import Steps, drain
from streams.engine.stored_census import stored_census_inputs


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
    """One sweep: alerts to write (after the outage guard), what it held back, what changed."""

    now_ms: int = 0
    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)
    assessments: list[Assessment] = field(default_factory=list)
    at_risk: dict[str, AtRisk] = field(default_factory=dict)


# Accounts whose census records are read between two steps of a sweep (~15 µs each).
CENSUS_CHUNK = 256

# One account of a sweep: (account id, key, state, partition, decoded detector state), the last None when
# detector states are not kept decoded (``Detection(keep_decoded=False)``): each phase decodes it as it reads.
Swept = tuple[str, bytes, AccountState, int, AccountDetectorState | None]


@dataclass(slots=True)
class Observed:
    """A sweep's accounts once observed, before the outage guard's review (:meth:`Detection.settle`)."""

    batch: list[Swept]
    outcome: SweepOutcome
    weighed: dict[str, dict[str, float]] = field(default_factory=dict)  # the feature weights answers set
    # Detector states stored as observed, by account, where the batch holds none decoded (keep_decoded off).
    stored: dict[str, bytes] = field(default_factory=dict)


def census_view(
    batch: list[Swept], stored: Callable[[bytes | None], CensusInputs]
) -> Iterator[tuple[str, AccountWindow, CensusInputs]]:
    """What the census reads of a sweep's accounts, one at a time: the few numbers of each detector state,
    of the decoded state the batch holds, else read by ``stored`` from the stored form (nothing decoded)."""
    for account_id, _, state, _, detector in batch:
        inputs = CensusInputs.of(detector) if detector is not None else stored(state.detector)
        yield account_id, state.window, inputs


def due_accounts(
    states: Iterable[tuple[bytes, AccountState | None]], now_ms: int, everyone: bool = False
) -> list[tuple[bytes, AccountState, int]]:
    """``(key, state, partition)`` of the accounts a sweep at ``now_ms`` evaluates, in key order."""
    return drain(due_accounts_steps(states, now_ms, everyone))


def due_accounts_steps(
    states: Iterable[tuple[bytes, AccountState | None]], now_ms: int, everyone: bool = False
) -> Steps[list[tuple[bytes, AccountState, int]]]:
    """:func:`due_accounts` in steps: it yields after each account looked at (keys are unique)."""
    chosen: list[tuple[bytes, AccountState, int]] = []
    for key, state in states:
        if state is not None and (everyone or due(state, now_ms)):
            chosen.append((key, state, state.partition))
        yield
    chosen.sort(key=itemgetter(0))
    return chosen


def due(state: AccountState, now_ms: int) -> bool:
    """Whether a sweep at ``now_ms`` evaluates the account: it had usage before ``now_ms``, and is not a
    cancellation already assessed.

    Usage folded with a later event time (a partition read ahead of the clock) does not count yet: replay
    of a time-sorted file would not have folded it. An account observed before had usage before.
    """
    usage_mark = state.window.watermarks[0]
    if usage_mark is None:
        return False  # no usage yet: nothing to judge
    if usage_mark >= now_ms and state.detector is None and not state.window.used_before(now_ms):
        return False
    detector = state.live_detector
    canceled = detector.canceled_ts_ms if detector is not None else state.assessed_cancel_ms
    return canceled is None or canceled != state.window.canceled_ts_ms


class Detection:
    """The detectors of one engine: a monitor, its global risk model, the outage guard, the at-risk view,
    and what answers taught about each plan (:class:`~detectors.answer_segments.SegmentAnswers`).

    The risk model learns here, not while the monitor observes: the outcomes a sweep labels are learned at
    the start of the next sweep (before its census), so every account of a sweep is scored by the same
    model (with ``learn_at_horizon``, a positive waits until its snapshot's horizon has closed). Outcomes
    labelled but not yet learned are saved with the model (``streams/engine/saved.py``), so a restart
    between two sweeps learns them as a worker that never stopped would.
    """

    def __init__(
        self, monitor: AccountMonitor, answer_policy: AnswerPolicy | None = None, *, keep_decoded: bool = True
    ) -> None:
        self.monitor = monitor
        self.keep_decoded = keep_decoded
        self.answer_policy = answer_policy if answer_policy is not None else AnswerPolicy()
        self.guard = OutageGuard(monitor.config)
        self.segments = SegmentAnswers()
        self.at_risk: dict[str, AtRisk] = {}
        self.unlearned: list[Outcome] = []  # labelled, learned at the start of a sweep once ripe
        fresh = monitor.new_state()
        self.min_gaps = fresh.gaps.min_gaps  # the gap trackers' (stored_census)
        self.fresh_census = CensusInputs.of(fresh)  # what the census reads of an account never swept

    @property
    def risk_model(self) -> RiskModel:
        return self.monitor.risk_model

    def adopt_learning(self, model: dict[str, Any], unlearned: Iterable[list[Any]]) -> None:
        """Take a persisted model when it has learned from more outcomes than the one in memory, with the
        outcomes its last sweep labelled (learned at the next sweep). Otherwise keep both in memory: a
        restore during a run (a rebalance) must not hand back outcomes this worker already learned."""
        config = self.monitor.config
        # The worker's settings say whether the sgd expert is kept, whatever the saved model had.
        params = dict(model["params"], keeps_sgd=config.sgd_beside_refits, sgd_gate=config.refit_sgd_gate)
        stored = RiskModel.from_state({**model, "params": params})
        current = self.risk_model
        if stored.n_positives + stored.n_negatives > current.n_positives + current.n_negatives:
            stored.use_refits(self.monitor.config.refit_every)  # saved before refits, or at another cadence
            self.monitor.risk_model = stored
            self.unlearned = [Outcome.from_state(item) for item in unlearned]

    def adopt_segments(self, state: dict[str, Any]) -> bool:
        """Take persisted plan lessons when they tally more answers than the ones in memory."""
        stored = SegmentAnswers.from_state(state)
        if stored.judged > self.segments.judged:
            self.segments.tallies = stored.tallies  # in place: the engine's answering holds this object
            return True
        return False

    def feature_weights(
        self, state: AccountState, now_ms: int, by_plan: dict[str | None, dict[str, float]] | None = None
    ) -> dict[str, float] | None:
        """What answers taught about the account: its own (muted, damped kinds) and its plan's.

        ``by_plan`` keeps each plan's weights at ``now_ms`` for the next accounts of a sweep (answers are
        folded between sweeps, not during one)."""
        policy = self.answer_policy
        own = state.answers.weights(now_ms, policy) if state.answers else None
        plan = state.window.plan
        if by_plan is None:
            return merged(own, self.segments.weights(plan, now_ms, policy))
        plan_weights = by_plan.get(plan)
        if plan_weights is None:
            plan_weights = by_plan[plan] = self.segments.weights(plan, now_ms, policy)
        return merged(own, plan_weights)

    def adopt_guard(self, state: dict[str, Any]) -> bool:
        """Take a persisted outage guard when it has reviewed a later day than the one in memory."""
        stored = OutageGuard.from_state(state, self.monitor.config)
        current = self.guard.last_review_day
        if stored.last_review_day is not None and (current is None or stored.last_review_day > current):
            self.guard = stored
            return True
        return False

    def detector_of(self, state: AccountState) -> AccountDetectorState:
        """The account's decoded detector state (decoded once, then kept on the state)."""
        detector = state.live_detector
        if detector is None:
            detector = state.live_detector = self.decoded(state.detector)
        return detector

    def transient(self, state: AccountState) -> AccountDetectorState:
        """The account's decoded detector state, not kept on the state unless it was."""
        detector = state.live_detector
        return detector if detector is not None else self.decoded(state.detector, share=False)

    def decoded(self, stored: bytes | None, *, share: bool = True) -> AccountDetectorState:
        """A detector state of its stored form (a new one for None); ``share=False`` for one decoded briefly
        (``AccountDetectorState.from_state``)."""
        monitor = self.monitor
        if stored is None:
            return monitor.new_state()
        return monitor.state_from(decode_detector(stored), share=share)

    def stored_census(self, stored: bytes | None) -> CensusInputs:
        """What the census reads of a stored detector state (a new one for None), without decoding it."""
        if stored is None:
            return self.fresh_census
        return stored_census_inputs(detector_json(stored), self.min_gaps)

    def release(self, state: AccountState) -> None:
        """After the stored form of ``state``'s detector state was brought up to date: drop the decoded object
        unless ``keep_decoded``, keeping the cancellation it assessed, if any, so :func:`due` can tell."""
        detector = state.live_detector
        if not self.keep_decoded and detector is not None:
            state.assessed_cancel_ms = detector.canceled_ts_ms
            state.live_detector = None

    def sweep(
        self, accounts: Iterable[tuple[bytes, AccountState, int]], now_ms: int, clock_ms: int
    ) -> SweepOutcome:
        """Evaluate ``(key, state, partition)`` accounts at ``now_ms`` in the order given, all scored by one
        model (it learns the last sweep's outcomes first); states are updated in place. ``clock_ms`` stamps
        alerts as detected.

        The phases (:meth:`prepare`, :meth:`learn_ripe`, the census, :meth:`observe`, the outage guard's
        review, :meth:`settle`) are also what a replay sharded over processes runs, each where its data is
        (``streams/offline/replay_lockstep.py``)."""
        return drain(self.sweep_steps(accounts, now_ms, clock_ms))

    def sweep_steps(
        self,
        accounts: Iterable[tuple[bytes, AccountState, int]],
        now_ms: int,
        clock_ms: int,
        *,
        changed_only: bool = False,
    ) -> Steps[SweepOutcome]:
        """:meth:`sweep` in steps: it yields after each account decoded, outcome learned, account counted in
        the census, observed and stored (:mod:`streams.engine.steps`); the outage guard's review runs
        whole (~0.2 µs an account).

        ``changed_only``: ``accounts`` are only those that changed since the day's first sweep, which
        evaluated every account: the outage guard reviews their alerts under the incidents as they stand
        (:meth:`~detectors.outage.OutageGuard.review_changed`) and the at-risk view keeps the other accounts'
        rows."""
        batch = yield from self.prepare_steps(accounts)
        yield from self.learn_ripe_steps(now_ms)
        # The population (segment percentiles, BTYD, holidays) first, so every account sees the same one.
        yield from self.census_steps(batch, now_ms)
        observed = yield from self.observe_steps(batch, now_ms, clock_ms)
        assessments = observed.outcome.assessments
        self.unlearned.extend(outcome for assessment in assessments for outcome in assessment.outcomes)
        guard = self.guard
        decision = guard.review_changed(assessments) if changed_only else guard.review(assessments, now_ms)
        return (yield from self.settle_steps(observed, decision, changed_only=changed_only))

    def census_steps(self, batch: list[Swept], now_ms: int) -> Steps[None]:
        """The census of ``batch`` before it is observed, :data:`CENSUS_CHUNK` accounts' records at a time:
        the same records in the same order as one ``census`` call (the lock-step replay's two halves). In
        one call where the halves do not apply: ``relative_trends``, or the day's census already taken."""
        monitor = self.monitor
        if monitor.population.relative_trends or monitor.census_taken(now_ms):
            monitor.census(census_view(batch, self.stored_census), now_ms)
            return
        records: list[CensusRecord] = []
        for start in range(0, len(batch), CENSUS_CHUNK):
            chunk = census_view(batch[start : start + CENSUS_CHUNK], self.stored_census)
            records.extend(monitor.census_records(chunk, now_ms))
            yield
        yield from monitor.take_census_steps(records, now_ms)

    def prepare(self, accounts: Iterable[tuple[bytes, AccountState, int]]) -> list[Swept]:
        """A sweep's accounts with their ids and decoded detector states."""
        return drain(self.prepare_steps(accounts))

    def prepare_steps(self, accounts: Iterable[tuple[bytes, AccountState, int]]) -> Steps[list[Swept]]:
        batch: list[Swept] = []
        keep = self.keep_decoded
        for key, state, partition in accounts:
            batch.append((key.decode(), key, state, partition, self.detector_of(state) if keep else None))
            yield
        return batch

    def learn_ripe(self, now_ms: int) -> int:
        """Learn the outcomes labelled before that are ripe at ``now_ms``, in the order they were labelled;
        how many.

        With learn_at_horizon, outcomes whose snapshot's horizon is still open wait, saved with the model."""
        return drain(self.learn_ripe_steps(now_ms))

    def learn_ripe_steps(self, now_ms: int) -> Steps[int]:
        ready, self.unlearned = self.monitor.ripe(self.unlearned, now_ms)
        return (yield from self.monitor.learn_steps(ready))

    def observe(self, batch: list[Swept], now_ms: int, clock_ms: int) -> Observed:
        """Assess every account of ``batch`` in order with the current population and model."""
        return drain(self.observe_steps(batch, now_ms, clock_ms))

    def observe_steps(self, batch: list[Swept], now_ms: int, clock_ms: int) -> Steps[Observed]:
        monitor = self.monitor
        observed = Observed(batch, SweepOutcome(now_ms=now_ms))
        outcome, weighed = observed.outcome, observed.weighed
        by_plan: dict[str | None, dict[str, float]] = {}
        for account_id, _, state, partition, kept in batch:
            detector = kept if kept is not None else self.transient(state)
            weights = self.feature_weights(state, now_ms, by_plan)
            assessment = monitor.observe(
                account_id, state.window, detector, now_ms, clock_ms=clock_ms, feature_weights=weights
            )
            if weights:
                weighed[account_id] = weights
            outcome.assessments.append(assessment)
            listed = self._listed(assessment, detector, partition)
            if listed is not None:
                outcome.at_risk[account_id] = listed
            if kept is None:  # stored now, so the decoded state is not held until the sweep settles
                observed.stored[account_id] = encode_detector(detector.to_state())
                if detector.canceled_ts_ms is not None:
                    state.live_detector = detector  # see release
            yield
        return observed

    def settle(self, observed: Observed, decision: GuardDecision) -> SweepOutcome:
        """Apply the outage guard's ``decision`` to observed accounts (muted episodes, the alerts kept in the
        accounts' books) and store their detector states; the sweep's outcome.

        ``decision`` may be the part of a wider sweep's decision that concerns these accounts."""
        return drain(self.settle_steps(observed, decision))

    def settle_steps(
        self, observed: Observed, decision: GuardDecision, *, changed_only: bool = False
    ) -> Steps[SweepOutcome]:
        """:meth:`settle` in steps; ``changed_only``: the at-risk view keeps the rows of the accounts the
        sweep did not evaluate (see :meth:`sweep_steps`)."""
        outcome = observed.outcome
        detectors = {account_id: detector for account_id, _, _, _, detector in observed.batch}
        states = {account_id: state for account_id, _, state, _, _ in observed.batch}
        stored = observed.stored
        for alert in decision.suppressed:
            detector = detectors[alert.account_id]
            if detector is not None:
                self.monitor.suppress(detector, alert)
                continue
            detector = states[alert.account_id].live_detector or self.decoded(
                stored[alert.account_id], share=False
            )
            self.monitor.suppress(detector, alert)
            stored[alert.account_id] = encode_detector(detector.to_state())
        outcome.alerts = [*decision.incident_alerts, *decision.alerts]
        outcome.suppressed = list(decision.suppressed)
        answered = set(
            (yield from remembering_alerts(decision.alerts, outcome.assessments, states, observed.weighed))
        )
        for account_id, key, state, _, detector in observed.batch:
            serialized = encode_detector(detector.to_state()) if detector is not None else stored[account_id]
            if serialized != state.detector or account_id in answered:
                state.detector = serialized
                outcome.changed.append(key)
            self.release(state)
            yield
        if changed_only:
            for account_id, *_ in observed.batch:
                self.at_risk.pop(account_id, None)
            self.at_risk.update(outcome.at_risk)
        else:
            self.at_risk = outcome.at_risk
        return outcome

    def _listed(
        self, assessment: Assessment, detector: AccountDetectorState, partition: int
    ) -> AtRisk | None:
        """At risk = in an open episode (until it resolves), unless the outage guard muted it. Its severity is
        that of its current risk (as in alerts), so a listed severity always agrees with the risk."""
        episode = detector.episode
        if assessment.episode_id is None or episode is None or episode.muted:
            return None
        return AtRisk(
            account_id=assessment.account_id,
            risk=assessment.risk,
            severity=self.monitor.severity_of(assessment.risk).value,
            plan=assessment.plan,
            mrr=assessment.mrr,
            reasons=assessment.reasons,
            episode_id=assessment.episode_id,
            since_ms=episode.opened_ms,
            partition=partition,
        )

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
