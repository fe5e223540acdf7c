"""Offline replay speed on one core, and where the time goes; state bytes per account.

Usage::

    .venv/bin/python benchmarks/replay_speed.py --accounts 1000 --days 150 --seed 3
    .venv/bin/python benchmarks/replay_speed.py --events existing.jsonl   # any event file
    .venv/bin/python benchmarks/replay_speed.py --profile                 # plus a cProfile top list

It times, on the same lines (held in memory, so disk speed is out of the picture):

1. ``orjson.loads`` alone,
2. ``streams.events.validate`` on the decoded objects,
3. the :class:`~detectors.windows.AccountWindow` fold of the validated events (``--fold-only``: this alone,
   in CPU time, best of five),
4. the whole :func:`streams.offline.replay.run_replay` (decode, validate, fold, daily detector sweeps, alert
   policy),

and reports lines/s, the share of the replay spent in detector sweeps, the cost per account-day of
detection, and the JSON bytes of window and detector state per account. Timings are wall-clock on whatever
machine runs it: never assert on them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from detectors.windows import AccountWindow, WindowConfig
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.events import BillingEvent, Event, SupportEvent, UsageEvent, validate
from streams.offline.replay import run_replay
from streams.offline.replay_outputs import state_sizes


def fold(events: list[Event]) -> None:
    config = WindowConfig()
    windows: dict[str, AccountWindow] = {}
    for event in events:
        window = windows.get(event.account_id)
        if window is None:
            window = windows[event.account_id] = AccountWindow(config)
        if type(event) is UsageEvent:
            window.add_usage(event.ts_ms, event.event, event.user_id, event.count)
        elif type(event) is BillingEvent:
            window.add_billing(event.ts_ms, event.kind, event.mrr, event.plan)
        elif type(event) is SupportEvent:
            window.add_support(event.ts_ms, event.kind, event.priority, event.score)


def fold_only(lines: list[bytes], rounds: int = 5) -> dict[str, Any]:
    """The window fold alone, in CPU µs per event, best of ``rounds`` (``--fold-only``: no replay)."""
    events = [validate(orjson.loads(line)) for line in lines]
    times = []
    for _ in range(rounds):
        started = time.process_time()
        fold(events)
        times.append(time.process_time() - started)
    return {"lines": len(lines), "fold_cpu_us_best": round(min(times) / len(lines) * 1e6, 3)}


def measure(lines: list[bytes], profile: bool) -> dict[str, Any]:
    n = len(lines)
    started = time.perf_counter()
    objects = [orjson.loads(line) for line in lines]
    decoded = time.perf_counter()
    events = [validate(body) for body in objects]
    validated = time.perf_counter()
    fold(events)
    folded = time.perf_counter()
    del objects, events
    result = run_replay(lines)
    finished = time.perf_counter()
    replay_s = finished - folded
    figures = {
        "lines": n,
        "loads_us": round((decoded - started) / n * 1e6, 2),
        "validate_us": round((validated - decoded) / n * 1e6, 2),
        "fold_us": round((folded - validated) / n * 1e6, 2),
        "replay_us_per_line": round(replay_s / n * 1e6, 2),
        "replay_lines_per_s": round(n / replay_s),
        "sweep_share": round(result.sweep_s / result.elapsed_s, 3),
        "account_days": result.observations,
        "detector_us_per_account_day": round(result.sweep_s / max(1, result.observations) * 1e6, 1),
        "events_per_account_day": round(n / max(1, result.observations), 1),
        "state_bytes": state_sizes(result),
    }
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_replay(lines)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        figures["profile"] = out.getvalue()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=Path, default=None, help="Replay this file instead of simulating.")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--event-scale", type=float, default=1.0, help="Simulator usage volume multiplier.")
    parser.add_argument("--profile", action="store_true", help="Also print a cProfile top-20 of a replay.")
    parser.add_argument(
        "--fold-only", action="store_true", help="Only the window fold, CPU time, best of 5 (no replay)."
    )
    args = parser.parse_args(argv)
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
        lines = path.read_bytes().splitlines()
    figures = fold_only(lines) if args.fold_only else measure(lines, args.profile)
    profile = figures.pop("profile", None)
    for key, value in figures.items():
        print(f"{key:>30}: {value}")
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
