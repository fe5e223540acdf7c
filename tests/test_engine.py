"""The engine live and replay both drive: live mode (Kafka-like batches, checkpoints, a restart from the
stored rows) gives the same alerts and the same final states as replay of the same events, with one
partition and with several. No Kafka."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from detectors.alerts import Alert
from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import DAY_MS, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine import AccountState, CachedStore, Engine, SweepOutcome
from streams.engine.store import ENGINE_KEY, RESERVED_PREFIX
from streams.live.ingest import BatchFolder, RawRecord
from streams.offline.replay import ReplayResult, run_replay

START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday; no simulator holiday in the weeks after it
CFG = WindowConfig()
# Several partitions: a partition ahead of the event clock has folded events of the new day when a midnight is
# swept, and its windows' retention follows their newest event, so they may have dropped the 56th day back,
# which replay still reads at that sweep (the ``decline`` and ``trend_8w`` features). A retention 4 days
# longer than the detectors read keeps that day; the rest of the difference is the sweep's to hide.
WIDE = WindowConfig(retention_days=60)
TOPIC_OF = {"usage": "churnwatch.usage", "support": "churnwatch.support", "billing": "churnwatch.billing"}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(Simulation(SimulationConfig(seed=21, accounts=60, days=70, start=START)).events())


@pytest.fixture(scope="module")
def replayed(events: list[dict[str, Any]]) -> ReplayResult:
    return run_replay(orjson.dumps(event) for event in events)


@pytest.fixture(scope="module")
def replayed_wide(events: list[dict[str, Any]]) -> ReplayResult:
    return run_replay((orjson.dumps(event) for event in events), window_config=WIDE)


def records_of(events: list[dict[str, Any]], partitions: int) -> list[RawRecord]:
    """The events as Kafka would hand them over: keyed by account, offsets per topic and partition."""
    next_offset: dict[tuple[str, int], int] = {}
    records = []
    for event in events:
        key = event["account_id"].encode()
        partition = zlib.crc32(key) % partitions
        topic = TOPIC_OF[event["type"]]
        offset = next_offset.get((topic, partition), 0)
        next_offset[topic, partition] = offset + 1
        records.append(RawRecord(event["type"], key, orjson.dumps(event), topic, partition, offset))
    return records


@dataclass
class LiveRun:
    """The live worker's use of the engine, without Kafka: a dict stands in for the Faust table."""

    partitions: int
    config: WindowConfig = CFG
    rows: dict[bytes, bytes] = field(default_factory=dict)  # what survives a restart
    alerts: list[Alert] = field(default_factory=list)  # raised before the last checkpoint
    pending: list[Alert] = field(default_factory=list)  # raised since: raised again if the worker restarts
    checkpointed: int = 0  # records before this index are applied in ``rows``
    holdout_member: Callable[[str], bool] | None = None  # a holdout experiment: sweeps settle its uplift
    clock_hold_ms: int | None = None  # let reported sparse topics hold the event clock (the live worker)
    now_ms: int = 0  # the wall clock those holds are measured with
    detector_config: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        """A worker (re)starting: a fresh engine and cache over the stored rows, state taken back."""
        self.pending = []
        owned = list(range(self.partitions))
        self.store = CachedStore(self.rows, self.config, lambda: owned, cache_limit=25)
        monitor = AccountMonitor(self.detector_config, self.config)
        self.engine = Engine(
            monitor,
            self.store,
            wall_clock=lambda: 1,
            on_sweep=self.swept,
            holdout_member=self.holdout_member,
            clock_hold_ms=self.clock_hold_ms,
            monotonic=lambda: self.now_ms,
        )
        self.engine.restore(owned)
        # The input side of the live worker; its wall clock far enough ahead for every event.
        self.folder = BatchFolder(
            window_config=self.config, max_event_bytes=65_536, max_future_skew_ms=0, clock=lambda: 2**62
        )

    def swept(self, outcome: SweepOutcome) -> None:
        self.pending.extend(outcome.alerts)

    def process(self, records: list[RawRecord]) -> None:
        arrivals, dead = self.folder.decode(records)
        assert dead == []
        result = self.engine.fold(arrivals)
        assert result.late == []

    def checkpoint(self, position: int) -> None:
        self.engine.checkpoint()
        self.store.commit()
        self.checkpointed = position
        self.alerts.extend(self.pending)
        self.pending = []


