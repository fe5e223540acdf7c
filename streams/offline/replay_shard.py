"""One shard of a lock-step replay (:mod:`streams.offline.replay_lockstep`): a process owning some accounts.

A shard reads the lines of its accounts (pass 1, :func:`~streams.offline.replay_parallel.read_shard`), keeps
their states for the whole replay and folds their events when the coordinator says how far (a *cut*: the
first usage event of a new day, over all shards). At each midnight it computes its due accounts' census
records, observes them with the population and risk model the coordinator sends, folds up to the next cut
once its assessments are sent, and settles them with the part of the outage guard's decision that concerns
them. :func:`shard_main` is the process; :class:`Shard` what it runs, one call per message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from detectors.census import CensusRecord
from detectors.monitor import AccountMonitor, Assessment, DetectorConfig, GuardDecision
from detectors.population import PopulationModel
from detectors.risk import RiskModel
from detectors.vocabulary import BillingKind
from detectors.windows import WindowConfig
from streams.engine import Engine, MemoryStore
from streams.engine.detection import Observed, Swept, census_view, due_accounts
from streams.events import LATEST_TS_MS, BillingEvent, Event, UsageEvent
from streams.gc_freeze import GcFreezer
from streams.offline.replay_fold import OrderedFold, fold_in_order
from streams.offline.replay_input import InputError, InputRules
from streams.offline.replay_parallel import die_with, read_shard_input
from streams.offline.sorted_input import Record, SortedInput

# The order of one process's pass 2: event time, then the line's text, then its number (all unique).
Key = tuple[int, bytes, int]


class ShardEvents:
    """A shard's valid events in the order one process's pass 2 gives them, handed out up to a cut, without
    the lines the coordinator rejected (``future_ts``, duplicates: it judges every shard's lines together).

    It remembers the key of each account's first event, first usage and first cancellation (at or before
    ``as_of_ms``): the coordinator merges the shards' accounts in that order, the order one process's
    dictionaries would list them in."""

    def __init__(self, records: Iterator[Record], as_of_ms: int | None) -> None:
        self._records = records
        self._next: Record | None = None  # read, not handed out yet
        self._as_of = as_of_ms if as_of_ms is not None else LATEST_TS_MS
        self.rejected: set[int] = set()
        self.first: dict[str, Key] = {}
        self.first_usage: dict[str, Key] = {}
        self.first_cancel: dict[str, Key] = {}

    def until(self, cut: Key | None, rejected: list[int]) -> Iterator[Event]:
        """The events before ``cut`` (all the rest when None); ``rejected``: the lines the coordinator
        rejected since the last cut (it has judged every line before this one)."""
        skip = self.rejected
        skip.update(rejected)
        records = self._records
        record = self._next
        self._next = None
        while record is not None or (record := next(records, None)) is not None:
            if cut is not None and (record[0], record[1], record[2]) >= cut:
                self._next = record
                return
            if record[2] not in skip:
                yield self._note(record)
            record = None

    def _note(self, record: Record) -> Event:
        ts, raw, line_no, _, event = record
        if ts <= self._as_of:
            account = event.account_id
            if account not in self.first:
                self.first[account] = (ts, raw, line_no)
            kind = type(event)
            if kind is UsageEvent and account not in self.first_usage:
                self.first_usage[account] = (ts, raw, line_no)
            elif (
                kind is BillingEvent
                and event.kind is BillingKind.SUBSCRIPTION_CANCELED  # type: ignore[union-attr]
                and account not in self.first_cancel
            ):
                self.first_cancel[account] = (ts, raw, line_no)
        return event


class Shard:
    """The accounts of one shard through a replay, driven by the coordinator one call at a time."""

    def __init__(
        self,
        events: ShardEvents,
        config: DetectorConfig,
        window_config: WindowConfig,
        as_of_ms: int | None,
        record_activity: bool,
    ) -> None:
        self.events = events
        self.store = MemoryStore()
        self.engine = Engine(AccountMonitor(config, window_config), self.store)  # its clock never ticks
        self.monitor = self.engine.monitor
        self.detection = self.engine.detection
        self.as_of_ms = as_of_ms
        self.activity: dict[str, dict[int, int]] | None = {} if record_activity else None
        self.cancellations: dict[str, int] = {}
        self.folded = OrderedFold()
        self.batch: list[Swept] = []
        self.observed: Observed | None = None
        self.ahead: tuple[Key | None, list[int]] | None = None  # the fold sent with the last observe
        self.gc_freezer = GcFreezer(full_every_s=float("inf"))

    def fold(self, cut: Key | None, rejected: list[int]) -> tuple[int, int]:
        """Fold the events before ``cut`` (all when None) but the ``rejected`` lines; the watermark so far
        and the accounts held."""
        done = fold_in_order(
            self.engine,
            self.store,
            self.events.until(cut, rejected),
            as_of_ms=self.as_of_ms,
            activity=self.activity,
            cancellations=self.cancellations,
            sweeps=False,
        )
        total = self.folded
        total.accepted += done.accepted
        total.after_as_of += done.after_as_of
        total.folded += done.folded
        total.late += done.late
        total.watermark = max(total.watermark, done.watermark)
        if total.first_ts_ms is None:
            total.first_ts_ms = done.first_ts_ms
        return total.watermark, len(self.store.states)

    def census(
        self, settle: GuardDecision | None, fold: tuple[Key, list[int]] | None, now_ms: int, everyone: bool
    ) -> list[CensusRecord]:
        """Settle the last sweep, fold up to a cut (``fold``: the cut and the lines rejected since the last),
        take the accounts due at ``now_ms``; their census records."""
        self.settle(settle)
        if fold is not None:
            self.fold(*fold)
        self.batch = self.detection.prepare(due_accounts(self.store.states.items(), now_ms, everyone))
        return self.monitor.census_records(census_view(self.batch, self.detection.stored_census), now_ms)

    def observe(
        self,
        population: PopulationModel,
        risk_model: RiskModel | None,
        now_ms: int,
        ahead: tuple[Key | None, list[int]] | None,
    ) -> list[Assessment]:
        """Assess the due accounts with the coordinator's population (and model, when it changed); ``ahead``:
        the fold before the next sweep (the cut and the lines rejected since the last), which
        :meth:`catch_up` runs once the assessments are sent."""
        self.monitor.population = population
        if risk_model is not None:
            self.monitor.risk_model = risk_model
        self.observed = self.detection.observe(self.batch, now_ms, now_ms)  # replay: alerts at event time
        self.ahead = ahead
        return self.observed.outcome.assessments

    def catch_up(self) -> None:
        """Run the fold sent ahead with the last observe, if any: while the coordinator reviews the sweep
        (the outage guard) and the other shards finish theirs, instead of after this shard settles it.

        Folding before settling gives one process's results: a fold changes the accounts' windows, event
        counts and new accounts; settling, the detector states and alert books of the accounts observed."""
        if self.ahead is not None:
            self.fold(*self.ahead)
            self.ahead = None

    def settle(self, decision: GuardDecision | None) -> None:
        """The outage guard's decision for this shard's accounts of the last sweep observed."""
        if self.observed is not None and decision is not None:
            self.detection.settle(self.observed, decision)
            self.observed = None
            self.batch = []
            self.gc_freezer.freeze_survivors()

    def finish(self, settle: GuardDecision | None) -> dict[str, Any]:
        """Settle the last sweep; the accounts' final states and records, with their first keys."""
        self.settle(settle)
        events = self.events
        for state in self.store.states.values():
            self.detection.detector_of(state)
        return {
            "states": [(key, state, events.first[key.decode()]) for key, state in self.store.states.items()],
            "activity": [(a, days, events.first_usage[a]) for a, days in (self.activity or {}).items()],
            "cancellations": [(a, ts, events.first_cancel[a]) for a, ts in self.cancellations.items()],
            "folded": self.folded,
        }


