"""End-to-end worker throughput, CPU, memory and changelog recovery on a real local Kafka broker.

Usage::

    .venv/bin/python benchmarks/pipeline_throughput.py --accounts 2000 --days 30 --workers 1
    .venv/bin/python benchmarks/pipeline_throughput.py --accounts 2000 --days 30 --workers 1 2 4

For each worker count it starts a private embedded broker (fresh topics), produces the simulator's events as a
backlog, then starts N ``churnwatch worker`` processes and measures the time from "all workers ready" until
every event is folded (events/s), the workers' CPU seconds and peak RSS, the detector sweeps and the
checkpoints that ended during the fold, then the restart time of one worker (changelog recovery of all
accounts). Before the workers start and after the last one stops, a bare ``getmany`` loop reads the same event
topics (``benchmarks/raw_getmany.py``): the consumer's own limit on this broker in this run, and the worker's
rate as a fraction of it. ``worker_build`` says whether the workers ran the compiled build
(``PYTHONPATH=build/mypyc``, ``deploy/dev compile``). Figures go to stdout as JSON; docs/performance.md
quotes them. Timings depend on the machine and on what else runs: never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.raw_getmany import raw_getmany_rate  # noqa: E402
from streams.dev import kafka_local  # noqa: E402
from streams.dev.mypyc_build import worker_build  # noqa: E402
from streams.dev.producer import send_all  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.live.kafka_client import ensure_topics  # noqa: E402
from streams.settings import Settings, setting  # noqa: E402
from tests.kafka_harness import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def all_ready(procs: list[tuple[subprocess.Popen[bytes], int]], partitions: int) -> bool:
    """Every worker answers ready, and together they own every partition."""
    answers = [stats(port) for _, port in procs]
    owned = [len(a["partitions"]) for a in answers if a is not None and a["ready"]]
    return len(owned) == len(procs) and sum(owned) == partitions


def stats(port: int) -> dict[str, Any] | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/churnwatch/stats/", timeout=5).json()  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError):
        return None


started: list[subprocess.Popen[bytes]] = []


@contextlib.contextmanager
def benchmark_kafka(
    partitions: int, extra_env: dict[str, str]
) -> Iterator[tuple[Path, dict[str, str], Settings]]:
    """A private broker with the topics, and the workers' environment; on exit no worker outlives it."""
    home = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    (home / "libs").symlink_to((REPO / ".kafka" / "libs").resolve())
    broker = kafka_local.LocalBroker(home, free_port(pair=True))
    kafka_local.start(broker)
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
        env.update(
            CHURNWATCH_BOOTSTRAP_SERVERS=broker.bootstrap,
            CHURNWATCH_PARTITIONS=str(partitions),
            CHURNWATCH_DATA_DIR=str(home / "data"),
            CHURNWATCH_SESSION_TIMEOUT_SECONDS="10",
            CHURNWATCH_HEARTBEAT_INTERVAL_SECONDS="1",
            CHURNWATCH_LOG_LEVEL="warning",
        )
        env.update(extra_env)  # may override the defaults above (e.g. CHURNWATCH_LOG_LEVEL)
        settings = Settings(bootstrap_servers=broker.bootstrap, partitions=partitions)
        asyncio.run(ensure_topics(settings))
        yield home, env, settings
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        started.clear()
        kafka_local.stop(broker)
        shutil.rmtree(home, ignore_errors=True)


def start_worker(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        # -P: the working directory is not put first on sys.path, so PYTHONPATH=build/mypyc (the compiled
        # build, streams/dev/mypyc_build.py) applies to the worker too; otherwise the installed checkout.
        [sys.executable, "-P", "-m", "streams", "worker"],
        env={**env, "CHURNWATCH_WEB_PORT": str(port)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    started.append(process)
    return process, port


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def so_far(ports: list[int], histogram: str) -> tuple[int, float]:
    """Observations of one histogram of the workers, and their sum: with ``SWEEPS`` the detector sweeps
    finished and their seconds, with ``CHECKPOINTS`` the checkpoints."""
    texts = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for port in ports]
    count = sum(metric(text, f"{histogram}_count") for text in texts)
    return int(count), sum(metric(text, f"{histogram}_sum") for text in texts)


SWEEPS, CHECKPOINTS = "churnwatch_sweep_duration_seconds", "churnwatch_checkpoint_duration_seconds"


def dropped_copies(ports: list[int]) -> int:
    """Events the workers dropped as copies of others (same event id or content)."""
    texts = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for port in ports]
    return int(sum(metric(text, "churnwatch_events_deduplicated_total ") for text in texts))


