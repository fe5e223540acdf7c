"""Whether a worker answers its health endpoint while it sweeps many accounts (issue 15), end to end.

On a private embedded broker, one worker on the event clock (the test harness's worker process): a simulated
file of ``--accounts`` x ``--days`` is produced, and while the worker folds it (sweeping every account at each
midnight the clock crosses), the script asks ``/churnwatch/live/`` every ``--every`` seconds (timeout 5 s)
and notes how long each answer took and its status. At the end: the sweeps (count and seconds, from
``churnwatch_sweep_duration_seconds``) and the answers (how many, how many not 200 or not answered, median,
p99 and longest time to answer).

    .venv/bin/python benchmarks/health_during_sweeps.py --accounts 100000 --days 3
    # another commit's worker (run from outside the checkout: a worker's path starts with its directory)
    git archive <commit> detectors streams | tar -x -C /tmp/before
    cd /tmp && PYTHONPATH=/tmp/before /path/to/.venv/bin/python /path/to/benchmarks/health_during_sweeps.py

It prints where the worker's ``streams`` comes from. With ``--stalls FILE`` the worker runs with
``benchmarks/stall_trace`` (a thread noting each stretch of over 100 ms its event loop did not turn, and the
stacks it saw), and the script prints the longest stretches.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.dev import kafka_local
from tests.kafka_harness import (
    KafkaForTests,
    WorkerFactory,
    WorkerProcess,
    metric_value,
    start_private_broker,
)
from tests.test_faults import produce_events, simulated_events

ANSWER_TIMEOUT_S = 5.0


def ask_live(worker: WorkerProcess) -> tuple[float, int | None]:
    """Seconds the worker took to answer ``/churnwatch/live/``, and the status (None: no answer in time)."""
    started = time.perf_counter()
    try:
        status: int | None = httpx.get(f"{worker.url}/churnwatch/live/", timeout=ANSWER_TIMEOUT_S).status_code
    except httpx.HTTPError:
        status = None
    return time.perf_counter() - started, status


def progress(worker: WorkerProcess) -> tuple[int, float]:
    """Events folded, and sweeps run."""
    folded = int((worker.stats() or {}).get("events_folded") or 0)
    try:
        sweeps = metric_value(worker.get("/metrics").text, "churnwatch_sweep_duration_seconds_count")
    except httpx.HTTPError:
        sweeps = None
    return folded, sweeps or 0.0


Answers = list[tuple[float, int | None]]


def watch(worker: WorkerProcess, expected: int, sweeps: int, every_s: float, timeout_s: float) -> Answers:
    """Ask the worker for its liveness every ``every_s`` until it folded ``expected`` events and ran
    ``sweeps`` sweeps."""
    answers: Answers = []
    deadline = time.monotonic() + timeout_s
    last_look = 0.0
    while time.monotonic() < deadline:
        answers.append(ask_live(worker))
        if time.monotonic() - last_look >= 2.0:
            last_look = time.monotonic()
            folded, swept = progress(worker)
            if folded >= expected and swept >= sweeps:
                return answers
        time.sleep(every_s)  # the sampling period, not a synchronisation
    raise SystemExit(f"not all {expected} events folded and {sweeps} sweeps in {timeout_s:.0f} s")


def report(answers: Answers, metrics: str) -> None:
    took = sorted(seconds for seconds, _ in answers)
    bad = sum(status != 200 for _, status in answers)
    sweeps = metric_value(metrics, "churnwatch_sweep_duration_seconds_count") or 0
    swept_s = metric_value(metrics, "churnwatch_sweep_duration_seconds_sum") or 0
    print(f"sweeps: {sweeps:.0f}, {swept_s:.1f} s in all")
    print(
        f"/churnwatch/live/ asked {len(answers)} times: {bad} not 200 or not answered within "
        f"{ANSWER_TIMEOUT_S:.0f} s; answered in median {statistics.median(took) * 1000:.0f} ms, p99 "
        f"{took[int(0.99 * (len(took) - 1))] * 1000:.0f} ms, longest {took[-1] * 1000:.0f} ms"
    )


def worker_code(factory: WorkerFactory) -> str:
    """Where a worker process started by ``factory`` imports ``streams`` from."""
    probe = [sys.executable, "-c", "import streams; print(streams.__file__)"]
    return subprocess.run(probe, env=factory.env(), capture_output=True, text=True, check=True).stdout.strip()


def stall_env(stalls: Path) -> dict[str, str]:
    """The worker's environment for ``benchmarks/stall_trace``: first on its path, writing to ``stalls``."""
    tracer = str(Path(__file__).resolve().parent / "stall_trace")
    path = os.pathsep.join(filter(None, [tracer, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "STALL_TRACE_FILE": str(stalls)}


def report_stalls(stalls: Path, longest: int = 8) -> None:
    """How often the worker's loop stood still for over 0.1, 0.5 and 1 s, and the longest stretches."""
    lines = [json.loads(line) for line in stalls.read_text().splitlines()] if stalls.exists() else []
    counts = ", ".join(
        f"{sum(stall['seconds'] >= bound for stall in lines)} over {bound} s" for bound in (0.1, 0.5, 1)
    )
    print(f"event loop stood still: {counts}; total {sum(s['seconds'] for s in lines):.1f} s")
    for stall in sorted(lines, key=lambda s: -s["seconds"])[:longest]:
        top: dict[str, Any] = stall["top"][0] if stall["top"] else {"samples": 0, "stack": []}
        print(f"  {stall['seconds']:6.3f} s, {stall['samples']} samples; most seen ({top['samples']}):")
        for frame in top["stack"][:4]:
            print(f"      {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--every", type=float, default=0.2, help="seconds between two questions")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to fold everything")
    parser.add_argument("--stalls", type=Path, default=None, help="trace the worker's loop stalls to FILE")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="CHURNWATCH_X=VALUE",
        help="extra setting for the worker (repeatable), e.g. CHURNWATCH_GC_FULL_COLLECTION_SECONDS=60",
    )
    args = parser.parse_args()
    events = simulated_events(accounts=args.accounts, days=args.days, seed=args.seed)
    print(
        f"{args.accounts} accounts x {args.days} days: {len(events):,} events; load {os.getloadavg()[0]:.1f}"
    )
    with TemporaryDirectory() as directory:
        home = Path(directory)
        broker = start_private_broker(home / "kafka")
        factory = WorkerFactory(
            KafkaForTests(bootstrap=broker.bootstrap, broker=broker),
            home / "w",
            "sweeps",
            extra_env={
                **(stall_env(args.stalls.resolve()) if args.stalls else {}),
                **dict(item.split("=", 1) for item in args.worker_env),
            },
        )
        factory.directory.mkdir()
        try:
            print(f"worker code: {worker_code(factory)}")
            worker = factory.start()
            producing = threading.Thread(target=produce_events, args=(factory, events))
            producing.start()  # the worker folds (and sweeps) while the rest is produced: watched too
            # Each midnight the clock crosses is swept: days - 1 of them, at least.
            answers = watch(worker, len(events), args.days - 1, args.every, args.timeout)
            producing.join()
            report(answers, worker.get("/metrics").text)
            if args.stalls:
                report_stalls(args.stalls)
            for line in worker.log().splitlines():
                if "gc.full_collection" in line:
                    print(f"worker: {line.strip()}")
        finally:
            factory.stop_all()
            kafka_local.stop(broker)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