_BEFORE_FORK: list[Any] = []  # the SIGINT handler interrupts_held replaced, for the forked shards to restore


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """SIGINT held while the shards fork, then raised: a Ctrl-C that lands inside a fork is raised in a hook
    CPython runs after it (logging's lock release), which prints it as ignored, and the replay ran on to its
    end. A handler that only notes it stands in meanwhile (Python runs handlers in the main thread, whichever
    thread the signal reached); forked shards put the replay's own back first (:func:`shard_main`)."""
    noted: list[tuple[int, FrameType | None]] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # handlers are set in the main thread only; None: one set outside Python, left alone
        return
    before = signal.signal(signal.SIGINT, lambda number, frame: noted.append((number, frame)))
    _BEFORE_FORK[:] = [before]
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        _BEFORE_FORK.clear()
        if noted and callable(before):
            before(*noted[0])  # Python's own raises KeyboardInterrupt
        elif noted and before == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def shard_main(
    conn: Connection,
    parent_pid: int,
    source: str,
    shard: int,
    shards: int,
    rules: InputRules,
    spill_dir: str,
    keep_rejects: bool,
) -> None:
    """The shard process: pass 1, then one :class:`Shard` call per message until ``("stop",)``.

    Replies ``("ok", value)``, or ``("error", kind, text)`` for an exception (the coordinator raises it);
    the exception of a fold sent ahead (:meth:`Shard.catch_up`: nobody waits on it) answers the next call."""
    die_with(parent_pid)
    if _BEFORE_FORK:  # forked while interrupts_held noted SIGINT instead: as the replay had it
        signal.signal(signal.SIGINT, _BEFORE_FORK[0])
    try:
        read, records = read_shard_input(
            source, shard, shards, rules, spill_dir, keep_rejects, SortedInput.share
        )
        conn.send(("ok", read))
        message = conn.recv()
        if message[0] == "stop":  # the coordinator gave up (another shard could not read the file)
            return
        config, window_config, as_of_ms, record_activity = message[1]
        worker = Shard(ShardEvents(records, as_of_ms), config, window_config, as_of_ms, record_activity)
        conn.send(("ok", None))
        while (message := conn.recv())[0] != "stop":
            name, args = message
            conn.send(("ok", getattr(worker, name)(*args)))
            try:
                worker.catch_up()
            except Exception:
                conn.recv()  # nobody waits on a fold sent ahead: its error answers the next call
                raise
    except (EOFError, BrokenPipeError, KeyboardInterrupt):  # the coordinator is gone
        return
    except InputError as error:
        _reply(conn, ("error", "input", str(error)))
    except Exception:
        _reply(conn, ("error", "shard", traceback.format_exc()))


def _reply(conn: Connection, message: tuple[str, ...]) -> None:
    """Send an error to the coordinator, if it still listens."""
    with contextlib.suppress(OSError):
        conn.send(message)
