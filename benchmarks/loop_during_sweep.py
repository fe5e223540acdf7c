"""How long the event loop waits while a sweep runs: as one call, and in steps (streams/engine/steps.py).

A live worker runs its sweeps on the event loop that also answers the health and metrics endpoints and
delivers alerts. The script replays a file in this process and, at one sweep (``--sweep``, counted from 1;
default days - 1, the last midnight's), runs that sweep's ``Detection`` work again on deep copies of the
detectors and accounts, twice: as one call (``Detection.sweep``), and in steps through ``run_steps`` as the
worker does (what survived a full collection frozen first, as the worker freezes its cache). Beside each, a
task due every 10 ms notes how late the loop ran it (the worker's ``LoopHeartbeat`` does the same once a
second). Prints the sweep's wall and CPU time and the task's lateness.

Usage::

    .venv/bin/python benchmarks/loop_during_sweep.py --accounts 10000 --days 28
    .venv/bin/python benchmarks/loop_during_sweep.py --events sim.jsonl --sweep 20
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulated_file import add_file_arguments, events_file  # benchmarks/simulated_file.py

from streams.engine import Engine, SweepOutcome
from streams.engine.detection import Detection, due
from streams.engine.steps import PAUSE_SECONDS, SLICE_SECONDS, run_steps
from streams.offline.replay import replay_file

TICK_S = 0.01


@dataclass
class Ticker:
    """A task due every ``TICK_S``: how late the loop ran it, each time."""

    lateness: list[float] = field(default_factory=list)
    running: bool = True

    async def run(self) -> None:
        due_at = time.perf_counter() + TICK_S
        while self.running:
            await asyncio.sleep(max(0.0, due_at - time.perf_counter()))
            now = time.perf_counter()
            self.lateness.append(now - due_at)
            due_at = now + TICK_S


@dataclass(frozen=True)
class Run:
    how: str
    wall_s: float
    cpu_s: float
    ticks: list[float]

    def line(self) -> str:
        ticks = sorted(self.ticks) or [0.0]
        p99 = ticks[min(len(ticks) - 1, int(0.99 * len(ticks)))]
        return (
            f"{self.how:>9}: sweep {self.wall_s:6.2f} s wall, {self.cpu_s:6.2f} s CPU; loop task ran "
            f"{len(self.ticks):5d} times, late by median {statistics.median(ticks) * 1000:7.1f} ms, p99 "
            f"{p99 * 1000:7.1f} ms, max {ticks[-1] * 1000:7.1f} ms"
        )


async def beside_ticker(how: str, sweep: Callable[[], Any]) -> Run:
    gc.collect()
    gc.freeze()  # as the worker does after each checkpoint (streams/gc_freeze.py): the copies are its cache
    ticker = Ticker()
    task = asyncio.ensure_future(ticker.run())
    await asyncio.sleep(TICK_S * 2)  # the ticker under way
    ticker.lateness.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    result = sweep()
    if asyncio.iscoroutine(result):
        await result
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await asyncio.sleep(0)  # one turn: a one-call sweep's ticker notes its lateness now
    ticker.running = False
    await task
    gc.unfreeze()
    return Run(how, wall, cpu, ticker.lateness)


def compare(detection: Detection, accounts: list[Any], now_ms: int) -> list[Run]:
    async def both() -> list[Run]:
        at_once, at_once_accounts = copy.deepcopy((detection, accounts))
        in_steps, in_steps_accounts = copy.deepcopy((detection, accounts))
        steps = in_steps.sweep_steps(in_steps_accounts, now_ms, now_ms)
        return [
            await beside_ticker("one call", lambda: at_once.sweep(at_once_accounts, now_ms, now_ms)),
            await beside_ticker("in steps", lambda: run_steps(steps)),
        ]

    return asyncio.run(both())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(parser, accounts=10_000, days=28)
    parser.add_argument("--sweep", type=int, default=0, help="Which sweep (from 1); default: days - 1.")
    args = parser.parse_args()
    wanted = args.sweep or args.days - 1
    captured: list[tuple[Detection, list[Any], int]] = []
    swept = 0
    original = Engine.sweep

    def capture(engine: Engine, now_ms: int, *, everyone: bool = False) -> SweepOutcome:
        nonlocal swept
        swept += 1
        if swept == wanted:  # copied before the sweep changes them
            store = engine.store
            accounts = [
                (key, state, state.partition)
                for key in sorted(store.owned())
                if (state := store.get(key)) is not None and (everyone or due(state, now_ms))
            ]
            captured.append(copy.deepcopy((engine.detection, accounts, now_ms)))
        return original(engine, now_ms, everyone=everyone)

    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))
        setattr(Engine, "sweep", capture)  # noqa: B010
        try:
            replay_file(path)
        finally:
            setattr(Engine, "sweep", original)  # noqa: B010
    if not captured:
        parser.error(f"--sweep {wanted}: the replay ran {swept} sweeps")
    detection, accounts, now_ms = captured[0]
    print(
        f"{path.name if args.events else f'{args.accounts} accounts x {args.days} days (seed {args.seed})'}: "
        f"sweep of {len(accounts):,} accounts; steps give the loop {PAUSE_SECONDS * 1000:.0f} ms after every "
        f"{SLICE_SECONDS * 1000:.0f} ms of work; load average {os.getloadavg()[0]:.1f}"
    )
    for run in compare(detection, accounts, now_ms):
        print(run.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
