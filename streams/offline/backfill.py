"""History on day one: fold historical events as replay does and plan the worker's table rows from them.

``churnwatch backfill FILE…`` reads canonical event files (or Segment and Stripe exports mapped by the
gateway's code, :mod:`streams.offline.backfill_exports`) exactly as ``churnwatch replay`` does (the same
validation, event-time sort and deduplication in :mod:`streams.offline.sorted_input`, the same windows,
detectors and alert policy in :func:`streams.offline.replay.run_replay`, the worker's settings). The final
per-account windows and detector states become rows of the worker's ``accounts`` table, in the form the worker
itself stores them (:class:`~streams.engine.AccountState`), each in the changelog partition the worker
reads that account's events from. :mod:`streams.offline.backfill_store` writes them; a worker started
afterwards recovers them with its table and carries on from there.

What the rows carry and what they do not:

- **Baselines, risk and open episodes**: an episode open at the end of history stays open (listed by the
  at-risk API with its history ``since``). The worker raises no ``opened`` alert for it: the episode is
  already open. A later escalation or resolution is caused by live data and is alerted as usual, and so is
  the judgement of the history's last day, made when live usage shows that day complete.
- **No alert for history**: the alerts replay raised while folding are counted, never written to the alerts
  topic, so no sink hears of them and no delivery ledger entry is made for them.
- **No applied offsets**: the history came from files, not from the event topics, so the rows remember no
  offset and the worker folds every record of the topics on top of them (``--live-from end`` makes it start
  at the topics' current ends instead, for topics that already hold part of the history).
- **The engine's own state** (streams/engine/saved.py), as a worker saves it with its table (one copy per
  partition): the risk model learned from the history's outcomes, the population model of its last census
  and the event clock at the history's last day. An outage incident open at the end of history is not
  carried (no alert for history).

Idempotence: a row is written only where the table has none; a row equal to the planned one is left alone,
and an account the worker (or an earlier backfill) already holds different state for is kept, never
overwritten. Running the same backfill twice therefore writes nothing the second time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.partitioner import murmur2

from detectors.risk import RiskModel
from detectors.windows import DAY_MS
from streams.engine import AccountState, Engine, MemoryStore
from streams.engine.state import encode_detector
from streams.engine.store import ENGINE_KEY
from streams.events import EVENT_TYPES
from streams.live.table_store import POSITIONS_KEY
from streams.offline.backfill_exports import ExportFormat, ExportReader, ExportStats
from streams.offline.replay import ReplayResult, run_replay
from streams.offline.replay_input import (
    STDIN,
    InputError,
    InputRules,
    InputStats,
    no_event_summary,
    open_events,
)
from streams.offline.sorted_input import SortedInput, read_source
from streams.settings import Settings

OnProgress = Callable[[str, int], None]  # (phase, lines or events so far)


def account_partition(key: bytes, partitions: int) -> int:
    """The partition an account's events land in: Kafka's default partitioner on the account id key.

    churnwatch's producer, the ingest gateway and Kafka's own clients all key events by account id and
    partition keyed records with murmur2, so this is the partition the worker reads the account from.

    >>> account_partition(b"acme", 8), account_partition(b"acme", 1)
    (4, 0)
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(slots=True, kw_only=True)
class History:
    """What the files held, folded: one stored row per account and the engine state after the history."""

    rows: dict[bytes, bytes]  # account key -> AccountState bytes (the changelog partition inside)
    risk_model: RiskModel
    engine_state: bytes  # the engine's saved state (risk model, population, clock) after the history
    input_stats: InputStats
    events: int  # events folded (valid, deduplicated, within lateness)
    late_events: int
    history_alerts: int  # what replay would have alerted while folding: never sent
    open_episodes: int  # accounts in an open episode at the end of history
    clock_ms: int | None
    fold_s: float
    export_stats: ExportStats | None = None  # what the mapping of a Segment or Stripe export did
    identities: dict[str, str] = field(default_factory=dict)  # user -> account a Segment export taught

    @property
    def events_per_s(self) -> float:
        return self.input_stats.accepted / self.fold_s if self.fold_s > 0 else 0.0


