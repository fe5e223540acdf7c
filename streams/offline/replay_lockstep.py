"""``churnwatch replay --jobs N``: the replay itself on N processes, in lock-step; the same results as one.

The detectors have worker-wide parts: the population model (segment percentiles, BTYD, the holiday
calendar, the base's newness), the risk model learned from every account's outcomes, and the outage guard over
each sweep. Shards that replayed their accounts on their own would each learn their own and score and alert
differently (docs/performance.md). So the shards (:mod:`streams.offline.replay_shard`, one process each, an
account's shard being the CRC-32 of its id modulo N) own their accounts' states and fold their events, and
one coordinator (this process) keeps the worker-wide parts and the event clock, and steps the shards through
each UTC midnight the clock crosses as one process's sweep would:

1. **Cut.** One process sweeps a midnight just before the first usage event of a later day (in pass 2's
   order: event time, line text, line number). The coordinator runs pass 2 (``future_ts``, duplicates) over
   every shard's sorted runs without decoding them (:meth:`~streams.offline.sorted_input.SortedInput.judged`)
   and finds that event; its event clock says which midnights it crosses. Cuts are judged one sweep ahead,
   while the shards observe.
2. **Census.** Shards fold their events before the cut (but the rejected lines), take their due accounts
   (key order) and compute each one's census record (:meth:`~detectors.population.PopulationModel.record`).
   The coordinator learns the ripe outcomes meanwhile (in the order one process labelled them: sweep, then
   key order), then takes the census over every shard's records merged in key order, so floats add up in
   the same order.
3. **Observe.** The coordinator sends the population (and the risk model when it learned); shards assess
   their accounts and return the assessments.
4. **Review.** The coordinator runs the outage guard over all assessments (key order) and sends each shard
   its part of the decision, which the shard applies (muted episodes, alerts kept in the accounts' books)
   before anything else it is asked next. Meanwhile each shard, once it has sent its assessments, folds its
   events up to the next cut (sent with the observe): folding and settling touch different parts of an
   account's state, so doing them in this order gives one process's results, and a shard done observing
   folds instead of waiting for the slowest one and for the review.

Pass 1 (read and validate) runs in the shards as in :mod:`streams.offline.replay_parallel`; each shard keeps
its own lines (decoded) and leaves them in sorted runs for the coordinator, which tells it at each cut the
lines it rejected before it. The result lists accounts, activity and cancellations in one process's order (by
each account's first event).

Not supported (the CLI keeps one replaying process for them): answers to alerts (``--feedback``), a holdout
settled by the engine, and ``relative_trends`` (the base's trends read every account's window after the
calendar closes).
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Container, Iterator, Sequence
from functools import partial
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from detectors.census import CensusRecord
from detectors.monitor import AccountMonitor, Assessment, DetectorConfig, GuardDecision
from detectors.windows import DAY_MS, WindowConfig
from streams.engine.clock import EventClock
from streams.engine.detection import Detection, SweepOutcome
from streams.engine.uplift import UpliftLedger
from streams.events import LATEST_TS_MS
from streams.gc_freeze import GcFreezer
from streams.offline.replay import ProgressCallback, ReplayResult, record_sweep
from streams.offline.replay_input import InputError, InputRules, InputStats, RejectSink
from streams.offline.replay_parallel import ShardRead, order_reasons
from streams.offline.replay_shard import Key, interrupts_held, shard_main
from streams.offline.sorted_input import SortedInput

_ACCOUNT = attrgetter("account_id")


class ShardFailed(RuntimeError):
    """A shard process raised or died: the message says which and why in one line (the exception's last
    line); ``trace`` holds the shard's traceback, when it raised."""

    def __init__(self, shard: int, why: str, trace: str = "") -> None:
        super().__init__(f"replay shard {shard}: {why}")
        self.trace = trace


