"""The engine: one transport-free loop that folds events, keeps the clocks and sweeps, for live and replay.

Drivers hand it validated events (:class:`~streams.engine.fold.Arrival`) and answers to alerts
(:class:`~streams.engine.answers.AnswerArrival`) in order: the live worker in Kafka batches, replay from a
time-sorted file. The engine folds them into account states held by a
:class:`~streams.engine.store.StateStore`, runs the detectors at each UTC midnight the event-time clock
crosses (``event_clock=True``) or when the driver asks (:meth:`Engine.sweep`, the live wall-clock timer),
and reports each sweep to ``on_sweep`` (alerts to deliver, assessments). The risk model, the outage guard
and the event clock are saved with the account states at :meth:`Engine.checkpoint` and taken back at
:meth:`Engine.restore`, so a restart continues where the last checkpoint left off.

The risk model does not change during a sweep: the outcomes a sweep labels are learned once, at the start of
the next sweep (:class:`~streams.engine.detection.Detection`), so every account of a sweep is scored by the
same model. Sweeps still evaluate owned accounts in key order, so that alerts come out in the same order and
the population census (whose BTYD sample is bounded) sees the accounts in the same order whatever a store
happened to cache or restore.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter

import orjson

from detectors.alerts import Alert
from detectors.answers import AnswerPolicy
from detectors.monitor import AccountMonitor
from detectors.windows import day_of
from streams.dedup import Deduplicator
from streams.engine import saved
from streams.engine.answers import AnswerArrival, Answering
from streams.engine.clock import EventClock, SparseHolds, SparseKey, WallClock, monotonic_ms
from streams.engine.detection import Detection, SweepOutcome, due_accounts_steps
from streams.engine.fold import Arrival, FoldResult, folding
from streams.engine.state import AccountState, encode_detector
from streams.engine.steps import Steps, drain
from streams.engine.store import StateStore
from streams.engine.uplift import UpliftLedger
from streams.events import Event, SupportEvent, UsageEvent

SweepListener = Callable[[SweepOutcome], None]


@dataclass(frozen=True, slots=True)
class SweepTiming:
    """How long the last sweep took (seconds) and how many accounts it evaluated, for the driver's metrics;
    ``changed_only``: only those that changed since the day's first sweep (see ``Engine``'s
    ``incremental``)."""

    seconds: float
    accounts: int
    changed_only: bool = False


class Engine:
    """Fold, clocks, sweeps, outage guard and risk-model learning over one :class:`StateStore`.

    Parameters
    ----------
    monitor
        The detectors (its risk model is the engine's, learned in sweeps).
    store
        Where account states live.
    event_clock
        Sweep at every UTC midnight the usage events' clock crosses (replay, backfills, the worker's
        ``evaluation_clock="event"``); else only when :meth:`sweep` is called.
    wall_clock
        Stamps alerts as detected (``detected_ts_ms``); without it alerts are stamped with their event time
        (replay: the same file gives the same alerts).
    deduplicator
        Drops a retried event under a new offset (live; replay deduplicates its input before).
    on_sweep
        Called with each sweep's outcome (alerts to deliver, assessments).
    on_folded
        Called with each event folded (replay's activity and cancellation records).
    answer_policy
        How answers to alerts act (:mod:`streams.engine.answers`).
    on_answered
        Called with the alerts an answer raised (a *handled* episode's resolution), to deliver.
    holdout_member
        Holdout membership of an account id, when a holdout experiment runs: sweeps then settle alerted
        accounts for its uplift (:mod:`streams.engine.uplift`).
    clock_hold_ms
        Let the sparse topic partitions the driver reports (:meth:`report_sparse`) with a backlog hold the
        event clock, each for this long at most without progress (:class:`~streams.engine.clock.SparseHolds`;
        the live worker's ``clock_hold_seconds``). ``None`` (replay): only usage moves the clock.
    clock_idle_ms
        How long a caught-up one holds it (``clock_idle_seconds``; 0: not at all).
    monotonic
        The wall clock those holds are measured with (milliseconds; injectable for tests).
    incremental
        A sweep on a day that an earlier sweep already judged evaluates only the accounts that events or
        answers reached since the last sweep (the live worker's wall-clock timer, every minute): the others
        were judged on the same completed days, so judging them again would find the same. What time alone
        changes within a day (a muted reason's end, the risk model's intraday learning) reaches them at the
        next day's first sweep, which evaluates every account, as does the first sweep after :meth:`restore`.
        Not while a holdout runs: its uplift counts every account at each sweep. :attr:`urgent` says whether
        a support or billing event or an answer was among what reached them (the live worker then sweeps
        without waiting for its timer, ``streams/live/prompt_sweeps.py``).
    keep_decoded_detectors
        Keep each account's decoded detector state in memory between sweeps; False: only its stored form,
        decoded again when a sweep or an answer needs it (:meth:`Detection.release`; the same results).
    """

    def __init__(
        self,
        monitor: AccountMonitor,
        store: StateStore,
        *,
        event_clock: bool = True,
        wall_clock: WallClock | None = None,
        deduplicator: Deduplicator | None = None,
        on_sweep: SweepListener | None = None,
        on_folded: Callable[[Event], None] | None = None,
        answer_policy: AnswerPolicy | None = None,
        on_answered: Callable[[list[Alert]], None] | None = None,
        holdout_member: Callable[[str], bool] | None = None,
        clock_hold_ms: int | None = None,
        clock_idle_ms: int = 0,
        monotonic: WallClock = monotonic_ms,
        incremental: bool = False,
        keep_decoded_detectors: bool = True,
    ) -> None:
        self.monitor = monitor
        self.store = store
        self.window_config = monitor.window_config
        self.detection = Detection(monitor, answer_policy, keep_decoded=keep_decoded_detectors)
        self.answering = Answering(monitor, self.detection.answer_policy, self.detection.segments)
        self.on_answered = on_answered
        self.last_sweep_ms: int | None = None
        holds = None if clock_hold_ms is None else SparseHolds(clock_hold_ms, clock_idle_ms, monotonic)
        self.clock = EventClock(holds)
        self.event_clock = event_clock
        self.wall_clock = wall_clock
        self.deduplicator = deduplicator
        self.on_sweep = on_sweep
        self.on_folded = on_folded
        self.last_sweep: SweepTiming | None = None
        self.uplift = UpliftLedger(monitor.config.horizon_days, holdout_member)
        self.incremental = incremental and not self.uplift.active
        # With ``incremental``: the accounts events or answers reached since the last sweep (usage of the
        # day being judged does not count: the detectors read completed days), and the day the last sweep of
        # every account judged.
        self.touched: set[str] = set()
        self.judged_day: int | None = None
        # With ``incremental``: whether a support or billing event or an answer reached an account since the
        # last sweep (what can raise an alert within the day: the live worker sweeps promptly for it).
        self.urgent = False

    def fold(self, arrivals: Iterable[Arrival | AnswerArrival]) -> FoldResult:
        """Fold events and answers in order, sweeping first whenever an event moves the event clock past a
        midnight."""
        return drain(self.fold_steps(arrivals))

    def fold_steps(self, arrivals: Iterable[Arrival | AnswerArrival]) -> Steps[FoldResult]:
        """:meth:`fold` in steps: it yields every few arrivals folded and between the accounts of the sweeps
        it runs (:mod:`streams.engine.steps`)."""
        midnights = folding(
            self._events(arrivals),
            self.store,
            self.window_config,
            deduplicator=self.deduplicator,
            usage_midnights=self._usage_midnights if self.event_clock else None,
            sparse_midnights=self._sparse_midnights if self.event_clock else None,
            on_folded=self.on_folded,
        )
        while True:
            try:
                midnight_ms = next(midnights)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if midnight_ms is None:
                yield  # a step of the fold
            else:
                yield from self.sweep_steps(midnight_ms)

    def _events(self, arrivals: Iterable[Arrival | AnswerArrival]) -> Iterator[Arrival]:
        incremental = self.incremental
        for arrival in arrivals:
            if type(arrival) is AnswerArrival:
                self.answer(arrival)
            else:
                assert type(arrival) is Arrival
                yield arrival
                if incremental:  # once folded (and after any sweep it let the clock run)
                    event = arrival.event
                    judged = self.judged_day
                    # Usage of the judged day or later changes no judgement until that day is complete.
                    if type(event) is not UsageEvent:
                        self.touched.add(event.account_id)
                        self.urgent = True
                    elif judged is None or day_of(event.ts_ms) < judged:
                        self.touched.add(event.account_id)

    def answer(self, arrival: AnswerArrival) -> None:
        """Apply one answer to its account (:mod:`streams.engine.answers`) at the answer's own time
        (``answered_ts_ms``, what the gateway recorded): the same record acts the same in the worker, after
        a restart and in a replay, however late it is read."""
        feedback = arrival.feedback
        key = feedback.account_id.encode()
        state = self.store.get(key)
        if state is None:
            self.answering.unknown(feedback)
            return
        if self.incremental:
            self.touched.add(feedback.account_id)
            self.urgent = True
        detector = self.detection.detector_of(state)
        alerts = self.answering.apply(state, detector, feedback, feedback.answered_ts_ms)
        state.detector = encode_detector(detector.to_state())
        self.detection.release(state)
        self.store.put(key, state)
        if alerts and self.on_answered is not None:
            self.on_answered(alerts)

    def _usage_midnights(self, usage: Arrival) -> list[int]:
        return self.clock.advance(usage.partition, usage.event.ts_ms)

    def _sparse_midnights(self, sparse: Arrival) -> list[int]:
        event_type = "support" if type(sparse.event) is SupportEvent else "billing"
        return self.clock.sparse(sparse.partition, event_type, sparse.event.ts_ms)

    def report_sparse(self, backlogs: Mapping[SparseKey, bool]) -> None:
        """The sparse topic partitions the driver reads, ``(partition, "support" | "billing")``, each with
        whether records remain to be read; sweeps the midnights a hold no longer stops (one that ended, or
        whose bound ran out). The live worker reports before each batch and every second."""
        drain(self.report_sparse_steps(backlogs))

    def report_sparse_steps(self, backlogs: Mapping[SparseKey, bool]) -> Steps[None]:
        """:meth:`report_sparse` in steps (:mod:`streams.engine.steps`)."""
        if self.event_clock:
            for midnight_ms in self.clock.report(backlogs):
                yield from self.sweep_steps(midnight_ms)

    def sweep(self, now_ms: int, *, everyone: bool = False) -> SweepOutcome:
        """Evaluate the owned accounts that are due (all of them with ``everyone``) at ``now_ms``; with
        ``incremental``, a later sweep the same day only those that changed since the last sweep."""
        return drain(self.sweep_steps(now_ms, everyone=everyone))

    def sweep_steps(self, now_ms: int, *, everyone: bool = False) -> Steps[SweepOutcome]:
        """:meth:`sweep` in steps: it yields between accounts (:mod:`streams.engine.steps`). Its timing
        (:attr:`last_sweep`) is from start to end, other work between the steps included."""
        started = time.perf_counter()
        self.last_sweep_ms = now_ms
        today = self.monitor.today(now_ms)
        changed_only = self.incremental and not everyone and self.judged_day == today
        touched, self.touched = self.touched, set()
        urgent, self.urgent = self.urgent, False
        if not changed_only:
            self.judged_day = None  # until this whole sweep has ended
        try:
            outcome = yield from self._sweep_steps(now_ms, everyone, changed_only, touched)
        except BaseException:
            self.touched |= touched  # they wait for the next sweep
            self.urgent = self.urgent or urgent
            raise
        if self.incremental and not changed_only:
            self.judged_day = today
        self.last_sweep = SweepTiming(time.perf_counter() - started, len(outcome.assessments), changed_only)
        if self.on_sweep is not None:
            self.on_sweep(outcome)
        return outcome

    def _sweep_steps(
        self, now_ms: int, everyone: bool, changed_only: bool, touched: set[str]
    ) -> Steps[SweepOutcome]:
        store = self.store
        uplift = self.uplift
        keys = store.owned_among(sorted(key.encode() for key in touched)) if changed_only else store.owned()
        pairs: list[tuple[bytes, AccountState | None]] = []
        for key in keys:  # over the rows as they were at the start (and the new states)
            pairs.append((key, store.get(key)))  # decoded here when not cached
            yield
        accounts = yield from due_accounts_steps(pairs, now_ms, everyone)
        # Every owned account, in key order, for the holdout uplift.
        owned = (
            [(key, state) for key, state in sorted(pairs, key=itemgetter(0)) if state is not None]
            if uplift.active
            else []
        )
        clock_ms = self.wall_clock() if self.wall_clock is not None else now_ms
        outcome = yield from self.detection.sweep_steps(accounts, now_ms, clock_ms, changed_only=changed_only)
        states = {key: state for key, state, _ in accounts}
        for key in outcome.changed:
            store.put(key, states[key])
            yield
        for key, state in uplift.sweep(owned, outcome.alerts, now_ms):
            store.put(key, state)
        return outcome

    # -- the engine's own state -----------------------------------------------------------------------------

    def state_bytes(self) -> bytes:
        """The risk model, outage guard, population and event clock (:mod:`streams.engine.saved`)."""
        return saved.encode(self.detection, self.clock)

    def checkpoint(self) -> None:
        """Hand the engine's state to the store, to be made durable with the account states."""
        self.store.put_engine_state(self.state_bytes())

    def restore(self, partitions: Iterable[int]) -> None:
        """Take back what the store saved for ``partitions`` (after a start or a rebalance)."""
        self.judged_day = None  # other partitions may be here now: the next sweep evaluates every account
        states = [orjson.loads(raw) for raw in self.store.engine_states()]
        saved.adopt(self.detection, self.clock, states, list(partitions))
        if self.uplift.active:  # the holdout's counts, from the marks in the stored account states
            store = self.store
            self.uplift.recount(state for key in store.owned() if (state := store.get(key)) is not None)
