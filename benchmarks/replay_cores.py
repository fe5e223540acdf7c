"""Replay on 1 and N cores (issue 15): the lock-step replay (``churnwatch replay --jobs N``) against one
process on the same file, next to ``orjson.loads`` over its lines, with a check that the results are the
same.

Usage::

    .venv/bin/python benchmarks/replay_cores.py --accounts 1000 --days 90 --seed 3 --jobs 2 --rounds 2
    .venv/bin/python benchmarks/replay_cores.py --events existing.jsonl --jobs 2 3

Each round replays the file once per job count, alternated (1, N, 1, N ...), as ``churnwatch replay FILE``
does without output files, and prints per run: wall time and events/s, the CPU seconds of the coordinator
(this process) and of the shard processes, and what the machine did meanwhile (its busy share of all cores
from ``/proc/stat`` and the part of it that was not this replay: other jobs compete for the same cores, and a
2-core figure is only as good as the second core was free). The ``orjson.loads`` time is the best of two over
the lines held in memory. Every N-process result is compared with the one-process result of the same round:
alerts, held-back alerts, assessments, outcomes, snapshots, the stored final states, the risk model and the
population. Never assert on these timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.replay_vs_parsing import best_of_two, cpu_seconds
from benchmarks.simulated_file import add_file_arguments, events_file
from streams.offline.replay import ReplayResult, replay_file
from streams.offline.replay_input import InputRules
from streams.offline.replay_lockstep import replay_lockstep
from streams.settings import load_settings


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far (``/proc/stat``; zeros where there is none)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def fingerprint(result: ReplayResult) -> dict[str, Any]:
    """What must not change with the number of processes (everything but timings)."""
    assert result.monitor is not None
    return {
        "alerts": result.alerts,
        "suppressed": result.suppressed,
        "assessments": list(result.assessments.items()),
        "outcomes": result.outcomes,
        "snapshots": result.snapshots,
        "states": [(key, state.to_bytes()) for key, state in result.account_states.items()],
        "activity": list((result.activity or {}).items()),
        "cancellations": list(result.cancellations.items()),
        "counts": (result.lines, result.events, result.sweeps, result.observations, result.clock_ms),
        "risk_model": result.monitor.risk_model.to_state(),
        "population": result.monitor.population.to_state(),
    }


def replay(path: Path, jobs: int, rules: InputRules) -> tuple[ReplayResult, dict[str, float]]:
    """One replay with ``jobs`` processes (1: the one-process replay); the result and its figures."""
    busy, total = machine_jiffies()
    started, cpu, own = time.perf_counter(), cpu_seconds(), time.process_time()
    if jobs == 1:
        result = replay_file(path, rules=rules, record_activity=True)
    else:
        result, _ = replay_lockstep(path, jobs=jobs, rules=rules, record_activity=True)
    wall = time.perf_counter() - started
    cpu, own = cpu_seconds() - cpu, time.process_time() - own
    busy_after, total_after = machine_jiffies()
    cores = os.cpu_count() or 1
    machine = (busy_after - busy) / (total_after - total) if total_after > total else float("nan")
    others = max(0.0, machine - cpu / wall / cores)  # the busy share of all cores that was not this replay
    return result, {"wall": wall, "cpu": cpu, "own": own, "machine": machine, "others": others}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(parser)
    parser.add_argument("--jobs", type=int, nargs="+", default=[2], help="Process counts besides 1.")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of 1 and each N, alternated.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(events_file(args, Path(tmp)), args.jobs, args.rounds)
    return 0


def loads_seconds(path: Path) -> tuple[int, float]:
    """(lines, CPU s of ``orjson.loads`` over them: the best of two, lines held in memory)."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    _, cpu = best_of_two(lambda: [orjson.loads(line) for line in lines])
    return len(lines), cpu


def measure(path: Path, jobs_counts: list[int], rounds: int) -> None:
    n, loads_cpu = loads_seconds(path)
    print(f"{path}: {n:,} lines; orjson.loads alone {loads_cpu:.2f} CPU s ({n / loads_cpu:,.0f} lines/s)")
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()}")
    rules = InputRules.from_settings(load_settings())
    print(
        "| round | processes | wall s | events/s | x orjson (wall) | coordinator CPU s | shards CPU s "
        "| machine busy | others' share | identical to 1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for round_no in range(1, rounds + 1):
        reference: dict[str, Any] | None = None
        for jobs in [1, *jobs_counts]:
            result, figures = replay(path, jobs, rules)
            found = fingerprint(result)
            del result
            if reference is None:
                reference, same = found, "-"
            else:
                differ = [name for name, value in reference.items() if found[name] != value]
                same = "yes" if not differ else "NO: " + ", ".join(differ)
            wall, own = figures["wall"], figures["own"]
            shards = figures["cpu"] - own if jobs > 1 else 0.0
            print(
                f"| {round_no} | {jobs} | {wall:.2f} | {n / wall:,.0f} | {wall / loads_cpu:.1f} "
                f"| {own:.2f} | {shards:.2f} | {figures['machine']:.0%} | {figures['others']:.0%} | {same} |",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    raise SystemExit(main())