class Shards:
    """The shard processes and a pipe to each (a context manager: stopped at exit, killed if need be)."""

    def __init__(self, source: str, jobs: int, rules: InputRules, spill_dir: str, keep_rejects: bool) -> None:
        # Fork: a spawned process would import everything again (~1.5 s each). The replay starts its shards
        # before any thread of its own (the CLI prints a line instead of a progress bar).
        forks = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork") if forks else multiprocessing.get_context("spawn")
        self.conns = []
        self.processes = []
        try:
            with interrupts_held():
                for shard in range(jobs):
                    parent, child = context.Pipe()
                    args = (child, os.getpid(), source, shard, jobs, rules, spill_dir, keep_rejects)
                    name = f"churnwatch-shard-{shard}"
                    process = context.Process(target=shard_main, args=args, name=name)
                    process.start()
                    child.close()
                    self.conns.append(parent)
                    self.processes.append(process)
        except BaseException as error:  # a Ctrl-C held back while forking lands here: stop what started
            self.stop(type(error))
            raise

    def __enter__(self) -> Shards:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc_info: object) -> None:
        self.stop(kind)

    def stop(self, kind: type[BaseException] | None) -> None:
        """Ask every shard to stop; wait for them unless ``kind`` (an exception) is why, then kill them."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for process in self.processes:
            process.join(timeout=10 if kind is None else 0)
            if process.is_alive():
                process.kill()
                process.join()

    def receive(self) -> list[Any]:
        """Every shard's reply, in shard order."""
        replies = []
        for shard, conn in enumerate(self.conns):
            try:
                reply = conn.recv()
            except EOFError:
                code = self.processes[shard].exitcode
                raise ShardFailed(shard, f"died (exit code {code})") from None
            if reply[0] == "error":
                _, kind, text = reply
                if kind == "input":
                    raise InputError(text)
                raise ShardFailed(shard, text.strip().splitlines()[-1], trace=text)
            replies.append(reply[1])
        return replies

    def call(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run ``calls[i]`` (a :class:`~streams.offline.replay_shard.Shard` method and its arguments) on
        shard ``i``, all at once; their results."""
        self.send(calls)
        return self.receive()

    def send(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """:meth:`call` without waiting: :meth:`receive` the results."""
        for conn, message in zip(self.conns, calls, strict=True):
            conn.send(message)

    def broadcast(self, name: str, *args: Any) -> list[Any]:
        return self.call([(name, args)] * len(self.conns))


class Cuts:
    """Pass 2 over every shard's runs (:meth:`~streams.offline.sorted_input.SortedInput.judged`), read one
    cut ahead: where one process sweeps (before the first accepted usage event of a later day, at or before
    ``as_of_ms``), with the lines rejected on the way (``rejected`` is filled by the input's reject sink)."""

    def __init__(self, judged: SortedInput, rejected: list[int], as_of_ms: int | None) -> None:
        self._judged = judged.judged()
        self._rejected = rejected
        self._as_of = as_of_ms if as_of_ms is not None else LATEST_TS_MS

    def next(self, day: int | None) -> tuple[Key | None, list[int]]:
        """The next cut after ``day`` (None: there is none, every line was judged) and the lines rejected
        before it."""
        start = (day + 1) * DAY_MS if day is not None else -(2**63)
        cut: Key | None = None
        for ts, raw, line_no, usage in self._judged:
            if usage and start <= ts <= self._as_of:
                cut = (ts, raw, line_no)
                break
        rejected = list(self._rejected)
        self._rejected.clear()
        return cut, rejected


class LockStep:
    """The coordinator: the event clock, the risk model, the census and the outage guard (see the module)."""

    def __init__(
        self,
        shards: Shards,
        result: ReplayResult,
        monitor: AccountMonitor,
        snapshot_at: Container[int],
        as_of_ms: int | None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.shards = shards
        self.on_progress = on_progress
        self.result = result
        self.monitor = monitor
        self.detection = Detection(monitor)
        self.clock = EventClock()
        self.snapshot_at = snapshot_at
        self.as_of_ms = as_of_ms
        self.decisions: list[GuardDecision | None] = [None] * len(shards.conns)  # each shard's, to settle
        self.model_sent = False
        self.unfolded: list[int] = []  # lines rejected after the last cut, for the final fold
        self.gc_freezer = GcFreezer(full_every_s=float("inf"))  # the caller thaws at the end

    def run(self, cuts: Cuts) -> None:
        """Step the shards through every midnight, then the final evaluation; the result's figures."""
        plan = self.plan(cuts)
        current, upcoming = next(plan, None), next(plan, None)
        folded_ahead = False
        while current is not None:
            midnight, fold = current
            # The next sweep's fold is sent with this one's observe, and the sweep after next is planned (its
            # cut judged) while the shards observe.
            ahead = upcoming[1] if upcoming is not None else None
            following = self.sweep(
                midnight,
                fold=None if folded_ahead else fold,
                ahead=ahead,
                meanwhile=partial(next, plan, None),
            )
            folded_ahead = ahead is not None
            current, upcoming = upcoming, following
        folds = self.shards.broadcast("fold", None, self.unfolded)
        watermark = max(watermark for watermark, _ in folds)
        clock = self.as_of_ms if self.as_of_ms is not None else max(watermark, 0)
        self.result.clock_ms = clock
        if any(accounts for _, accounts in folds):
            self.sweep(clock, everyone=True)
        self.collect(self.shards.call([("finish", (decision,)) for decision in self.decisions]))

    def plan(self, cuts: Cuts) -> Iterator[tuple[int, tuple[Key, list[int]] | None]]:
        """Each midnight to sweep, with the fold the shards run before it (None: nothing to fold between two
        midnights); the lines rejected after the last fold are left in ``unfolded``."""
        cut, rejected = cuts.next(None)
        pending: list[int] = []  # rejected lines the shards have not been told of
        while cut is not None:
            pending += rejected
            midnights = self.clock.advance(0, cut[0])
            this = cut
            cut, rejected = cuts.next(this[0] // DAY_MS)
            if midnights:
                yield midnights[0], (this, pending)
                pending = []
                for midnight in midnights[1:]:
                    yield midnight, None
        self.unfolded = pending + rejected

    def sweep(
        self,
        now_ms: int,
        *,
        fold: tuple[Key, list[int]] | None = None,
        ahead: tuple[Key, list[int]] | None = None,
        everyone: bool = False,
        meanwhile: Callable[[], Any] | None = None,
    ) -> Any:
        """One sweep over every shard (see the module's steps), after they fold up to a cut (``fold``), and
        with the fold before the next sweep (``ahead``, see :meth:`Shard.catch_up`); what ``meanwhile``
        returns (run while the shards observe)."""
        started = time.perf_counter()
        self.shards.send([("census", (decision, fold, now_ms, everyone)) for decision in self.decisions])
        self.decisions = [None] * len(self.decisions)
        monitor, detection = self.monitor, self.detection
        learned = detection.learn_ripe(now_ms)  # while the shards fold and take their records
        records: list[list[CensusRecord]] = self.shards.receive()
        monitor.take_census(heapq.merge(*records, key=_ACCOUNT), now_ms)
        model = monitor.risk_model if learned or not self.model_sent else None
        self.model_sent = True
        self.shards.send([("observe", (monitor.population, model, now_ms, ahead))] * len(self.decisions))
        found = meanwhile() if meanwhile is not None else None
        parts: list[list[Assessment]] = self.shards.receive()
        assessments = list(heapq.merge(*parts, key=_ACCOUNT))
        detection.unlearned.extend(outcome for a in assessments for outcome in a.outcomes)
        decision = detection.guard.review(assessments, now_ms)
        self.decisions = _split(decision, parts)
        outcome = SweepOutcome(
            now_ms=now_ms,
            alerts=[*decision.incident_alerts, *decision.alerts],
            suppressed=list(decision.suppressed),
            assessments=assessments,
        )
        record_sweep(self.result, outcome, self.snapshot_at, time.perf_counter() - started)
        self.gc_freezer.freeze_survivors()  # what the result keeps: out of the collector's walks
        if self.on_progress is not None:
            self.on_progress(now_ms)
        return found

    def collect(self, finished: list[dict[str, Any]]) -> None:
        """The shards' final states and records, in the order one process lists them."""
        result = self.result
        for key, state, _ in heapq.merge(*(part["states"] for part in finished), key=itemgetter(2)):
            account = key.decode()
            state.applied_offsets = [-1] * len(state.applied_offsets)
            result.windows[account] = state.window
            result.states[account] = self.detection.detector_of(state)
            result.account_states[key] = state
        if result.activity is not None:
            for account, days, _ in heapq.merge(*(part["activity"] for part in finished), key=itemgetter(2)):
                result.activity[account] = days
        for account, ts, _ in heapq.merge(*(part["cancellations"] for part in finished), key=itemgetter(2)):
            result.cancellations[account] = ts
        for part in finished:
            folded = part["folded"]
            result.events += folded.folded
            result.late_events += folded.late
            result.after_as_of += folded.after_as_of
        firsts = [part["folded"].first_ts_ms for part in finished if part["folded"].first_ts_ms is not None]
        result.first_ts_ms = min(firsts, default=None)


def _progress(on_progress: ProgressCallback, stats: InputStats, now_ms: int) -> None:
    on_progress(stats.accepted + sum(stats.rejected.values()), now_ms)


def _split(decision: GuardDecision, parts: list[list[Assessment]]) -> list[GuardDecision | None]:
    """Each shard's part of the outage guard's decision (its accounts' alerts, kept and held back)."""
    owner = {assessment.account_id: shard for shard, part in enumerate(parts) for assessment in part}
    split: list[GuardDecision | None] = []
    for shard in range(len(parts)):
        split.append(
            GuardDecision(
                incident_alerts=[],
                alerts=[a for a in decision.alerts if owner.get(a.account_id) == shard],
                suppressed=[a for a in decision.suppressed if owner.get(a.account_id) == shard],
                affected=decision.affected,
                monitored=decision.monitored,
            )
        )
    return split


def replay_lockstep(
    source: str | Path,
    *,
    jobs: int,
    rules: InputRules,
    on_reject: RejectSink | None = None,
    config: DetectorConfig | None = None,
    window_config: WindowConfig | None = None,
    as_of_ms: int | None = None,
    snapshot_ms: Container[int] = (),
    record_activity: bool = False,
    on_progress: ProgressCallback | None = None,
) -> tuple[ReplayResult, InputStats]:
    """What :func:`~streams.offline.replay.replay_file` returns (and the input's figures), replayed on
    ``jobs`` processes. ``source`` must be a file (gzip or not), not stdin: every shard reads it.
    ``on_progress`` is called after each sweep with (lines judged so far, the sweep's clock)."""
    started = time.perf_counter()
    cfg = config if config is not None else DetectorConfig()
    wcfg = window_config if window_config is not None else WindowConfig()
    if cfg.relative_trends:
        raise ValueError("a lock-step replay cannot read trends against the base (relative_trends)")
    if cfg.follows_spells:
        raise ValueError(
            "a lock-step replay cannot follow silent spells (spell_hold, silence_outcomes, drop_outcomes)"
        )
    monitor = AccountMonitor(cfg, wcfg)
    result = ReplayResult(config=cfg, window_config=wcfg, monitor=monitor)
    result.uplift = UpliftLedger(cfg.horizon_days, None)
    if record_activity:
        result.activity = {}
    snapshot_at = frozenset(snapshot_ms) if isinstance(snapshot_ms, list | tuple | set) else snapshot_ms
    rejected: list[int] = []

    def judged(line_no: int, reason: str, detail: str, raw: bytes) -> None:
        rejected.append(line_no)
        if on_reject is not None:
            on_reject(line_no, reason, detail, raw)

    with (
        tempfile.TemporaryDirectory(prefix="churnwatch-replay-") as spill_dir,
        Shards(str(source), jobs, rules, spill_dir, on_reject is not None) as shards,
        GcFreezer(full_every_s=float("inf")),  # thaws at the end: the caller's objects are collected again
    ):
        reads: list[ShardRead] = shards.receive()
        with SortedInput(rules, judged) as merged:
            for read in reads:
                merged.adopt(read.runs, read.latest, read.stats)
            order_reasons(merged.stats, reads)
            if on_reject is not None:
                for reject in sorted((r for read in reads for r in read.rejects), key=itemgetter(0)):
                    on_reject(*reject)
            shards.broadcast("start", cfg, wcfg, as_of_ms, record_activity)
            swept = None if on_progress is None else partial(_progress, on_progress, merged.stats)
            lock_step = LockStep(shards, result, monitor, snapshot_at, as_of_ms, swept)
            lock_step.run(Cuts(merged, rejected, as_of_ms))
    stats = merged.stats
    result.lines = stats.lines
    result.bad_reasons = stats.bad_reasons()
    result.bad_lines = sum(result.bad_reasons.values())
    result.elapsed_s = time.perf_counter() - started
    return result, stats