def gc_seconds(ports: list[int]) -> list[float]:
    """The workers' seconds in the cyclic collector so far, per generation (refreshed with the gauges)."""
    texts = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for port in ports]
    names = [f'churnwatch_gc_seconds_total{{generation="{g}"}}' for g in range(3)]
    return [sum(metric(text, name) for text in texts) for name in names]


def raw_rate(settings: Settings) -> tuple[int, float]:
    """Records of the event topics and a bare ``getmany`` loop's records/s over them."""
    count, seconds = asyncio.run(raw_getmany_rate(settings, settings.topics.events.values()))
    return count, count / seconds


def worker_metrics(ports: list[int]) -> tuple[float, int]:
    """Stored state bytes and accounts, from gauges updated after the fold."""
    texts: list[str] = []
    counted: list[float] = []

    def gauges_settled() -> bool:
        # The gauges are refreshed every 5 s: wait until two readings agree (no account still arriving).
        texts[:] = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text for port in ports]
        counted.append(sum(metric(text, "churnwatch_accounts_tracked ") for text in texts))
        return len(counted) > 1 and counted[-1] == counted[-2] > 0

    wait(gauges_settled, 120, "state gauges", interval=6)
    state = sum(metric(text, 'churnwatch_state_bytes{table="accounts"}') for text in texts)
    return state, int(counted[-1])


