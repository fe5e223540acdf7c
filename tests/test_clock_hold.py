"""Sparse topics read behind usage hold the event clock (``SparseHolds``): live equals replay when each
period's support and billing events are folded after its usage, as a consumer that fetches the usage topic
first folds them. No Kafka (tests/test_detection_live.py has the broker's version)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from detectors.alerts import Transition
from detectors.config import DetectorConfig
from detectors.windows import DAY_MS
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine.clock import SPARSE_TYPES, EventClock, SparseHolds, SparseKey
from streams.live.ingest import RawRecord
from streams.offline.replay import ReplayResult, run_replay
from tests.test_engine import START, LiveRun, finish_live, records_of

PARTITIONS = 2
HOLD_MS = 30_000
HALFWAY = START + timedelta(days=28)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(Simulation(SimulationConfig(seed=21, accounts=60, days=56, start=START)).events())


@pytest.fixture(scope="module")
def replayed(events: list[dict[str, Any]]) -> ReplayResult:
    return run_replay(orjson.dumps(event) for event in events)


def usage_first(records: list[RawRecord]) -> list[RawRecord]:
    """The records as a consumer that fetches the usage topic first hands them over."""
    return [r for r in records if r.event_type == "usage"] + [r for r in records if r.event_type != "usage"]


def periods(events: list[dict[str, Any]]) -> list[list[RawRecord]]:
    """Four weeks, then the next four; each produced at once and read usage first (the records keep the
    offsets of the whole file)."""
    records = records_of(events, partitions=PARTITIONS)
    first = [r for r, e in zip(records, events, strict=True) if datetime.fromisoformat(e["ts"]) < HALFWAY]
    later = [r for r, e in zip(records, events, strict=True) if datetime.fromisoformat(e["ts"]) >= HALFWAY]
    return [usage_first(first), usage_first(later)]


class Topics:
    """What the driver knows of the sparse topics: which records were produced, which were handed over."""

    def __init__(self) -> None:
        self.produced: dict[SparseKey, int] = {}
        self.read: dict[SparseKey, int] = {}

    def produce(self, records: list[RawRecord]) -> None:
        for record in records:
            if record.event_type in SPARSE_TYPES:
                key = (record.partition, record.event_type)
                self.produced[key] = max(self.produced.get(key, 0), record.offset + 1)

    def hand_over(self, records: list[RawRecord]) -> None:
        for record in records:
            if record.event_type in SPARSE_TYPES:
                self.read[record.partition, record.event_type] = record.offset + 1

    def backlogs(self) -> dict[SparseKey, bool]:
        """Every sparse topic partition, with whether records past what was handed over were produced."""
        return {
            (partition, event_type): self.read.get((partition, event_type), 0)
            < self.produced.get((partition, event_type), 0)
            for partition in range(PARTITIONS)
            for event_type in SPARSE_TYPES
        }


def batches(records: list[RawRecord], rng: random.Random) -> Iterator[list[RawRecord]]:
    first = 0
    while first < len(records):
        end = min(len(records), first + rng.choice([50, 500, 2_000]))
        yield records[first:end]
        first = end


def run_usage_first(
    events: list[dict[str, Any]],
    *,
    hold_ms: int | None,
    restarts: int,
    seed: int,
    detector_config: DetectorConfig | None = None,
) -> LiveRun:
    """Each period produced, then read usage first in batches; the driver reports the sparse topics'
    backlogs before each batch. A restart re-reads from the last checkpoint (every batch checkpoints)."""
    rng = random.Random(seed)
    live = LiveRun(PARTITIONS, clock_hold_ms=hold_ms, detector_config=detector_config or DetectorConfig())
    topics = Topics()
    all_batches = []
    for part in periods(events):
        all_batches.append(("produce", part))
        all_batches.extend(("read", batch) for batch in batches(part, rng))
    restart_at = set(rng.sample(range(len(all_batches)), restarts))
    for index, (what, records) in enumerate(all_batches):
        if what == "produce":
            topics.produce(records)
            continue
        live.engine.report_sparse(topics.backlogs())
        live.process(records)
        topics.hand_over(records)
        live.checkpoint(0)
        if index in restart_at:
            live.start()  # everything was checkpointed: the engine is rebuilt from the stored rows
    live.engine.report_sparse(topics.backlogs())
    return live


def opened(alerts: list[Any]) -> set[str]:
    return {alert.account_id for alert in alerts if alert.transition is Transition.OPENED}


def outline(alert: Any) -> tuple[str, str, str, int]:
    return (alert.account_id, alert.transition.value, alert.severity.value, alert.event_ts_ms // DAY_MS)


def assert_like_replay(live: LiveRun, replayed: ReplayResult) -> None:
    """The same alerts (account, transition, severity, day) in the same order, risks within 0.001, and a
    risk model that learned as many outcomes. Not byte-identical: a sweep the hold delays runs after billing
    events folded ahead of it, whose plan and MRR the window keeps only as the newest (docs/engine.md,
    "Topics read at different speeds"); 3 of 25 alerts differ in the fourth decimal of their risk."""
    assert len(opened(replayed.alerts)) >= 10
    assert [outline(a) for a in live.alerts] == [outline(a) for a in replayed.alerts]
    assert max(abs(a.risk - b.risk) for a, b in zip(live.alerts, replayed.alerts, strict=True)) < 0.001
    assert replayed.monitor is not None
    learned = live.engine.detection.risk_model
    assert (learned.n_positives, learned.n_negatives) == (
        replayed.monitor.risk_model.n_positives,
        replayed.monitor.risk_model.n_negatives,
    )


@pytest.mark.parametrize(("seed", "restarts"), [(1, 0), (2, 2)])
def test_sparse_topics_read_behind_usage_hold_the_clock(
    events: list[dict[str, Any]], replayed: ReplayResult, seed: int, restarts: int
) -> None:
    live = run_usage_first(events, hold_ms=HOLD_MS, restarts=restarts, seed=seed)
    # Everything read, the sparse topics caught up: the clock follows usage again (no wait for them by
    # default, ``clock_idle_seconds``=0).
    clock = live.engine.clock
    assert clock.day == min(clock.partition_days.values())
    finish_live(live, replayed.clock_ms or 0)
    assert_like_replay(live, replayed)


def test_without_the_hold_the_sweeps_miss_the_sparse_events(events: list[dict[str, Any]]) -> None:
    """The same reading order without holds (the engine before them): far from replay.

    Both without the *spell* hold (``DetectorConfig.spell_hold``, issue 14's eighth pass), as when this
    test was written: in this small base it holds back 2 of replay's 15 alerts, both among those the live
    run misses, leaving 8 shared of 13 (62 %, against the bound of 60 %); the clock is what is compared."""
    unheld = DetectorConfig(spell_hold=False)
    replayed = run_replay((orjson.dumps(event) for event in events), config=unheld)
    live = run_usage_first(events, hold_ms=None, restarts=0, seed=1, detector_config=unheld)
    finish_live(live, replayed.clock_ms or 0)
    assert len(opened(live.alerts) & opened(replayed.alerts)) < 0.6 * len(opened(replayed.alerts))


def usage_at(day: int, partition: int = 0) -> tuple[int, int]:
    return partition, day * DAY_MS + 3_600_000


def test_a_stuck_sparse_topic_holds_the_clock_for_the_bound_at_most() -> None:
    """Measured with an injected wall clock: a backlog that makes no progress lets the clock go after
    ``bound_ms``; an event read from it starts the hold again; a caught-up topic partition does not hold."""
    now = [0]
    clock = EventClock(SparseHolds(30_000, 0, lambda: now[0]))
    clock.advance(*usage_at(10))
    assert clock.sparse(0, "support", 10 * DAY_MS) == []
    backlogs = {(0, "support"): True, (0, "billing"): False}
    assert clock.report(backlogs) == []
    assert clock.advance(*usage_at(13)) == []  # support holds at its day 10; billing is caught up
    now[0] = 29_999
    assert clock.report(backlogs) == []
    now[0] = 30_000  # the bound ran out: usage alone moves the clock
    assert [m // DAY_MS for m in clock.report(backlogs)] == [11, 12, 13]
    assert clock.advance(*usage_at(14)) == [14 * DAY_MS]  # still stuck: no longer holds
    # Progress (an event read from it) holds again, at its newest day, for a new bound.
    assert clock.sparse(0, "support", 12 * DAY_MS) == []
    assert clock.advance(*usage_at(15)) == []
    now[0] = 59_999
    assert clock.report(backlogs) == []
    assert [m // DAY_MS for m in clock.sparse(0, "support", 15 * DAY_MS + 1)] == [15]
    # Billing (no event read yet) holds at the clock's day once it has a backlog to read.
    assert clock.report({(0, "support"): False, (0, "billing"): True}) == []
    assert clock.advance(*usage_at(16)) == []
    now[0] = 59_999 + 30_000
    assert [m // DAY_MS for m in clock.report({(0, "support"): False, (0, "billing"): True})] == [16]


def test_a_caught_up_sparse_topic_holds_the_clock_for_the_idle_time() -> None:
    """``idle_ms``: a caught-up topic partition holds too (events may still be produced), for that long from
    when it first stopped a midnight; a backlog reported afterwards holds for the longer bound."""
    now = [0]
    clock = EventClock(SparseHolds(30_000, 5_000, lambda: now[0]))
    clock.advance(*usage_at(10))
    assert clock.report({(0, "support"): False}) == []
    assert clock.advance(*usage_at(12)) == []
    now[0] = 4_999
    assert clock.report({(0, "support"): False}) == []
    now[0] = 5_000
    assert [m // DAY_MS for m in clock.report({(0, "support"): False})] == [11, 12]
    assert clock.advance(*usage_at(13)) == [13 * DAY_MS]  # quiet since: no longer holds
    assert clock.report({(0, "support"): True}) == []  # records to read: a hold of its own
    assert clock.advance(*usage_at(14)) == []
    now[0] = 5_000 + 29_999
    assert clock.report({(0, "support"): True}) == []


def test_holds_are_saved_with_the_clock_and_forgotten_for_partitions_handed_over() -> None:
    """The sparse topics' days survive a restart; a rebalance drops other partitions' and the reports."""
    clock = EventClock(SparseHolds(30_000, 0, lambda: 0))
    clock.advance(*usage_at(10))
    clock.advance(*usage_at(10, partition=1))
    clock.sparse(0, "billing", 9 * DAY_MS)
    clock.sparse(1, "support", 10 * DAY_MS)
    restored = EventClock(SparseHolds(30_000, 0, lambda: 0))
    restored.restore(orjson.loads(orjson.dumps(clock.to_state())), [0])
    assert restored.sparse_days == {(0, "billing"): 9}
    restored.report({(0, "billing"): True})
    assert restored.advance(*usage_at(12)) == []  # held at billing's day 9 (the clock is on day 10)
    restored.retain([1])
    assert restored.holds is not None and restored.holds.read == {}
    assert restored.sparse_days == {}


def test_replay_reports_no_sparse_topic_and_is_never_held() -> None:
    clock = EventClock()
    clock.advance(*usage_at(10))
    assert clock.report({(0, "support"): True}) == []
    clock.sparse(0, "support", 2 * DAY_MS)
    assert [m // DAY_MS for m in clock.advance(*usage_at(12))] == [11, 12]