def fold_history(
    sources: Sequence[str | Path],
    settings: Settings,
    *,
    now_ms: int | None = None,
    export: ExportFormat = ExportFormat.CANONICAL,
    on_progress: OnProgress | None = None,
) -> History:
    """Read, sort and fold ``sources`` (files or ``-``) with the worker's settings.

    ``export`` names what the files hold: canonical events, or a Segment or Stripe export mapped by the
    gateway's code (:mod:`streams.offline.backfill_exports`).

    Raises :class:`~streams.offline.replay_input.InputError` when a source cannot be read or none held a valid
    event.
    """
    started = time.perf_counter()
    rules = InputRules.from_settings(settings, now_ms=now_ms)
    config = settings.detection.detector_config()
    exports = ExportReader(export, settings) if export is not ExportFormat.CANONICAL else None
    with SortedInput(rules) as sorted_input:
        for source in sources:
            if exports is None:
                read_source(source, sorted_input, _reporter(on_progress, "read"))
            else:
                with open_events(source) as stream:
                    sorted_input.read(exports.lines(stream), _reporter(on_progress, "read"))
        if not sorted_input.stats.valid:
            names = ", ".join("stdin" if str(s) == STDIN else str(s) for s in sources)
            raise InputError(f"{names} held no valid event ({no_event_summary(sorted_input.stats)})")
        result = run_replay(
            sorted_input,
            config=config,
            window_config=settings.windows.window_config(),
            on_progress=(lambda lines, _: on_progress("fold", lines)) if on_progress else None,
        )
    rows: dict[bytes, bytes] = {}
    open_episodes = 0
    for account, window in result.windows.items():
        key = account.encode()
        detector = result.states[account]
        open_episodes += detector.episode is not None
        state = AccountState(
            window,
            account_partition(key, settings.topics.partitions),
            applied_offsets=[-1] * len(EVENT_TYPES),
            detector=encode_detector(detector.to_state()),
        )
        rows[key] = state.to_bytes()
    assert result.monitor is not None
    return History(
        rows=rows,
        risk_model=result.monitor.risk_model,
        engine_state=_engine_state(result, settings.topics.partitions),
        input_stats=sorted_input.stats,
        events=result.events,
        late_events=result.late_events,
        history_alerts=len(result.alerts),
        open_episodes=open_episodes,
        clock_ms=result.clock_ms,
        fold_s=time.perf_counter() - started,
        export_stats=exports.stats if exports is not None else None,
        identities=dict(exports.segment.learnt) if exports is not None else {},
    )


def _engine_state(result: ReplayResult, partitions: int) -> bytes:
    """The engine state a worker that had folded the history itself would have saved: the history's risk
    model and population model, its clock on every partition, no open pipeline incident."""
    assert result.monitor is not None
    engine = Engine(result.monitor, MemoryStore())
    if result.clock_ms is not None:
        day = result.clock_ms // DAY_MS
        saved = {"day": day, "partitions": {str(p): day for p in range(partitions)}}
        engine.clock.restore(saved, range(partitions))
    return engine.state_bytes()


def plan_identities(history: History, stored: Mapping[bytes, bytes]) -> list[Row]:
    """Identities-topic records for the users a Segment export grouped and the topic does not know yet.

    A user the topic already maps (the gateway saw a ``group`` call live) keeps that account: it is newer.
    """
    rows = []
    for user, account in sorted(history.identities.items()):
        key = user.encode()
        if key not in stored:
            rows.append(Row(None, key, account.encode()))  # as the gateway produces them
    return rows


def _reporter(on_progress: OnProgress | None, phase: str) -> Callable[[int], None] | None:
    if on_progress is None:
        return None
    return lambda lines: on_progress(phase, lines)


@dataclass(frozen=True, slots=True)
class Row:
    """One record to write (``partition`` None: the producer's partitioner picks it by key)."""

    partition: int | None
    key: bytes
    value: bytes


@dataclass(slots=True)
class Plan:
    """The records a backfill writes, and what it found already there."""

    rows: list[Row] = field(default_factory=list)
    written_accounts: int = 0
    unchanged_accounts: int = 0
    kept_accounts: list[str] = field(default_factory=list)  # known with other state: never overwritten
    engine_partitions: int = 0  # partitions given the history's engine state (risk model, population, clock)
    kept_engine_partitions: int = 0  # partitions whose worker saved an engine state of its own: kept
    position_partitions: int = 0  # partitions given a starting position (``--live-from end``)
    identities: list[Row] = field(default_factory=list)  # identities-topic records (user -> account)
    known_identities: int = 0  # users of the export the identities topic already maps: kept


def plan_rows(
    history: History,
    stored: Mapping[bytes, bytes],
    partitions: int,
    *,
    live_from: Mapping[int, Mapping[str, int]] | None = None,
) -> Plan:
    """The rows to write given the table's current rows ``stored`` (its compacted changelog).

    ``live_from`` (partition -> {topic: offset}) are the event-topic positions the worker should start
    from, written only for partitions without a stored position (a worker that already read them keeps its
    own).
    """
    plan = Plan()
    for key in sorted(history.rows):
        value = history.rows[key]
        current = stored.get(key)
        if current is None:
            plan.rows.append(Row(AccountState.partition_of(value), key, value))
            plan.written_accounts += 1
        elif current == value:
            plan.unchanged_accounts += 1
        else:
            plan.kept_accounts.append(key.decode(errors="replace"))
    for partition in range(partitions):
        key = ENGINE_KEY % partition
        current = stored.get(key)
        if current is None:
            plan.rows.append(Row(partition, key, history.engine_state))
            plan.engine_partitions += 1
        elif current != history.engine_state:
            plan.kept_engine_partitions += 1
    for partition, offsets in sorted((live_from or {}).items()):
        key = POSITIONS_KEY % partition
        if key not in stored:
            plan.rows.append(Row(partition, key, orjson.dumps(dict(offsets))))
            plan.position_partitions += 1
    return plan
