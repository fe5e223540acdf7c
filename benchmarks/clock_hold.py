"""Sparse topics read behind usage, with and without the event clock's holds (no Kafka).

60 simulated accounts, 56 days (seed 21), two partitions, fed to the engine as the live worker feeds it
(``tests/test_engine.py``'s ``LiveRun``; the driver reports the support and billing topic partitions that
still have records to read before each batch, as the worker does from position and high watermark), in
these reading orders:

* ``usage_first_split``: four weeks of every account with all their usage before their support and billing,
  then the last four weeks of partition 0, then of partition 1, each usage first (the CI failure's shape);
* ``usage_first``: four weeks, then the next four, each usage first (``tests/test_clock_hold.py``);
* ``in_order``: the same two periods in time order;
* ``chunks<seed>``: each topic partition read in chunks of 50-3,000 records, the chunks interleaved at
  random (six seeds).

For each: replay's opened accounts the engine also opened, the positives its risk model learned against
replay's, and alerts identical to replay's (all fields but the detection stamp). At the end of each run the
sparse topics are caught up and the holds' bound runs out (the injected wall clock moves past it).

    .venv/bin/python benchmarks/clock_hold.py

Figures go to docs/engine.md ("Topics read at different speeds").
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.alerts import Transition
from streams.dev.simulator import Simulation, SimulationConfig
from streams.live.ingest import RawRecord
from streams.offline.replay import run_replay
from tests.test_clock_hold import HALFWAY, HOLD_MS, PARTITIONS, Topics, usage_first
from tests.test_engine import START, LiveRun, comparable, finish_live, records_of

Order = Callable[[list[RawRecord], random.Random], list[RawRecord]]


def chunks(records: list[RawRecord], rng: random.Random) -> list[RawRecord]:
    streams: dict[tuple[str, int], list[RawRecord]] = {}
    for record in records:
        streams.setdefault((record.event_type, record.partition), []).append(record)
    done = dict.fromkeys(streams, 0)
    out: list[RawRecord] = []
    while any(done[key] < len(rows) for key, rows in streams.items()):
        key = rng.choice([key for key in streams if done[key] < len(streams[key])])
        size = rng.choice([50, 200, 1_000, 3_000])
        out += streams[key][done[key] : done[key] + size]
        done[key] += size
    return out


def periods(events: list[dict[str, Any]], *, split: bool) -> list[list[RawRecord]]:
    records = records_of(events, partitions=PARTITIONS)
    before = [datetime.fromisoformat(e["ts"]) < HALFWAY for e in events]
    first = [r for r, b in zip(records, before, strict=True) if b]
    later = [r for r, b in zip(records, before, strict=True) if not b]
    if not split:
        return [first, later]
    return [first, *([r for r in later if r.partition == p] for p in range(PARTITIONS))]


def run(parts: list[list[RawRecord]], order: Order, hold_ms: int | None, seed: int) -> LiveRun:
    rng = random.Random(seed)
    live = LiveRun(PARTITIONS, clock_hold_ms=hold_ms)
    topics = Topics()
    for part in parts:
        topics.produce(part)
        ordered = order(part, rng)
        for first in range(0, len(ordered), 500):
            batch = ordered[first : first + 500]
            live.engine.report_sparse(topics.backlogs())
            live.process(batch)
            topics.hand_over(batch)
            live.checkpoint(0)
    live.now_ms += HOLD_MS
    live.engine.report_sparse(topics.backlogs())
    return live


def main() -> None:
    events = list(Simulation(SimulationConfig(seed=21, accounts=60, days=56, start=START)).events())
    replayed = run_replay(orjson.dumps(event) for event in events)
    assert replayed.monitor is not None
    opened = {a.account_id for a in replayed.alerts if a.transition is Transition.OPENED}
    expected = [comparable(a) for a in replayed.alerts]
    print(
        f"replay: {len(opened)} opened, {len(expected)} alerts, "
        f"{replayed.monitor.risk_model.n_positives} positives learned"
    )
    cases: list[tuple[str, bool, Order, int]] = [
        ("usage_first_split", True, lambda records, rng: usage_first(records), 0),
        ("usage_first", False, lambda records, rng: usage_first(records), 0),
        ("in_order", False, lambda records, rng: records, 0),
        *((f"chunks{seed}", False, chunks, seed) for seed in range(6)),
    ]
    print("| reading order | holds | opened (of replay's) | positives | identical alerts |")
    print("|---|---|---|---|---|")
    for name, split, order, seed in cases:
        for hold_ms in (None, HOLD_MS):
            live = run(periods(events, split=split), order, hold_ms, seed)
            finish_live(live, replayed.clock_ms or 0)
            live_opened = {a.account_id for a in live.alerts if a.transition is Transition.OPENED}
            same = sum(comparable(a) in expected for a in live.alerts)
            print(
                f"| {name} | {'yes' if hold_ms else 'no'} | {len(live_opened & opened)} of {len(opened)}"
                f" (+{len(live_opened - opened)}) | {live.engine.detection.risk_model.n_positives} |"
                f" {same} of {len(expected)} ({len(live.alerts)} raised) |"
            )


if __name__ == "__main__":
    main()
