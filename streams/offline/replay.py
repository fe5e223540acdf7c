"""Offline replay: the live pipeline's engine over a JSON-lines event file.

No Kafka: events are validated as the ingest path validates records (by :mod:`streams.offline.sorted_input`,
or here for plain lines) and handed to the same :class:`~streams.engine.Engine` the live worker drives, with
an in-memory store and the event-time clock: each UTC midnight the usage events' clock crosses sweeps every
account, so accounts that went silent are evaluated too. Detector work is therefore per account-day, and the
per-event cost is the window fold. Answers to alerts (``feedback``, e.g. ``churnwatch replay --feedback``) are
merged into the events by their time, so the effect of answers can be backtested.

:func:`run_replay` is the core (the CLI, backfills, tests and benchmarks call it);
:mod:`streams.offline.replay_outputs` writes its scores, alerts and detection-quality report.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from detectors.alerts import Alert
from detectors.answers import AnswerPolicy
from detectors.monitor import AccountDetectorState, AccountMonitor, Assessment, DetectorConfig, Outcome
from detectors.vocabulary import BillingKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import AccountState, Arrival, Engine, MemoryStore, SweepOutcome
from streams.engine.answers import AnswerArrival, AnswerCounts
from streams.engine.uplift import UpliftLedger
from streams.events import BillingEvent, Event, InvalidEventError, UsageEvent, validate
from streams.feedback import Feedback
from streams.gc_freeze import GcFreezer
from streams.offline.replay_fold import fold_in_order

if TYPE_CHECKING:
    from streams.offline.replay_input import InputRules, RejectSink
    from streams.offline.sorted_input import SortedInput

ProgressCallback = Callable[[int, int], None]  # (lines read, event-time watermark in ms)
CHUNK = 4_096  # events handed to the engine at a time
# Replays without answers to alerts fold through replay_fold.fold_in_order (same results, about half the cost
# per event); tests turn it off to compare with the engine's general fold.
ORDERED_FOLD = True


def rfc3339(ts_ms: int) -> str:
    """RFC 3339 UTC text of an epoch-ms time (second precision).

    >>> rfc3339(1795687200000)
    '2026-11-26T10:00:00Z'
    """
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True, kw_only=True)
class ReplayResult:
    """Everything a replay produced; see :func:`run_replay`."""

    config: DetectorConfig
    window_config: WindowConfig
    lines: int = 0
    events: int = 0
    bad_lines: int = 0
    bad_reasons: Counter[str] = field(default_factory=Counter)
    late_events: int = 0
    after_as_of: int = 0
    first_ts_ms: int | None = None
    clock_ms: int | None = None
    sweeps: int = 0
    observations: int = 0
    elapsed_s: float = 0.0
    sweep_s: float = 0.0  # of elapsed_s, the time spent in detector sweeps (the rest is decoding and folding)
    windows: dict[str, AccountWindow] = field(default_factory=dict)
    states: dict[str, AccountDetectorState] = field(default_factory=dict)
    # The final state of every account as the live worker stores it (window and detector state), by key.
    account_states: dict[bytes, AccountState] = field(default_factory=dict)
    assessments: dict[str, Assessment] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    cancellations: dict[str, int] = field(default_factory=dict)
    monitor: AccountMonitor | None = None
    # Risk of every swept account at each requested snapshot midnight (ms -> account -> risk).
    snapshots: dict[int, dict[str, float]] = field(default_factory=dict)
    # Usage counts per account and UTC day (epoch day), when recorded (``record_activity=True``).
    activity: dict[str, dict[int, int]] | None = None
    answers: AnswerCounts = field(default_factory=AnswerCounts)  # what the answers to alerts did
    uplift: UpliftLedger | None = None  # the engine's holdout settling (with ``holdout_member``)

    @property
    def events_per_s(self) -> float:
        return self.lines / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_replay(
    lines: Iterable[bytes] | SortedInput,
    *,
    config: DetectorConfig | None = None,
    window_config: WindowConfig | None = None,
    monitor: AccountMonitor | None = None,
    as_of_ms: int | None = None,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1 << 16,
    snapshot_ms: Container[int] = (),
    record_activity: bool = False,
    feedback: Sequence[Feedback] = (),
    answer_policy: AnswerPolicy | None = None,
    holdout_member: Callable[[str], bool] | None = None,
    keep_decoded_detectors: bool = True,
) -> ReplayResult:
    """Replay events in order through the engine (fold, daily sweeps, alert policy); the final states.

    The contract backfills rely on: ``result.account_states`` holds every account's final state (window and
    detector state, as the live worker stores it in its table, with ``applied_offsets`` reset: file
    positions are no Kafka offsets), ``result.monitor.risk_model`` the model learned, and the states are
    evaluated a last time at ``result.clock_ms``.

    Parameters
    ----------
    lines
        A :class:`~streams.offline.sorted_input.SortedInput` (validated, time-sorted, deduplicated events,
        decoded once), or raw JSON lines (bytes) already in event-time order as far as the window's lateness
        allowance requires; blank lines are ignored, invalid ones counted.
    config, window_config
        Detection and window configuration (defaults when omitted).
    monitor
        A ready monitor (e.g. with a pre-trained risk model); built from ``config`` when omitted.
    as_of_ms
        Stop the clock here: later events are skipped (counted) and the final evaluation runs at this time.
    on_progress
        Called about every ``progress_every`` lines (and at the end) with (lines read, watermark ms).
    snapshot_ms
        UTC midnights (epoch ms) at which to keep every swept account's risk in ``result.snapshots`` (what a
        backtest ranks; a midnight inside a gap of more than 62 days without usage is not swept).
    record_activity
        Keep usage counts per account and day in ``result.activity`` (what the backtest's baselines use).
    feedback, answer_policy
        Answers to alerts, folded when the events' time passes theirs (:mod:`streams.engine.answers`), and
        how they act (the default policy when omitted).
    holdout_member
        Holdout membership of an account id: the engine then settles alerted accounts as the worker does
        (``result.uplift``, :mod:`streams.engine.uplift`).
    keep_decoded_detectors
        False: drop each account's decoded detector state after each sweep, as the live worker does on the
        wall clock (the same results, less memory, a decode per account-day: ``benchmarks/sweep_cost.py``).
    """
    started = time.perf_counter()
    cfg = config if config is not None else (monitor.config if monitor is not None else DetectorConfig())
    wcfg = window_config if window_config is not None else WindowConfig()
    mon = monitor if monitor is not None else AccountMonitor(cfg, wcfg)
    result = ReplayResult(config=cfg, window_config=wcfg, monitor=mon)
    snapshot_at = frozenset(snapshot_ms) if isinstance(snapshot_ms, list | tuple | set) else snapshot_ms
    run = _Run(result, mon, snapshot_at, feedback, answer_policy, holdout_member, keep_decoded_detectors)
    if record_activity:
        result.activity = {}
    from streams.offline.sorted_input import SortedInput  # it imports this module

    events = lines.events() if isinstance(lines, SortedInput) else _decode(lines, result)
    with run.gc_freezer:  # thaws at the end: the caller's objects are the collector's again
        run.feed(events, as_of_ms, on_progress, progress_every)
        run.finish(as_of_ms)
    result.elapsed_s = time.perf_counter() - started
    if on_progress is not None:
        on_progress(result.lines, run.watermark)
    return result


def _decode(lines: Iterable[bytes], result: ReplayResult) -> Iterator[Event]:
    """Valid events of raw lines; invalid ones counted per reason in ``result`` (blank ones ignored)."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    bad = result.bad_reasons
    for raw in lines:
        try:
            yield validate(loads(raw), min_ts_ms=None)  # historical data is data
        except decode_error:
            if raw.strip():
                bad["invalid_json"] += 1
        except InvalidEventError as error:
            bad[error.reason.value] += 1


class _Run:
    """One replay: feeds the engine, records what its sweeps and folds produce into the result."""

    def __init__(
        self,
        result: ReplayResult,
        monitor: AccountMonitor,
        snapshot_at: Container[int],
        feedback: Sequence[Feedback] = (),
        answer_policy: AnswerPolicy | None = None,
        holdout_member: Callable[[str], bool] | None = None,
        keep_decoded_detectors: bool = True,
    ) -> None:
        self.result = result
        self.snapshot_at = snapshot_at
        self.store = MemoryStore()
        self.engine = Engine(
            monitor,
            self.store,
            on_sweep=self._swept,
            on_folded=self._folded,
            answer_policy=answer_policy,
            on_answered=result.alerts.extend,
            holdout_member=holdout_member,
            keep_decoded_detectors=keep_decoded_detectors,
        )
        result.uplift = self.engine.uplift
        result.answers = self.engine.answering.counts
        ordered = sorted(enumerate(feedback), key=lambda item: (item[1].answered_ts_ms, item[0]))
        self.answers = [AnswerArrival(answer, 0, line) for line, answer in ordered]
        self.next_answer = 0
        self.watermark = -1
        self.gc_freezer = GcFreezer(full_every_s=math.inf)  # thawed when the replay ends instead

    def _answers_until(self, ts_ms: int | None, chunk: list[Arrival | AnswerArrival]) -> None:
        """Queue the answers given before ``ts_ms`` (all the rest when None) ahead of the next event."""
        answers = self.answers
        while self.next_answer < len(answers) and (
            ts_ms is None or answers[self.next_answer].feedback.answered_ts_ms < ts_ms
        ):
            chunk.append(answers[self.next_answer])
            self.next_answer += 1

    def feed(
        self,
        events: Iterable[Event],
        as_of_ms: int | None,
        on_progress: ProgressCallback | None,
        progress_every: int,
    ) -> None:
        if ORDERED_FOLD and not self.answers:
            self._feed_in_order(events, as_of_ms, on_progress, progress_every)
            return
        result = self.result
        fold = self.engine.fold
        chunk: list[Arrival | AnswerArrival] = []
        accepted = after = 0
        next_progress = progress_every
        for event in events:
            accepted += 1
            ts = event.ts_ms
            if as_of_ms is not None and ts > as_of_ms:
                after += 1
                continue
            if result.first_ts_ms is None:
                result.first_ts_ms = ts
            if ts > self.watermark:
                self.watermark = ts
            if self.next_answer < len(self.answers):
                self._answers_until(ts, chunk)
            chunk.append(Arrival(event, 0, accepted))
            if len(chunk) >= CHUNK:
                self._fold(fold, chunk)
                chunk = []
                if on_progress is not None and accepted >= next_progress:
                    on_progress(accepted + sum(result.bad_reasons.values()), self.watermark)
                    next_progress += progress_every
        self._answers_until(as_of_ms + 1 if as_of_ms is not None else None, chunk)
        self._fold(fold, chunk)
        result.after_as_of = after
        result.lines = accepted + sum(result.bad_reasons.values())
        result.bad_lines = sum(result.bad_reasons.values())

    def _feed_in_order(
        self,
        events: Iterable[Event],
        as_of_ms: int | None,
        on_progress: ProgressCallback | None,
        progress_every: int,
    ) -> None:
        """:meth:`feed` without answers to merge: :func:`~streams.offline.replay_fold.fold_in_order`."""
        result = self.result
        bad = result.bad_reasons

        def progress(accepted: int, watermark: int) -> None:
            assert on_progress is not None
            on_progress(accepted + sum(bad.values()), watermark)

        done = fold_in_order(
            self.engine,
            self.store,
            events,
            as_of_ms=as_of_ms,
            activity=result.activity,
            cancellations=result.cancellations,
            on_progress=progress if on_progress is not None else None,
            progress_every=progress_every,
        )
        self.watermark = done.watermark
        result.first_ts_ms = done.first_ts_ms
        result.events += done.folded
        result.late_events += done.late
        result.after_as_of = done.after_as_of
        result.bad_lines = sum(bad.values())
        result.lines = done.accepted + result.bad_lines

    def _fold(
        self, fold: Callable[[list[Arrival | AnswerArrival]], Any], chunk: list[Arrival | AnswerArrival]
    ) -> None:
        done = fold(chunk)
        self.result.events += done.folded
        self.result.late_events += len(done.late)

    def finish(self, as_of_ms: int | None) -> None:
        """Evaluate every account at the stopped clock (idempotent for days already learned); the states."""
        result = self.result
        clock = as_of_ms if as_of_ms is not None else max(self.watermark, 0)
        result.clock_ms = clock
        states = self.store.states
        if states:
            self.engine.sweep(clock, everyone=True)
        for key, state in states.items():
            account = key.decode()
            state.applied_offsets = [-1] * len(state.applied_offsets)
            result.windows[account] = state.window
            result.states[account] = self.engine.detection.detector_of(state)
        result.account_states = states

    def _swept(self, outcome: SweepOutcome) -> None:
        timing = self.engine.last_sweep
        record_sweep(self.result, outcome, self.snapshot_at, timing.seconds if timing is not None else 0.0)
        self.gc_freezer.freeze_survivors()  # the states: out of the collector's walks

    def _folded(self, event: Event) -> None:
        if type(event) is UsageEvent:
            activity = self.result.activity
            if activity is not None:
                per_day = activity.setdefault(event.account_id, {})
                day = event.ts_ms // DAY_MS
                per_day[day] = per_day.get(day, 0) + event.count
        elif type(event) is BillingEvent and event.kind is BillingKind.SUBSCRIPTION_CANCELED:
            self.result.cancellations.setdefault(event.account_id, event.ts_ms)


def record_sweep(
    result: ReplayResult, outcome: SweepOutcome, snapshot_at: Container[int], seconds: float
) -> None:
    """Add one sweep's assessments, outcomes, alerts and snapshot to ``result``."""
    for assessment in outcome.assessments:
        result.assessments[assessment.account_id] = assessment
        if assessment.outcomes:
            result.outcomes.extend(assessment.outcomes)
    if outcome.now_ms in snapshot_at:
        result.snapshots[outcome.now_ms] = {a.account_id: a.risk for a in outcome.assessments}
    result.alerts.extend(outcome.alerts)
    result.suppressed.extend(outcome.suppressed)
    result.sweeps += 1
    result.observations += len(outcome.assessments)
    result.sweep_s += seconds


def replay_file(
    path: Path, *, rules: InputRules | None = None, on_reject: RejectSink | None = None, **kwargs: Any
) -> ReplayResult:
    """:func:`run_replay` over an event file (gzip or not), read, validated and sorted as the CLI reads it.

    ``rules`` default to the worker's settings (``CHURNWATCH_*``); the input's own figures (lines, bad
    lines) replace the result's.
    """
    from streams.offline.replay_input import InputRules
    from streams.offline.sorted_input import SortedInput, read_source
    from streams.settings import load_settings

    rules = rules if rules is not None else InputRules.from_settings(load_settings())
    with SortedInput(rules, on_reject) as sorted_input:
        read_source(path, sorted_input)
        result = run_replay(sorted_input, **kwargs)
    stats = sorted_input.stats
    result.lines = stats.lines
    result.bad_reasons = stats.bad_reasons()
    result.bad_lines = sum(result.bad_reasons.values())
    return result
