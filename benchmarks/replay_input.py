"""What replay's input side costs: validation, sorting (in memory and spilled), deduplication, per line.

Usage::

    .venv/bin/python benchmarks/replay_input.py --accounts 300 --days 120 --seed 3
    .venv/bin/python benchmarks/replay_input.py --events existing.jsonl --spill-mb 4

On the same lines (held in memory, so disk speed is out of the picture), in a random order:

1. pass 1 (decode with the live limits, event key, buffer) and pass 2 (merge, future_ts, deduplication),
   with everything sorted in memory, then with runs spilled every ``--spill-mb`` MB;
2. the memory a buffered line costs (tracemalloc), next to its length;
3. :class:`~streams.dedup.Deduplicator` alone, per event, and its bytes per remembered key;
4. the live path's :class:`~streams.live.ingest.BatchFolder` (batches of 2,000, in time order): decoding
   alone (``decode``), then decoding and folding with and without the deduplicator.

Timings are CPU time of this process (``time.process_time``: other load on a shared machine inflates
wall-clock figures several times); never assert on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import orjson

from detectors.windows import WindowConfig
from streams.dedup import Deduplicator
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.events import validate
from streams.live.ingest import AccountState, BatchFolder, RawRecord
from streams.offline.replay_input import InputRules
from streams.offline.sorted_input import SortedInput

RULES = InputRules(
    max_event_bytes=65_536,
    max_future_skew_ms=86_400_000,
    dedup_horizon_ms=2 * 86_400_000,
    dedup_max_keys=250_000,
)


def passes(lines: list[bytes], rules: InputRules) -> tuple[float, float, int]:
    """(µs per line of pass 1, of pass 2, spilled runs)."""
    started = time.process_time()
    with SortedInput(rules) as source:
        source.read(iter(lines))
        read = time.process_time()
        accepted = sum(1 for _ in source)
        merged = time.process_time()
    assert accepted + source.stats.duplicates == len(lines)
    n = len(lines)
    return (read - started) / n * 1e6, (merged - read) / n * 1e6, source.stats.spilled_runs


def buffered_bytes(lines: list[bytes]) -> float:
    tracemalloc.start()
    source = SortedInput(RULES)
    source.read(iter(lines))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / len(lines)


def dedup_cost(n: int) -> tuple[float, float]:
    """(µs per is_duplicate, bytes per remembered key) for ``n`` distinct keys one second apart."""
    keys = [random.getrandbits(63) for _ in range(n)]

    def fill() -> Deduplicator:
        dedup = Deduplicator(horizon_ms=10**15, max_keys=n)
        for index, key in enumerate(keys):
            dedup.is_duplicate(key, 1_795_687_200_000 + index * 1000, origin=index)
        return dedup

    started = time.process_time()
    fill()
    elapsed = time.process_time() - started
    tracemalloc.start()  # apart from the timing: tracing slows allocation down
    kept = fill()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == n
    return elapsed / n * 1e6, current / n


def live_fold_cost(lines: list[bytes]) -> tuple[float, float, float]:
    """(µs per record of decoding alone (best of 3), of folding without, with the deduplicator) of the lines
    as Kafka records in batches of 2,000."""
    records = [
        RawRecord(body["type"], body["account_id"].encode(), line, "t", 0, offset)
        for offset, (line, body) in enumerate(zip(lines, map(orjson.loads, lines), strict=True))
    ]
    now_ms = max(validate(orjson.loads(line), min_ts_ms=None).ts_ms for line in lines)
    decoder = BatchFolder(
        window_config=WindowConfig(),
        max_event_bytes=RULES.max_event_bytes,
        max_future_skew_ms=RULES.max_future_skew_ms,
        clock=lambda: now_ms,
    )
    decoding = []
    for _ in range(3):
        started = time.process_time()
        for first in range(0, len(records), 2000):
            decoder.decode(records[first : first + 2000])
        decoding.append((time.process_time() - started) / len(records) * 1e6)
    costs = [min(decoding)]
    for dedup in (None, Deduplicator(horizon_ms=RULES.dedup_horizon_ms, max_keys=RULES.dedup_max_keys)):
        folder = BatchFolder(
            window_config=WindowConfig(),
            max_event_bytes=RULES.max_event_bytes,
            max_future_skew_ms=RULES.max_future_skew_ms,
            clock=lambda: now_ms,
            deduplicator=dedup,
        )
        states: dict[bytes, AccountState] = {}
        started = time.process_time()
        for first in range(0, len(records), 2000):
            folder.fold(records[first : first + 2000], lambda key: None, states=states)
        costs.append((time.process_time() - started) / len(records) * 1e6)
    return costs[0], costs[1], costs[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=Path, help="An existing JSONL event file (else simulate one).")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--spill-mb", type=float, default=4.0, help="Sort buffer of the spilled run.")
    args = parser.parse_args()
    if args.events is None:
        folder = Path(tempfile.mkdtemp(prefix="churnwatch-bench-"))
        args.events = folder / "events.jsonl"
        start = datetime(2026, 6, 1, tzinfo=UTC)
        config = SimulationConfig(seed=args.seed, accounts=args.accounts, days=args.days, start=start)
        write_jsonl(Simulation(config), args.events)
    lines = args.events.read_bytes().splitlines()
    decoding, without, with_dedup = live_fold_cost(lines)
    print(f"live decode alone: {decoding:.2f} µs/record (best of 3)")
    print(f"live fold: {without:.1f} µs/record without the deduplicator, {with_dedup:.1f} with it")
    random.Random(1).shuffle(lines)
    print(f"{len(lines):,} lines, {sum(map(len, lines)) / len(lines):.0f} bytes each on average, shuffled")
    for name, rules in (
        ("in memory", RULES),
        (
            f"spilled every {args.spill_mb} MB",
            dataclasses.replace(RULES, sort_memory_bytes=int(args.spill_mb * 2**20)),
        ),
    ):
        first, second, runs = passes(lines, rules)
        print(f"{name}: pass 1 {first:.1f} µs/line, pass 2 {second:.1f} µs/line, {runs} spilled runs")
    print(f"memory per buffered line: {buffered_bytes(lines):.0f} bytes")
    per_op, per_key = dedup_cost(min(len(lines), 200_000))
    print(f"deduplicator alone: {per_op:.2f} µs per event, {per_key:.0f} bytes per remembered key")


if __name__ == "__main__":
    main()
