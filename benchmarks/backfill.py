"""Backfill speed next to replay's on the same event file, against a private local broker.

Usage::

    .venv/bin/python benchmarks/backfill.py --accounts 1000 --days 90 --seed 3 --repeat 3
    .venv/bin/python benchmarks/backfill.py --events existing.jsonl

On one simulated (or given) JSON-lines file, it times

1. **replay**: what ``churnwatch replay --no-baselines`` does before writing its outputs (read, validate,
   sort, deduplicate, :func:`~streams.offline.replay.run_replay`);
2. **backfill fold**: :func:`streams.offline.backfill.fold_history` (the same, plus encoding each account's
   row);
3. **backfill write**: reading the (empty) changelog, planning and writing every row to a fresh app's
   ``accounts`` changelog on a private broker, acknowledged (``acks=all``);
4. **backfill again**: the second, idempotent run's compare against the changelog (nothing written).

Each phase runs ``--repeat`` times (a fresh app id per write) and the median is reported, as events/s of
valid events in the file. Timings are wall-clock on whatever machine runs it: never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streams.dev import kafka_local  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl  # noqa: E402
from streams.live.kafka_client import ensure_topics  # noqa: E402
from streams.live.worker import quiet_kafka_client_logs  # noqa: E402
from streams.offline.backfill import History, fold_history  # noqa: E402
from streams.offline.backfill_store import backfill  # noqa: E402
from streams.offline.replay import run_replay  # noqa: E402
from streams.offline.replay_input import InputRules  # noqa: E402
from streams.offline.sorted_input import SortedInput, read_source  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from tests.kafka_harness import start_private_broker  # noqa: E402


def replay(path: Path, settings: Settings) -> int:
    """``churnwatch replay``'s read and fold; returns the events accepted."""
    with SortedInput(InputRules.from_settings(settings)) as sorted_input:
        read_source(path, sorted_input)
        run_replay(
            sorted_input,
            config=settings.detection.detector_config(),
            window_config=settings.windows.window_config(),
        )
        return sorted_input.stats.accepted


def timed(work: Callable[[], object], repeat: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--events", type=Path, help="an existing event file instead of a simulation")
    args = parser.parse_args()
    quiet_kafka_client_logs()
    with tempfile.TemporaryDirectory(prefix="churnwatch-backfill-bench-") as tmp:
        path = args.events
        if path is None:
            path = Path(tmp) / "events.jsonl"
            start = datetime(2026, 1, 5, tzinfo=UTC)
            config = SimulationConfig(seed=args.seed, accounts=args.accounts, days=args.days, start=start)
            write_jsonl(Simulation(config), path)
        broker = start_private_broker(Path(tmp) / "kafka")
        try:
            run(path, broker.bootstrap, args.partitions, args.repeat)
        finally:
            kafka_local.stop(broker)


def run(path: Path, bootstrap: str, partitions: int, repeat: int) -> None:
    settings = load_settings(bootstrap_servers=bootstrap, partitions=partitions)
    replay_s, accepted = timed(lambda: replay(path, settings), repeat)
    fold_s, folded = timed(lambda: fold_history([path], settings), repeat)
    assert isinstance(accepted, int) and isinstance(folded, History)
    history = folded

    def write(app_id: str | None = None) -> object:
        app = load_settings(
            bootstrap_servers=bootstrap,
            partitions=partitions,
            app_id=app_id or f"bench-{uuid.uuid4().hex[:8]}",
        )
        asyncio.run(ensure_topics(app))
        return asyncio.run(backfill(app, history, live_from_end=False, dry_run=False))

    write_s, plan = timed(write, repeat)
    fixed = f"bench-{uuid.uuid4().hex[:8]}"
    write(fixed)
    again_s, again = timed(lambda: write(fixed), repeat)
    rows = len(history.rows)
    print(f"file: {path} ({accepted:,} events, {rows:,} accounts, {partitions} partitions)")
    print(
        f"replay (read, sort, fold, sweeps)        {replay_s:7.2f} s  {accepted / replay_s:>9,.0f} events/s"
    )
    print(f"backfill fold (same + rows)              {fold_s:7.2f} s  {accepted / fold_s:>9,.0f} events/s")
    print(f"backfill write ({rows:,} rows, acks=all)   {write_s:7.2f} s  {rows / write_s:>9,.0f} rows/s")
    total = fold_s + write_s
    print(f"backfill total (fold + write)            {total:7.2f} s  {accepted / total:>9,.0f} events/s")
    print(f"backfill again (compare, writes nothing) {again_s:7.2f} s  (written: {again.written_accounts})")  # type: ignore[attr-defined]
    assert plan is not None


if __name__ == "__main__":
    main()
