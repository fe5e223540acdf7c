"""Replay against parsing speed (issue 15): the whole ``replay`` of a file next to ``orjson.loads`` alone over
the same lines, in the same run, and ``--jobs 1`` against ``--jobs N``. Here ``--jobs N`` is the parallel read
alone (``replay_file_parallel``, what ``churnwatch replay --jobs N`` still does with ``--feedback``); the
lock-step replay on N processes is measured by ``benchmarks/replay_cores.py``.

Usage::

    .venv/bin/python benchmarks/replay_vs_parsing.py --accounts 1000 --days 90 --seed 3 --jobs 1 2
    .venv/bin/python benchmarks/replay_vs_parsing.py --events existing.jsonl --jobs 1 2

For each job count it times what ``churnwatch replay FILE`` does (read, validate, sort, deduplicate, fold, the
daily detector sweeps; no output files) from opening the file to the result, in CPU seconds of all processes
and in wall time, and reports events/s and the ratio to the ``orjson.loads``-only time of the same lines (best
of two, lines held in memory), also without the detector sweeps (their cost is per account-day, not per
line). The load average is printed with the figures: on a shared machine the ratio is what survives the
noise. It checks that every job count gave the same alerts. With ``PYTHONPATH=build/mypyc`` it times the
compiled build (``deploy/dev compile``; it says which build ran). Never assert on these timings.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.dev.mypyc_build import describe_build
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.events import decode
from streams.offline.replay import ReplayResult, replay_file
from streams.offline.replay_input import InputRules
from streams.settings import load_settings


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the ``--jobs`` workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best_of_two(work: Any) -> tuple[float, float]:
    """(wall s, CPU s) of the faster of two runs of ``work``."""
    runs = []
    for _ in range(2):
        started, cpu = time.perf_counter(), time.process_time()
        work()
        runs.append((time.perf_counter() - started, time.process_time() - cpu))
    return min(runs, key=lambda run: run[1])


def replay(path: Path, jobs: int, rules: InputRules) -> tuple[ReplayResult, float, float]:
    """(result, wall s, CPU s) of one replay as the CLI runs it, without output files."""
    started, cpu = time.perf_counter(), cpu_seconds()
    if jobs == 1:
        result = replay_file(path, rules=rules)
    else:
        from streams.offline.replay_parallel import replay_file_parallel  # absent before issue 15

        result, _ = replay_file_parallel(path, jobs=jobs, rules=rules)
    return result, time.perf_counter() - started, cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=Path, default=None, help="Replay this file instead of simulating.")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--event-scale", type=float, default=1.0, help="Simulator usage volume multiplier.")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.events
        if path is None:
            path = Path(tmp) / "events.jsonl"
            config = SimulationConfig(
                seed=args.seed,
                accounts=args.accounts,
                days=args.days,
                start=datetime(2026, 6, 1, tzinfo=UTC),
                event_scale=args.event_scale,
            )
            write_jsonl(Simulation(config), path)
        measure(path, args.jobs)
    return 0


def measure(path: Path, jobs_counts: list[int]) -> None:
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    n = len(lines)
    print(f"{path}: {n:,} lines, {sum(map(len, lines)) / n:.0f} B on average; load average {os.getloadavg()}")
    print(describe_build())
    loads, loads_cpu = best_of_two(lambda: [orjson.loads(line) for line in lines])
    _, decode_cpu = best_of_two(lambda: [decode(line, max_bytes=1 << 20, min_ts_ms=None) for line in lines])
    per_line = loads_cpu / n * 1e6
    print(f"orjson.loads alone: {loads_cpu:.2f} CPU s ({per_line:.2f} µs/line), {loads:.2f} s wall")
    print(f"streams.events.decode: {decode_cpu:.2f} CPU s, {decode_cpu / loads_cpu:.2f}x orjson")
    rules = InputRules.from_settings(load_settings())
    first: ReplayResult | None = None
    for jobs in jobs_counts:
        result, wall, cpu = replay(path, jobs, rules)
        verdict = "identical" if first is not None and result.alerts == first.alerts else "DIFFER"
        same = "" if first is None else f", alerts {verdict} to --jobs {jobs_counts[0]}"
        first = first or result
        sweeps = result.sweep_s * cpu / wall  # the sweeps' share of CPU, taken as their share of wall time
        print(
            f"replay --jobs {jobs}: CPU {cpu:.2f} s = {cpu / loads_cpu:.1f}x orjson "
            f"({n / cpu:,.0f} events per CPU s), {(cpu - sweeps) / loads_cpu:.1f}x without the sweeps "
            f"({result.sweep_s / wall:.0%} of the time); wall {wall:.2f} s ({n / wall:,.0f} events/s, "
            f"{wall / loads:.1f}x orjson's wall); {len(result.alerts)} alerts, "
            f"{result.observations:,} account-days{same}; load average {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
