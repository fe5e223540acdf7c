"""Latency from the event that triggers an alert to the alert in the outbox, under a steady event rate.

Usage::

    .venv/bin/python benchmarks/alert_latency.py --accounts 2000 --days 30 --rate 10000 [--end 2026-12-03]
    .venv/bin/python benchmarks/alert_latency.py --accounts 100000 --days 20 --scale 0.25   # ~5.5 M events

A private embedded broker and one worker on the event-time clock (``CHURNWATCH_EVALUATION_CLOCK=event``):
the simulator's weeks of history are produced at a steady ``--rate`` events/s, so simulated days pass in
seconds and every UTC midnight the watermark crosses makes the worker sweep its accounts and raise alerts.

Latency of one alert = the Kafka timestamp of the alert record (written by the worker) minus the Kafka
timestamp of the first usage event at or after the midnight the alert was raised for (the record that let
the worker's clock cross it; both are CreateTime stamps from this machine's clock). That is the pipeline's
part: fetch, fold, sweep, produce and flush. The detectors judge completed days, so how soon after the
customer's behaviour an alert can come is a detection question (docs/detection.md), not measured here.

Prints one JSON object (p50/p90/p99/max in seconds, alerts, achieved rate, worker CPU, ``worker_build``).
With ``PYTHONPATH=build/mypyc`` the worker runs the compiled build (``deploy/dev compile``;
docs/performance.md, "Compiled sweep (mypyc)"). Timings depend on the machine and what else runs: never
assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pipeline_throughput import (  # noqa: E402
    benchmark_kafka,
    cpu_seconds,
    metric,
    start_worker,
    stats,
    wait,
)
from detectors.windows import DAY_MS  # noqa: E402
from streams.dev.mypyc_build import worker_build  # noqa: E402
from streams.dev.producer import produce_live  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.events import parse_ts  # noqa: E402
from tests.kafka_harness import read_all  # noqa: E402

END = date(2026, 12, 3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    accounts: int, days: int, rate: float, partitions: int, end: datetime, scale: float = 1.0
) -> dict[str, Any]:
    extra = {"CHURNWATCH_EVALUATION_CLOCK": "event", "CHURNWATCH_BATCH_WITHIN_SECONDS": "0.05"}
    with benchmark_kafka(partitions, extra) as (home, env, settings):
        start = end - timedelta(days=days + 2)
        config = SimulationConfig(seed=5, accounts=accounts, days=days, start=start, event_scale=scale)
        worker, port = start_worker(env, home / "worker.log")
        wait(lambda: bool((s := stats(port)) and s["partitions"]), 180, "worker ready")
        cpu0 = cpu_seconds(worker.pid)
        build = worker_build(worker.pid)
        t0 = time.monotonic()
        sent = asyncio.run(produce_live(settings, Simulation(config).events(), rate=rate))
        produce_s = time.monotonic() - t0
        wait(
            lambda: (s := stats(port)) is not None and s["events_folded"] + s["deadletters"] >= sent,
            600,
            "everything folded",
        )
        busy_s = time.monotonic() - t0
        cpu = cpu_seconds(worker.pid) - cpu0
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        checkpoints = {
            name: metric(text, f"churnwatch_checkpoint_duration_seconds_{name} ") for name in ("count", "sum")
        }
        sweeps = {
            name: metric(text, f"churnwatch_sweep_duration_seconds_{name} ") for name in ("count", "sum")
        }
        worker.terminate()
        worker.wait(60)

        # First wall-clock (Kafka) timestamp of a usage event at or after each midnight.
        first_seen_day: dict[int, int] = {}
        for record in asyncio.run(read_all(settings.kafka.bootstrap, settings.topics.usage, timeout=300)):
            day = parse_ts(orjson.loads(record.value)["ts"]) // DAY_MS
            if day not in first_seen_day or record.timestamp < first_seen_day[day]:
                first_seen_day[day] = record.timestamp
        first_at_or_after: dict[int, int] = {}
        earliest: int | None = None
        for day in sorted(first_seen_day, reverse=True):
            earliest = first_seen_day[day] if earliest is None else min(earliest, first_seen_day[day])
            first_at_or_after[day] = earliest
        latencies: list[float] = []
        for record in asyncio.run(read_all(settings.kafka.bootstrap, settings.topics.alerts, timeout=300)):
            alert = orjson.loads(record.value)
            trigger = first_at_or_after.get(alert["event_ts_ms"] // DAY_MS)
            if trigger is not None:
                latencies.append((record.timestamp - trigger) / 1000)
        return {
            "accounts": accounts,
            "days": days,
            "event_scale": scale,
            "events": sent,
            "target_rate": rate,
            "achieved_rate": round(sent / produce_s),
            "alerts": len(latencies),
            "latency_p50_s": round(percentile(latencies, 0.50), 3) if latencies else None,
            "latency_p90_s": round(percentile(latencies, 0.90), 3) if latencies else None,
            "latency_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
            "latency_max_s": round(max(latencies), 3) if latencies else None,
            "worker_cpu_utilisation_of_one_core": round(cpu / busy_s, 2),
            # The state lock held by checkpoints and sweeps (no event is folded meanwhile); 0: not measured.
            "checkpoints": int(checkpoints["count"]),
            "checkpoint_seconds_total": round(checkpoints["sum"], 1),
            "sweeps": int(sweeps["count"]),
            "sweep_seconds_total": round(sweeps["sum"], 1),
            "worker_build": build,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="the simulator's event_scale (0.25: a quarter of the events)"
    )
    parser.add_argument(
        "--end",
        type=date.fromisoformat,
        default=END,
        help="the simulated days end two days before this date (default %(default)s: the days of the runs in "
        "docs/performance.md; which days are weekends or holidays changes the figures)",
    )
    args = parser.parse_args()
    end = datetime.combine(args.end, datetime.min.time(), UTC)
    result = run(args.accounts, args.days, args.rate, args.partitions, end, args.scale)
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