def batches(count: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """(first, end) of batches of varying size covering ``range(count)``."""
    first = 0
    while first < count:
        end = min(count, first + rng.choice([1, 3, 50, 400, 2_000]))
        yield first, end
        first = end


def run_live(
    records: list[RawRecord],
    partitions: int,
    seed: int,
    restarts: int,
    config: WindowConfig = CFG,
    holdout_member: Callable[[str], bool] | None = None,
    kind: type[LiveRun] = LiveRun,
) -> LiveRun:
    """Batches of varying size, checkpoints now and then, and restarts that lose what was not checkpointed:
    the worker reads again from the checkpoint, or from before it (records applied twice must not count).
    ``kind``: the :class:`LiveRun` that drives the engine."""
    rng = random.Random(seed)
    live = kind(partitions, config, holdout_member=holdout_member)
    restart_at = sorted(rng.sample(range(len(records) // 10, len(records)), restarts))
    position = 0
    while position < len(records):
        for first, end in batches(len(records) - position, rng):
            live.process(records[position + first : position + end])
            if rng.random() < 0.3:
                live.checkpoint(position + end)
            if restart_at and position + end >= restart_at[0]:
                restart_at.pop(0)
                live.start()  # the cache, the engine and anything not checkpointed are gone
                back = rng.choice([0, 0, 500])  # at least once: some records before the checkpoint again
                position = max(0, live.checkpointed - back)
                break
        else:
            position = len(records)
    return live


def comparable(alert: Alert) -> dict[str, Any]:
    """An alert without its processing-time stamp (live stamps the wall clock, replay the event time)."""
    body = alert.to_dict()
    body.pop("detected_ts_ms", None)
    return body


def stored_states(rows: dict[bytes, bytes], config: WindowConfig = CFG) -> dict[bytes, tuple[Any, Any]]:
    return {
        key: (state.window.to_state(), state.detector)
        for key, raw in rows.items()
        if not key.startswith(RESERVED_PREFIX)
        for state in [AccountState.from_bytes(raw, config)]
    }


def replay_states(replayed: ReplayResult) -> dict[bytes, tuple[Any, Any]]:
    return {key: (state.window.to_state(), state.detector) for key, state in replayed.account_states.items()}


def finish_live(live: LiveRun, clock_ms: int) -> None:
    live.engine.sweep(clock_ms, everyone=True)
    live.checkpoint(live.checkpointed)


def assert_live_equals_replay(live: LiveRun, replayed: ReplayResult) -> None:
    """The same alerts in the same order, the same stored states, the same risk model in every partition."""
    assert len(replayed.alerts) >= 10  # the simulation has churners worth flagging
    # Each alert once, in the same order: none lost in a restart, none raised twice for good.
    assert [comparable(alert) for alert in live.alerts] == [comparable(alert) for alert in replayed.alerts]
    assert stored_states(live.rows, live.config) == replay_states(replayed)
    assert replayed.monitor is not None
    expected = orjson.loads(orjson.dumps(replayed.monitor.risk_model.to_state()))
    for partition in range(live.partitions):
        assert orjson.loads(live.rows[ENGINE_KEY % partition])["model"] == expected


@pytest.mark.parametrize(("seed", "restarts"), [(1, 0), (2, 1), (3, 3), (6, 3)])
def test_live_mode_equals_replay(
    events: list[dict[str, Any]], replayed: ReplayResult, seed: int, restarts: int
) -> None:
    records = records_of(events, partitions=1)
    live = run_live(records, partitions=1, seed=seed, restarts=restarts)
    finish_live(live, replayed.clock_ms or 0)
    assert_live_equals_replay(live, replayed)


@pytest.mark.parametrize(("partitions", "seed", "restarts"), [(3, 4, 0), (3, 5, 2), (4, 7, 3)])
def test_live_mode_with_several_partitions_equals_replay(
    events: list[dict[str, Any]], replayed_wide: ReplayResult, partitions: int, seed: int, restarts: int
) -> None:
    """The clock sweeps a midnight once the slowest partition's usage reaches it; the others have folded
    events of the new day by then, which the sweep does not see (``AccountWindow.as_of``), as replay of the
    time-sorted file has not folded them yet. (``WIDE``: why the windows keep 4 more days here.)"""
    records = records_of(events, partitions=partitions)
    live = run_live(records, partitions=partitions, seed=seed, restarts=restarts, config=WIDE)
    finish_live(live, replayed_wide.clock_ms or 0)
    assert_live_equals_replay(live, replayed_wide)


def test_the_comparison_sees_a_divergence(events: list[dict[str, Any]], replayed: ReplayResult) -> None:
    """Live that skips one sweep (a restart that forgot its event clock) no longer equals replay."""
    records = records_of(events, partitions=1)
    live = LiveRun(1)
    middle = len(records) // 2
    live.process(records[:middle])
    live.checkpoint(middle)
    live.rows = {k: v for k, v in live.rows.items() if k != ENGINE_KEY % 0}  # the saved clock is lost
    live.start()
    live.process(records[middle:])
    finish_live(live, replayed.clock_ms or 0)
    assert [comparable(a) for a in live.alerts] != [comparable(a) for a in replayed.alerts] or stored_states(
        live.rows
    ) != {key: (s.window.to_state(), s.detector) for key, s in replayed.account_states.items()}


def test_midnight_between_a_checkpoint_and_a_restart_is_swept_once() -> None:
    """The event clock is saved with the states: the first usage after a restart sweeps the midnights the
    worker crossed since, and none twice."""
    sweeps: list[int] = []
    rows: dict[bytes, bytes] = {}

    def engine() -> Engine:
        store = CachedStore(rows, CFG, lambda: [0])
        built = Engine(
            AccountMonitor(DetectorConfig(), CFG), store, on_sweep=lambda o: sweeps.append(o.now_ms)
        )
        built.restore([0])
        return built

    def usage(day: int, offset: int) -> list[RawRecord]:
        body = {"type": "usage", "account_id": "acme", "ts": day * DAY_MS + 3_600_000, "event": "login"}
        return [RawRecord("usage", b"acme", orjson.dumps(body), "u", 0, offset)]

    folder = BatchFolder(window_config=CFG, max_event_bytes=4096, max_future_skew_ms=0, clock=lambda: 2**62)
    first = engine()
    first.fold(folder.decode(usage(20_000, 0))[0])
    first.fold(folder.decode(usage(20_001, 1))[0])
    first.checkpoint()
    first.store.commit()  # type: ignore[attr-defined]
    second = engine()
    second.fold(folder.decode(usage(20_001, 1))[0])  # read again after the restart: nothing new
    second.fold(folder.decode(usage(20_003, 2))[0])
    assert [ms // DAY_MS for ms in sweeps] == [20_001, 20_002, 20_003]
