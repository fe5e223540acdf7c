"""Garbage-collector pauses in the live worker's use of the engine, with and without ``GcFreezer`` (issue 15).

The engine in live mode, in-process (no Kafka, so the figures are the engine's own): a simulated file read
in batches of 2,000 records over 8 partitions, a checkpoint (``Engine.checkpoint`` + ``CachedStore.commit``)
every 10 batches, a cache of 50 k decoded states, sweeps at each UTC midnight of the event clock. Each run
records every collection's pause (``gc.callbacks``) and each batch's processing time, then counts the
unreachable objects a final full collection finds (garbage cycles a frozen heap would have kept).

    .venv/bin/python benchmarks/gc_pauses.py --accounts 10000 --days 30 --events 1000000
    .venv/bin/python benchmarks/gc_pauses.py --replay --accounts 2000 --days 60

``--replay`` instead times ``run_replay`` over the whole file, with its ``GcFreezer`` and with it switched off
(``freeze_survivors`` patched to do nothing): CPU seconds, time in the collector, the same alerts.

Figures: docs/performance.md, "Alert latency" and "Offline replay against parsing speed". Pauses are wall
time (``perf_counter``), so on a loaded machine they include waits for the CPU; ``cpu_s`` does not.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.windows import WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.engine import CachedStore, Engine
from streams.gc_freeze import GcFreezer
from streams.live.ingest import BatchFolder, RawRecord
from streams.offline.replay import run_replay

PARTITIONS = 8
BATCH = 2_000
CHECKPOINT_EVERY = 10


@dataclass
class Pauses:
    """Collections seen through ``gc.callbacks``: (generation, seconds)."""

    pauses: list[tuple[int, float]] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))


def batches(path: Path, limit: int) -> Iterator[list[RawRecord]]:
    """The file's first ``limit`` lines as Kafka would hand them over, in batches."""
    offsets: dict[tuple[str, int], int] = {}
    batch: list[RawRecord] = []
    with path.open("rb") as lines:
        for count, raw in enumerate(lines, 1):
            line = raw.rstrip(b"\n")
            event = orjson.loads(line)
            key = event["account_id"].encode()
            partition = zlib.crc32(key) % PARTITIONS
            offset = offsets.get((event["type"], partition), 0)
            offsets[event["type"], partition] = offset + 1
            batch.append(RawRecord(event["type"], key, line, event["type"], partition, offset))
            if len(batch) == BATCH or count == limit:
                yield batch
                batch = []
            if count == limit:
                return
    if batch:
        yield batch


def run(path: Path, limit: int, freeze: bool) -> dict[str, float | int | str]:
    window_config = WindowConfig()
    owned = list(range(PARTITIONS))
    store = CachedStore({}, window_config, lambda: owned, cache_limit=50_000)
    alerts: list[int] = []
    engine = Engine(
        AccountMonitor(DetectorConfig(), window_config),
        store,
        wall_clock=lambda: 1,
        on_sweep=lambda outcome: alerts.append(len(outcome.alerts)),
    )
    engine.restore(owned)
    folder = BatchFolder(
        window_config=window_config, max_event_bytes=65_536, max_future_skew_ms=0, clock=lambda: 2**62
    )
    freezer = GcFreezer(full_every_s=600.0) if freeze else None
    pauses = Pauses()
    gc.collect()
    gc.callbacks.append(pauses)
    times: list[float] = []
    try:
        for number, records in enumerate(batches(path, limit), 1):
            started = time.perf_counter()
            arrivals, _ = folder.decode(records)
            engine.fold(arrivals)
            if number % CHECKPOINT_EVERY == 0:
                engine.checkpoint()
                store.commit()
                if freezer is not None:
                    freezer.freeze_survivors()
            times.append(time.perf_counter() - started)
    finally:
        gc.callbacks.remove(pauses)
    gc.unfreeze()
    unreachable = gc.collect()
    times.sort()
    full = [seconds for generation, seconds in pauses.pauses if generation == 2]
    return {
        "mode": "GcFreezer" if freeze else "default",
        "batches": len(times),
        "sweeps": len(alerts),
        "alerts": sum(alerts),
        "processing_s": round(sum(times), 2),
        "batch_p50_s": round(times[len(times) // 2], 3),
        "batch_p99_s": round(times[int(0.99 * (len(times) - 1))], 3),
        "batch_max_s": round(times[-1], 3),
        "gc_all_s": round(sum(seconds for _, seconds in pauses.pauses), 2),
        "gc_full_count": len(full),
        "gc_full_s": round(sum(full), 2),
        "gc_full_max_s": round(max(full, default=0.0), 3),
        "unreachable_at_end": unreachable,
    }


def replay(path: Path, freeze: bool) -> dict[str, float | int | str]:
    original = GcFreezer.freeze_survivors
    if not freeze:
        GcFreezer.freeze_survivors = lambda self: None  # type: ignore[method-assign]
    pauses = Pauses()
    gc.collect()
    gc.callbacks.append(pauses)
    started = time.process_time()
    try:
        with path.open("rb") as lines:
            result = run_replay(lines)
    finally:
        gc.callbacks.remove(pauses)
        GcFreezer.freeze_survivors = original  # type: ignore[method-assign]
    full = [seconds for generation, seconds in pauses.pauses if generation == 2]
    return {
        "mode": "GcFreezer" if freeze else "default",
        "cpu_s": round(time.process_time() - started, 1),
        "sweep_s": round(result.sweep_s, 1),
        "alerts": len(result.alerts),
        "gc_all_s": round(sum(seconds for _, seconds in pauses.pauses), 2),
        "gc_full_count": len(full),
        "gc_full_max_s": round(max(full, default=0.0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events", type=int, default=1_000_000, help="lines of the file to process")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--replay", action="store_true", help="time run_replay over the whole file instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        start = datetime(2026, 9, 1, tzinfo=UTC)
        config = SimulationConfig(seed=args.seed, accounts=args.accounts, days=args.days, start=start)
        write_jsonl(Simulation(config), path)
        scope = "the whole file through run_replay" if args.replay else f"first {args.events:,} events"
        lines = sum(1 for _ in path.open("rb"))
        print(f"{args.accounts} accounts x {args.days} days ({lines:,} lines), {scope}; load {load()}")
        for freeze in (False, True, False, True):  # alternated: the machine's load drifts
            figures = replay(path, freeze) if args.replay else run(path, args.events, freeze)
            print(figures, f"load {load()}", flush=True)
    print("peak RSS MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
