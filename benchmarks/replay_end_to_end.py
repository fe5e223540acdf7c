"""What ``replay`` spends per line end to end: the input side (read, validate, buffer) and the sort,
deduplication and engine replay, in CPU time (best of ``--runs``), with the alerts and sweeps it produced.

Usage::

    .venv/bin/python benchmarks/replay_end_to_end.py --accounts 300 --days 120 --seed 3
    .venv/bin/python benchmarks/replay_end_to_end.py --events existing.jsonl --runs 3

CPU time of this process on whatever machine runs it: never assert on it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.offline.replay import run_replay
from streams.offline.replay_input import InputRules
from streams.offline.sorted_input import SortedInput, read_source
from streams.settings import Settings


def replay_once(path: Path, rules: InputRules) -> tuple[float, float, int, int, int]:
    """(CPU s of pass 1, CPU s of sort + replay, lines, alerts, sweeps)."""
    started = time.process_time()
    with SortedInput(rules) as sorted_input:
        read_source(path, sorted_input)
        read = time.process_time()
        result = run_replay(sorted_input)
    done = time.process_time()
    return read - started, done - read, sorted_input.stats.lines, len(result.alerts), result.sweeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, help="An existing JSONL event file (else simulate one).")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if args.events is None:
        args.events = Path(tempfile.mkdtemp(prefix="churnwatch-bench-")) / "events.jsonl"
        config = SimulationConfig(seed=args.seed, accounts=args.accounts, days=args.days)
        write_jsonl(Simulation(config), args.events)
    rules = InputRules.from_settings(Settings())
    runs = [replay_once(args.events, rules) for _ in range(args.runs)]
    read, rest, lines, alerts, sweeps = min(runs, key=lambda run: run[0] + run[1])
    total = read + rest
    print(
        f"{lines:,} lines, {alerts} alerts, {sweeps} sweeps; best of {args.runs}: {total:.2f} CPU s "
        f"(read and validate {read:.2f}, sort and replay {rest:.2f}) = {total / lines * 1e6:.1f} µs/line"
    )


if __name__ == "__main__":
    main()
