"""Instructions per account-day of chosen detector sweeps, counted by callgrind (issue 15).

Usage (``valgrind`` must be installed; a few minutes for two sweeps)::

    .venv/bin/python benchmarks/sweep_instructions.py --sweeps 66,90 --repeat 2
    .venv/bin/python benchmarks/sweep_instructions.py --events sim300.jsonl --sweeps 66,90 --json out.json
    git archive b93b265 detectors streams | tar -x -C /tmp/before   # A/B: the same sweeps, other code
    .venv/bin/python benchmarks/sweep_instructions.py --sweeps 66,90 --pythonpath /tmp/before

CPU time of a sweep moves by 10 % or more with the load of a shared machine; the instructions it executes do
not, so a change of a few percent to the sweep can be measured in instructions. An instruction is not a fixed
time: the figure says how much work changed, not how much faster the sweep got.

1. The file (``--events``, or a simulated one: ``--accounts 300 --days 90 --seed 3`` by default) is replayed
   in this process (``replay_file``, as ``benchmarks/sweep_cost.py`` does). At the entry of each chosen
   ``Detection.sweep`` (1-based, in replay order; 90 days give 90 sweeps, the last the final one over every
   account) the detectors, the accounts it evaluates and its times are pickled to a scratch directory; after
   it, a digest of its alerts and of its accounts' stored detector states is kept. The whole replay's digest
   (``sweep_cost.digest``) is printed too.
2. Each captured sweep runs ``--repeat`` times in a child ``valgrind --tool=callgrind
   --toggle-collect=sys_call_tracing``: the child unpickles the capture with the collector off and
   ``PYTHONHASHSEED=0``, then calls the sweep through ``sys.call_tracing``, which nothing else calls, so only
   the sweep is counted. The child's sweep digest must equal the native one ("same alerts and states as
   native"), so the counted code is the real sweep.

Both phases run the ``detectors/`` and ``streams/`` this process imports: with ``--pythonpath DIR`` the script
starts again with ``PYTHONPATH=DIR``, so each side of an A/B captures and counts its own sweeps (a pickle need
not load in code whose classes differ); equal replay digests say both sides swept the same accounts.

It prints instructions per account-day per sweep and run and in total, and how far repeat runs are apart
(they agree within ~0.1 %). ``--keep DIR`` keeps the captures and callgrind's files there
(``callgrind_annotate DIR/callgrind.66.1.out`` says where the instructions go). Figures:
docs/performance.md, "Sweep cost (issue 15)".
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulated_file import add_file_arguments, events_file  # benchmarks/simulated_file.py
from sweep_cost import digest  # benchmarks/sweep_cost.py

from streams.engine import SweepOutcome
from streams.engine.detection import Detection
from streams.engine.state import AccountState
from streams.offline.replay import replay_file

TOGGLE = "sys_call_tracing"  # the C function of sys.call_tracing: callgrind counts inside it only
Accounts = list[tuple[bytes, AccountState, int]]


def sweep_digest(outcome: SweepOutcome, accounts: Accounts) -> str:
    """A short hash of a sweep's alerts, changed keys and its accounts' stored detector states."""
    h = hashlib.sha256()
    for alert in outcome.alerts:
        h.update(repr(alert).encode())
    for key in outcome.changed:
        h.update(key)
    for key, state, _ in accounts:
        h.update(key)
        h.update(state.detector or b"")
    return h.hexdigest()[:16]


def capture(path: Path, sweeps: set[int], directory: Path) -> tuple[dict[int, dict[str, Any]], str]:
    """Replay ``path``, pickling the chosen sweeps' inputs at their entry to ``directory``: per sweep its
    capture file, account count, time and native digest; and the replay's digest."""
    # The engine enters a sweep through sweep_steps since 2026-12-04 (Detection.sweep before).
    in_steps = hasattr(Detection, "sweep_steps")
    name = "sweep_steps" if in_steps else "sweep"
    original, captured, count = getattr(Detection, name), {}, 0

    def sweep(detection: Detection, accounts: list[Any], now_ms: int, clock_ms: int) -> SweepOutcome:
        if not in_steps:
            return original(detection, accounts, now_ms, clock_ms)  # type: ignore[no-any-return]
        from streams.engine.steps import drain

        return drain(original(detection, accounts, now_ms, clock_ms))  # type: ignore[no-any-return]

    def capturing(detection: Detection, accounts: Iterable[Any], now_ms: int, clock_ms: int) -> SweepOutcome:
        nonlocal count
        count += 1
        chosen = list(accounts)
        if count not in sweeps:
            return sweep(detection, chosen, now_ms, clock_ms)
        file = directory / f"sweep{count}.pickle"
        file.write_bytes(pickle.dumps((detection, chosen, now_ms, clock_ms), pickle.HIGHEST_PROTOCOL))
        outcome = sweep(detection, chosen, now_ms, clock_ms)
        captured[count] = {
            "file": str(file),
            "accounts": len(chosen),
            "now": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(),
            "alerts": len(outcome.alerts),
            "digest": sweep_digest(outcome, chosen),
        }
        return outcome

    def capturing_steps(*args: Any) -> Generator[None, None, SweepOutcome]:
        outcome = capturing(*args)
        yield
        return outcome

    setattr(Detection, name, capturing_steps if in_steps else capturing)
    try:
        result = replay_file(path)
    finally:
        setattr(Detection, name, original)
    missing = sweeps - set(captured)
    if missing:
        raise SystemExit(f"the replay ran {count} sweeps: no sweep {sorted(missing)}")
    return captured, digest(result)