def start_profiler(pid: int, prefix: Path, index: int) -> subprocess.Popen[bytes]:
    """Sample a worker with py-spy (collapsed stacks, one line per stack; see summarise_profile)."""
    return subprocess.Popen(
        [
            # py-spy installs next to the interpreter (the .venv's bin), which need not be on PATH.
            shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            f"{prefix}-worker{index}.txt",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait(condition: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def run(
    accounts: int,
    days: int,
    workers: int,
    partitions: int,
    scale: float,
    batch_max_events: int | None = None,
    profile: Path | None = None,
    clock: str = "event",
    sweep_interval: float | None = None,
    worker_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    # The event clock sweeps the detectors at every simulated midnight of the backlog: detectors on.
    extra = {"CHURNWATCH_EVALUATION_CLOCK": clock, **(worker_env or {})}
    if sweep_interval is not None:
        extra["CHURNWATCH_SWEEP_INTERVAL_SECONDS"] = str(sweep_interval)
    if batch_max_events is not None:
        extra["CHURNWATCH_BATCH_MAX_EVENTS"] = str(batch_max_events)
    with benchmark_kafka(partitions, extra) as (home, env, settings):
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight - timedelta(days=days + 2)
        config = SimulationConfig(seed=5, accounts=accounts, days=days, start=start, event_scale=scale)
        sim = Simulation(config)
        topics = settings.topics.events
        produce_started = time.monotonic()
        sent = asyncio.run(
            send_all(
                settings,
                (
                    (topics[event["type"]], event["account_id"].encode(), orjson.dumps(event))
                    for event in sim.events()
                ),
            )
        )
        produce_s = time.monotonic() - produce_started
        raw_records, raw_before = raw_rate(settings)
        log = home / "workers.log"
        procs = [start_worker(env, log) for _ in range(workers)]
        began = time.monotonic()
        wait(lambda: all_ready(procs, partitions), 180, "workers ready")
        ready_s = time.monotonic() - began
        idle_rss = sum(rss_bytes(p.pid) for p, _ in procs)
        builds = sorted({worker_build(p.pid) for p, _ in procs})
        spies = [start_profiler(p.pid, profile, i) for i, (p, _) in enumerate(procs)] if profile else []
        ports = [port for _, port in procs]
        (sweeps0, sweep_s0), (checkpoints0, checkpoint_s0) = so_far(ports, SWEEPS), so_far(ports, CHECKPOINTS)
        gc0 = gc_seconds(ports)
        load0 = os.getloadavg()[0]
        cpu0 = {p.pid: cpu_seconds(p.pid) for p, _ in procs}
        t0 = time.monotonic()
        peak_rss = 0

        def folded() -> int:
            nonlocal peak_rss
            peak_rss = max(peak_rss, *(rss_bytes(p.pid) for p, _ in procs))
            return sum((stats(port) or {}).get("events_folded", 0) for _, port in procs)

        # Folded counts only valid events; the simulator emits none invalid. Some old subscription_created
        # events may be dead-lettered as late, and at 1 M accounts one event came twice (same id or content;
        # the simulator or a producer retry), which the worker drops as a duplicate: count those too.
        def done() -> bool:
            total = sum(
                ((s := stats(port)) or {}).get("events_folded", 0) + (s or {}).get("deadletters", 0)
                for _, port in procs
            )
            folded()
            return total >= sent or total + dropped_copies(ports) >= sent

        wait(done, 3600, "backlog folded")
        elapsed = time.monotonic() - t0
        cpu = sum(cpu_seconds(p.pid) - cpu0[p.pid] for p, _ in procs)
        load1 = os.getloadavg()[0]
        (sweeps1, sweep_s1), (checkpoints1, checkpoint_s1) = so_far(ports, SWEEPS), so_far(ports, CHECKPOINTS)
        state_bytes, accounts_tracked = worker_metrics([port for _, port in procs])
        gc1 = gc_seconds(ports)  # the gauges just settled: refreshed after the fold
        rss_now = sum(rss_bytes(p.pid) for p, _ in procs)
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
        # Recovery: stop every worker, start one, time until it owns all partitions (tables restored).
        for process, _ in procs:
            process.terminate()
            process.wait(60)
        restarted, port = start_worker(env, log)
        r0 = time.monotonic()
        wait(
            lambda: (s := stats(port)) is not None and s["ready"] and len(s["partitions"]) == partitions,
            1800,
            "recovery",
        )
        recovery_s = time.monotonic() - r0
        rss_after_recovery = rss_bytes(restarted.pid)
        *_, accounts_recovered = worker_metrics([port])  # the restarted worker holds every account again
        restarted.terminate()
        restarted.wait(60)
        _, raw_after = raw_rate(settings)
        return {
            "clock": clock,
            "worker_build": "/".join(builds),
            "worker_env": worker_env or {},
            "batch_max_events": batch_max_events or setting("batch_max_events").info.default,
            "workers": workers,
            "partitions": partitions,
            "accounts": accounts_tracked,
            "events": sent,
            "produce_events_per_s": round(sent / produce_s),
            "worker_ready_s": round(ready_s, 1),
            "fold_seconds": round(elapsed, 1),
            "events_per_s": round(sent / elapsed),
            "events_per_s_per_worker": round(sent / elapsed / workers),
            "raw_getmany_records": raw_records,
            "raw_getmany_records_per_s": [round(raw_before), round(raw_after)],  # before the workers, after
            "worker_to_raw": [round(sent / elapsed / workers / raw, 2) for raw in (raw_before, raw_after)],
            "load_average_1min": [round(load0, 1), round(load1, 1)],  # at the fold's start and end
            "worker_cpu_seconds": round(cpu, 1),
            "worker_cpu_us_per_event": round(cpu / sent * 1e6, 1),
            "cpu_utilisation_of_2_cores": round(cpu / elapsed / 2, 2),
            "peak_rss_mb": round(peak_rss / 2**20, 1),
            "rss_growth_per_account_bytes": round((rss_now - idle_rss) / max(1, accounts_tracked)),
            "state_bytes_per_account": round(state_bytes / max(1, accounts_tracked)),
            "detector_sweeps_during_fold": sweeps1 - sweeps0,
            "detector_sweep_seconds_during_fold": round(sweep_s1 - sweep_s0, 1),
            "checkpoints_during_fold": checkpoints1 - checkpoints0,
            "checkpoint_seconds_during_fold": round(checkpoint_s1 - checkpoint_s0, 1),
            # Per generation, from the fold's start to the gauges' refresh after it.
            "gc_seconds_during_fold": [round(b - a, 1) for a, b in zip(gc0, gc1, strict=True)],
            "recovery_seconds": round(recovery_s, 1),
            "recovery_accounts_per_s": round(accounts_tracked / recovery_s),
            "accounts_recovered": accounts_recovered,
            "rss_after_recovery_mb": round(rss_after_recovery / 2**20, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="simulator event_scale")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--batch-max-events", type=int, default=None, help="the workers' CHURNWATCH_BATCH_MAX_EVENTS"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record py-spy collapsed stacks of each worker while it folds, to PROFILE-workerN.txt",
    )
    parser.add_argument(
        "--clock",
        choices=["event", "wall"],
        default="event",
        help="the workers' CHURNWATCH_EVALUATION_CLOCK ('event': detectors sweep each simulated midnight)",
    )
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=None,
        help="the workers' CHURNWATCH_SWEEP_INTERVAL_SECONDS (wall clock)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="CHURNWATCH_X=VALUE",
        help="extra setting for the workers (repeatable), e.g. CHURNWATCH_STATE_CACHE_ACCOUNTS=1000000",
    )
    args = parser.parse_args()
    for count in args.workers:
        result = run(
            args.accounts,
            args.days,
            count,
            args.partitions,
            args.scale,
            args.batch_max_events,
            args.profile,
            args.clock,
            args.sweep_interval,
            dict(item.split("=", 1) for item in args.worker_env),
        )
        print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
