"""CPU cost of the daily detector sweep per account-day (issue 15), apart from reading and folding events.

Usage::

    .venv/bin/python benchmarks/sweep_cost.py --accounts 300 --days 90 --seed 3 --runs 3
    .venv/bin/python benchmarks/sweep_cost.py --events existing.jsonl --runs 2
    .venv/bin/python benchmarks/sweep_cost.py --events existing.jsonl --profile 30   # where the time goes

It replays the file in this process (``replay_file``, as ``churnwatch replay`` does without output files) and
times every ``Engine.sweep`` (the sweeps at each midnight of the event clock and the final one) in CPU seconds
of this process (``time.process_time``), so other processes on a shared machine do not count. It prints, per
run, the sweeps' CPU seconds, the account-days they evaluated and the CPU µs per account-day, the whole
replay's CPU seconds and the sweeps' share of it, and the load average; then a digest of what the replay
produced (every alert and every account's final detector state), which must not change when the sweep is
only made cheaper.

The whole-run figure moves with the machine's load by 10 % or more. For a steadier one, every
``--sample-every``-th sweep is also run ``--repeats`` times on deep copies of the detectors and of the
accounts it evaluates (``Detection.sweep``, the collector off while timed), before the real one; the best
of each is kept and summed: "sampled, best of R". The copies change nothing in the replay.

To compare two commits, run this file against each in turn, alternating, e.g. with ``PYTHONPATH`` naming a
checkout of the other commit's ``detectors/`` and ``streams/`` (``git archive COMMIT | tar -x -C DIR``).
``--profile N`` runs cProfile over the sweeps only and prints the N functions with the most own time
(cProfile inflates small functions: use it to rank, not for the figure; it does not see inside compiled
modules). With ``PYTHONPATH=build/mypyc`` it times the compiled build (``deploy/dev compile``; it says which
build ran). Figures: docs/performance.md, "Sweep cost (issue 15)" and "Compiled sweep (mypyc)". Never assert
on these timings.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import hashlib
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from simulated_file import add_file_arguments, events_file  # benchmarks/simulated_file.py

from streams.dev.mypyc_build import describe_build, loaded_compiled
from streams.engine import Engine, SweepOutcome
from streams.engine.detection import due
from streams.offline.replay import ReplayResult, replay_file


class SweepClock:
    """Wraps ``Engine.sweep`` to add up its CPU time (optionally under a profiler) while installed, and to
    time every ``sample_every``-th sweep ``repeats`` times more on copies (best of them)."""

    def __init__(
        self, profiler: cProfile.Profile | None = None, sample_every: int = 0, repeats: int = 0
    ) -> None:
        self.cpu_s = 0.0
        self.profiler = profiler
        self.sample_every, self.repeats = sample_every, repeats
        self.sweeps = 0
        self.sampled_s = 0.0
        self.sampled_accounts = 0
        self.sampling_s = 0.0  # all the samples' CPU time, copies included (not the replay's)
        self._original: Callable[..., Any] = Engine.sweep

    def sample(self, engine: Engine, now_ms: int, everyone: bool) -> None:
        """Time ``Detection.sweep`` at ``now_ms`` on copies of what the real sweep will read (best of
        ``repeats``)."""
        started_sampling = time.process_time()
        store = engine.store
        accounts = [
            (key, state, state.partition)
            for key in sorted(store.owned())
            if (state := store.get(key)) is not None and (everyone or due(state, now_ms))
        ]
        best = float("inf")
        for _ in range(self.repeats):
            detection, copies = copy.deepcopy((engine.detection, accounts))
            gc.disable()
            started = time.process_time()
            detection.sweep(copies, now_ms, now_ms)
            best = min(best, time.process_time() - started)
            gc.enable()
        self.sampled_s += best
        self.sampled_accounts += len(accounts)
        self.sampling_s += time.process_time() - started_sampling

    def __enter__(self) -> SweepClock:
        original, clock = self._original, self

        def timed(engine: Engine, now_ms: int, *, everyone: bool = False) -> SweepOutcome:
            clock.sweeps += 1
            if clock.repeats and clock.sample_every and clock.sweeps % clock.sample_every == 0:
                clock.sample(engine, now_ms, everyone)
            started = time.process_time()
            if clock.profiler is not None:
                clock.profiler.enable()
            try:
                return original(engine, now_ms, everyone=everyone)
            finally:
                if clock.profiler is not None:
                    clock.profiler.disable()
                clock.cpu_s += time.process_time() - started

        setattr(Engine, "sweep", timed)  # noqa: B010  (mypy refuses a plain assignment to a method)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(Engine, "sweep", self._original)  # noqa: B010


def digest(result: ReplayResult) -> str:
    """A short hash of every alert and every account's final detector state (equal runs, equal digests)."""
    h = hashlib.sha256()
    for alert in result.alerts:
        h.update(repr(alert).encode())
    for account in sorted(result.states):
        h.update(account.encode())
        h.update(orjson.dumps(result.states[account].to_state(), option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()[:16]


def measure(
    path: Path, runs: int, profile_top: int, sample_every: int, repeats: int, keep_decoded: bool = True
) -> None:
    profiler = cProfile.Profile() if profile_top else None
    for run in range(1, runs + 1):
        load = os.getloadavg()[0]
        started = time.process_time()
        with SweepClock(profiler, sample_every, repeats) as clock:
            result = replay_file(path, keep_decoded_detectors=keep_decoded)
        total = time.process_time() - started - clock.sampling_s  # the replay itself, without the samples
        per_day = clock.cpu_s / result.observations * 1e6 if result.observations else 0.0
        if clock.sampled_accounts:
            best = clock.sampled_s / clock.sampled_accounts * 1e6
            print(
                f"run {run}: sampled, best of {repeats}: {best:.1f} µs per account-day "
                f"({clock.sampled_accounts:,} account-days in {clock.sweeps // sample_every} sweeps)"
            )
        print(
            f"run {run}: sweeps {clock.cpu_s:.2f} CPU s over {result.observations:,} account-days "
            f"({result.sweeps} sweeps) = {per_day:.1f} µs per account-day; replay {total:.2f} CPU s, "
            f"sweeps {clock.cpu_s / total:.0%} of it; {len(result.alerts)} alerts, digest {digest(result)}; "
            f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}"
        )
    if profiler is not None:
        print(f"cProfile of the sweeps ({runs} run(s)), by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile_top)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(parser, accounts=300)
    parser.add_argument("--runs", type=int, default=3, help="Replays of the same file, one after another.")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="Print cProfile's top N.")
    parser.add_argument("--sample-every", type=int, default=10, help="Time every Nth sweep on copies too.")
    parser.add_argument("--repeats", type=int, default=5, help="Timings of each sampled sweep (0: none).")
    parser.add_argument(
        "--decoded-detectors",
        choices=["kept", "dropped"],
        default="kept",
        help="'dropped': decoded detector states dropped after each sweep, as the wall-clock worker does "
        "(CHURNWATCH_STATE_DECODED_DETECTORS): each sweep decodes them again.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; load average {os.getloadavg()}")
        print(describe_build())
        repeats = args.repeats
        if repeats and loaded_compiled():
            print("sampling off: the compiled build's classes cannot be deep-copied (whole-run figures only)")
            repeats = 0
        keep = args.decoded_detectors == "kept"
        measure(path, args.runs, args.profile, args.sample_every, repeats, keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