def checkout(cls: type) -> str:
    """The folder holding the ``detectors/`` and ``streams/`` that ``cls`` (in ``streams.engine``) is from."""
    return str(Path(sys.modules[cls.__module__].__file__ or "?").resolve().parents[2])


def count_instructions(file: str, out: Path, code: str) -> tuple[int, dict[str, Any]]:
    """Run the captured sweep in ``file`` under callgrind with ``code`` first on ``sys.path``; its
    instructions and what the child reported."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": code}
    command = [
        "valgrind", "--tool=callgrind", f"--toggle-collect={TOGGLE}", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", file,
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(totals.group(1)), json.loads(run.stdout.strip().splitlines()[-1])


def child(file: str) -> None:
    """The measured process: load a capture with the collector off, run its sweep inside
    ``sys.call_tracing`` (the only part callgrind counts), print its digest and where its code came from."""
    gc.disable()
    detection, accounts, now_ms, clock_ms = pickle.loads(Path(file).read_bytes())
    outcome = sys.call_tracing(detection.sweep, (accounts, now_ms, clock_ms))
    report = {
        "digest": sweep_digest(outcome, accounts),
        "alerts": len(outcome.alerts),
        "code": checkout(Detection),
    }
    print(json.dumps(report))


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    path = events_file(args, directory)
    sweeps = {int(sweep) for sweep in args.sweeps.split(",")}
    load = os.getloadavg()
    captured, replay_digest = capture(path, sweeps, directory)
    code = checkout(Detection)
    print(f"{path}: replay digest {replay_digest} (code {code}); captured sweeps {sorted(captured)}")
    runs: list[dict[int, int]] = [{} for _ in range(args.repeat)]
    for sweep, info in sorted(captured.items()):
        for run in range(args.repeat):
            out = directory / f"callgrind.{sweep}.{run + 1}.out"
            instructions, report = count_instructions(info["file"], out, code)
            native = report["digest"] == info["digest"]
            same = "same alerts and states as native" if native else "DIFFERENT from native"
            runs[run][sweep] = instructions
            print(
                f"sweep {sweep} ({info['now']}, {info['accounts']} account-days, {report['alerts']} alerts), "
                f"run {run + 1}: {instructions:,} instructions = {instructions / info['accounts']:,.0f} per "
                f"account-day; digest {report['digest']} ({same}); code {report['code']}"
            )
            info.setdefault("instructions", []).append(instructions)
            info["same_as_native"] = info.get("same_as_native", True) and native
            info["code"] = report["code"]
    days = sum(info["accounts"] for info in captured.values())
    totals = [sum(run.values()) / days for run in runs]
    spread = (max(totals) - min(totals)) / min(totals)
    names = "+".join(str(sweep) for sweep in sorted(captured))
    for run, total in enumerate(totals, 1):
        print(f"run {run}: sweeps {names}, {days:,} account-days: {total:,.0f} instructions per account-day")
    print(f"repeat runs {spread:.3%} apart; load average {load} -> {os.getloadavg()}")
    return {
        "events": str(path),
        "replay_digest": replay_digest,
        "sweeps": {str(sweep): info for sweep, info in captured.items()},
        "account_days": days,
        "per_account_day": totals,
        "repeat_spread": spread,
        "load_average": [load, os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(parser, accounts=300)
    parser.add_argument("--sweeps", default="66,90", help="Sweeps to count, 1-based, comma-separated.")
    parser.add_argument("--repeat", type=int, default=1, help="Callgrind runs of each sweep.")
    parser.add_argument(
        "--pythonpath", default=None, help="Run the sweeps with detectors/ and streams/ here."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here as JSON.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep captures and callgrind files here.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pythonpath = str(Path(args.pythonpath).resolve()) if args.pythonpath else None
    if pythonpath is not None and os.environ.get("PYTHONPATH") != pythonpath:
        # Capture and count with that code (pickles need not load in code whose classes differ).
        os.execve(
            sys.executable,
            [sys.executable, __file__, *sys.argv[1:]],
            {**os.environ, "PYTHONPATH": pythonpath},
        )
    if args.child is not None:
        child(args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) if args.keep is None else args.keep
        directory.mkdir(parents=True, exist_ok=True)
        figures = measure(args, directory)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
