"""A day of live traffic on months-old accounts: a worker's checkpoints and memory (issue 15).

Usage::

    .venv/bin/python benchmarks/old_accounts.py --base 500 --copies 200 --days 90 --rounds 2

Issue 15's throughput benchmark (``pipeline_throughput.py``) replays a backlog of young accounts, where a row
is one frame and every account is written about once per event. This one measures the case rows in two
frames were built for (``CHURNWATCH_STATE_ROWS_IN_PARTS``, docs/performance.md): accounts with months of
history, written at many checkpoints of one day, on the wall clock as a live worker runs.

For each round and each arm (``parts``: the defaults, two frames for old accounts; ``one``: every row one
frame, ``CHURNWATCH_STATE_ROWS_IN_PARTS=false``; ``kept`` / ``dropped``: two frames, and the decoded detector
states kept or dropped between sweeps, ``CHURNWATCH_STATE_DECODED_DETECTORS``, whose default on the wall clock
is ``dropped``), on a private embedded broker:

1. The simulator's ``--base`` accounts, ``--days`` days up to today's UTC midnight, are replayed in this
   process (once, before the rounds); each final state, copied ``--copies`` times under new account ids
   (``acct-000123.0042``), is written to the ``accounts`` changelog in the arm's row format, in the
   partition the worker gives the copy.
2. Today's events of each base account (the simulator's next day), copied for every copy of it, with their
   times squeezed into today's midnight .. now (so none is in the future) and sorted by time, are the
   traffic. The first ``--warm`` of the day (by time) is produced before the worker starts.
3. A worker (wall clock, a sweep every ``--sweep-interval`` s, a state cache for every account) restores the
   accounts, folds the warm-up and runs the day's first sweep (which evaluates every account and so changes
   every detector state) and writes what changed. Then the rest of the day is produced, and measured until
   every event is folded: the worker's resident set after the warm-up and at the end, its CPU µs per
   event, its checkpoints' seconds per event (the ``churnwatch_checkpoint_duration_seconds`` histogram:
   encoding, the table's writes, the changelog's sends) and the rows they wrote by form
   (``churnwatch_state_rows_written_total``), the sweeps' seconds, events/s from the start of producing
   (the producer shares the two cores).

The raw ``getmany`` rate of the event topics is read after each round. Figures go to stdout as JSON;
docs/performance.md quotes them. Timings depend on the machine and on what else runs: never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pipeline_throughput import (  # noqa: E402
    CHECKPOINTS,
    SWEEPS,
    benchmark_kafka,
    cpu_seconds,
    dropped_copies,
    metric,
    raw_rate,
    rss_bytes,
    so_far,
    start_worker,
    stats,
    wait,
)
from benchmarks.restore import partition_of, produce_rows  # noqa: E402
from streams.dev.producer import send_all  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.engine import AccountState  # noqa: E402
from streams.events import EVENT_TYPES  # noqa: E402
from streams.offline.replay import replay_file  # noqa: E402
from streams.settings import Settings  # noqa: E402

DAY = timedelta(days=1)
# arm -> (CHURNWATCH_STATE_ROWS_IN_PARTS, CHURNWATCH_STATE_DECODED_DETECTORS)
ARMS = {
    "parts": ("true", "auto"),
    "one": ("false", "auto"),
    "kept": ("true", "kept"),
    "dropped": ("true", "dropped"),
}


@dataclass(frozen=True, slots=True)
class Day:
    """The replayed accounts' final states and today's traffic of the base accounts."""

    states: dict[str, AccountState]  # base account id -> its state at today's midnight
    today: list[tuple[int, dict[str, Any]]]  # (squeezed time in ms, event) of the base accounts, by time
    history_events: int


def parse_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def simulate(base: int, days: int, seed: int, scale: float) -> Day:
    """Replay ``days`` days of ``base`` accounts up to today's midnight; keep the next day's events."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimulationConfig(
        seed=seed, accounts=base, days=days + 1, start=midnight - days * DAY, event_scale=scale
    )
    midnight_ms = int(midnight.timestamp() * 1000)
    # Squeeze the simulated day into midnight .. now (minus a margin), so no event is in the future.
    squeeze = (time.time() * 1000 - 120_000 - midnight_ms) / DAY.total_seconds() / 1000
    today: list[tuple[int, dict[str, Any]]] = []
    history = 0
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as file:
        for event in Simulation(config).events():
            ts_ms = parse_ms(event["ts"])
            if ts_ms < midnight_ms:
                file.write(orjson.dumps(event) + b"\n")
                history += 1
            elif ts_ms < midnight_ms + 86_400_000:
                today.append((midnight_ms + int((ts_ms - midnight_ms) * squeeze), event))
    try:
        result = replay_file(Path(file.name))
    finally:
        os.unlink(file.name)
    states = {key.decode(): state for key, state in result.account_states.items()}
    today.sort(key=lambda pair: pair[0])
    return Day(states, today, history)


def copy_id(account: str, copy: int) -> str:
    return f"{account}.{copy:04d}"


def rows(day: Day, copies: int, partitions: int, parts: bool) -> Iterator[tuple[bytes, int, bytes]]:
    """Every copy's row, in the arm's format and the copy's partition (its offsets cleared)."""
    for account, state in day.states.items():
        state.applied_offsets = [-1] * len(EVENT_TYPES)
        by_partition: dict[int, bytes] = {}
        for copy in range(copies):
            key = copy_id(account, copy).encode()
            partition = partition_of(key, partitions)
            if partition not in by_partition:
                state.partition = partition
                by_partition[partition] = state.to_bytes(parts=parts)
            yield key, partition, by_partition[partition]


def traffic(
    settings: Settings, events: list[tuple[int, dict[str, Any]]], copies: int
) -> list[tuple[str, bytes, bytes]]:
    """Kafka records of ``events`` for every copy of their accounts, in time order."""
    topics = settings.topics.events
    records = []
    for ts_ms, event in events:
        stamp = datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for copy in range(copies):
            account = copy_id(event["account_id"], copy)
            moved = {**event, "account_id": account, "ts": stamp}
            if "event_id" in moved:
                moved["event_id"] = copy_id(moved["event_id"], copy)
            records.append((topics[event["type"]], account.encode(), orjson.dumps(moved)))
    return records


FORMS = ("one_frame", "two_frames", "closed_copied")  # churnwatch_state_rows_written_total's forms


def rows_written(port: int) -> list[int]:
    """Account rows the worker's checkpoints wrote so far, by form (:data:`FORMS`)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return [int(metric(text, f'churnwatch_state_rows_written_total{{form="{form}"}}')) for form in FORMS]


def progress(port: int) -> int:
    """Events the worker folded, dead-lettered or dropped as copies so far."""
    answer = stats(port) or {}
    return int(answer.get("events_folded", 0)) + int(answer.get("deadletters", 0)) + dropped_copies([port])


def settled(port: int) -> None:
    """Wait until the worker's checkpoints stop (two readings a checkpoint interval apart agree): what the
    warm-up and the sweep changed is written (an idle checkpoint records nothing)."""
    counts: list[int] = []

    def still() -> bool:
        counts.append(so_far([port], CHECKPOINTS)[0])
        return len(counts) > 1 and counts[-1] == counts[-2]

    wait(still, 300, "checkpoints to settle", interval=6)


def run_arm(arm: str, day: Day, args: argparse.Namespace) -> dict[str, Any]:
    extra = {
        "CHURNWATCH_EVALUATION_CLOCK": "wall",
        "CHURNWATCH_SWEEP_INTERVAL_SECONDS": str(args.sweep_interval),
        "CHURNWATCH_STATE_CACHE_ACCOUNTS": str(2 * len(day.states) * args.copies),
        "CHURNWATCH_STATE_ROWS_IN_PARTS": ARMS[arm][0],
        "CHURNWATCH_STATE_DECODED_DETECTORS": ARMS[arm][1],
    }
    with benchmark_kafka(args.partitions, extra) as (home, env, settings):
        seeded, size = asyncio.run(
            produce_rows(settings, rows(day, args.copies, args.partitions, ARMS[arm][0] == "true"))
        )
        warm_until = int(len(day.today) * args.warm)
        warm = asyncio.run(send_all(settings, traffic(settings, day.today[:warm_until], args.copies)))
        rest = traffic(settings, day.today[warm_until:], args.copies)
        process, port = start_worker(env, home / "worker.log")
        wait(lambda: (s := stats(port)) is not None and s["ready"], 600, "worker ready")
        wait(lambda: progress(port) >= warm, 900, "warm-up folded", interval=1)
        wait(lambda: so_far([port], SWEEPS)[0] >= 1, 900, "the day's first sweep", interval=1)
        settled(port)
        rss_settled = rss_bytes(process.pid)
        cpu0, (sweeps0, sweep_s0), (checks0, check_s0) = (
            cpu_seconds(process.pid),
            so_far([port], SWEEPS),
            so_far([port], CHECKPOINTS),
        )
        written0 = rows_written(port)
        t0 = time.monotonic()
        sent = asyncio.run(send_all(settings, iter(rest)))
        produce_s = time.monotonic() - t0
        wait(lambda: progress(port) >= warm + sent, 1800, "the day folded", interval=0.5)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(process.pid) - cpu0
        (sweeps1, sweep_s1), (checks1, check_s1) = so_far([port], SWEEPS), so_far([port], CHECKPOINTS)
        rss = rss_bytes(process.pid)
        written = [after - before for before, after in zip(written0, rows_written(port), strict=True)]
        process.terminate()
        process.wait(60)
        _, raw = raw_rate(settings)
        return {
            "arm": arm,
            "rows_in_parts": ARMS[arm][0],
            "decoded_detectors": ARMS[arm][1],
            "accounts": seeded,
            "row_bytes_mean": round(size / seeded),
            "warm_up_events": warm,
            "events": sent,
            "produce_s": round(produce_s, 1),
            "fold_s": round(elapsed, 1),
            "events_per_s": round(sent / elapsed),
            "worker_cpu_us_per_event": round(cpu / sent * 1e6, 1),
            "checkpoints": checks1 - checks0,
            "checkpoint_us_per_event": round((check_s1 - check_s0) / sent * 1e6, 1),
            "rows_written": dict(zip(FORMS, written, strict=True)),
            "rows_per_event": round(sum(written) / sent, 3),
            "checkpoint_us_per_row": round((check_s1 - check_s0) / max(1, sum(written)) * 1e6, 1),
            "sweeps": sweeps1 - sweeps0,
            "sweep_s": round(sweep_s1 - sweep_s0, 1),
            "rss_after_warm_up_mb": round(rss_settled / 2**20),
            "rss_mb": round(rss / 2**20),
            "raw_getmany_records_per_s": round(raw),
            "load_average_1min": round(os.getloadavg()[0], 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=int, default=500, help="simulated accounts")
    parser.add_argument("--copies", type=int, default=200, help="copies of each (accounts = base x copies)")
    parser.add_argument("--days", type=int, default=90, help="days of history before today")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="simulator event_scale")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--warm", type=float, default=0.25, help="share of today's events before measuring")
    parser.add_argument("--sweep-interval", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["parts", "one"])
    args = parser.parse_args()
    began = time.monotonic()
    day = simulate(args.base, args.days, args.seed, args.scale)
    print(
        orjson.dumps(
            {
                "base_accounts": len(day.states),
                "history_events": day.history_events,
                "today_events_per_copy": len(day.today),
                "replay_s": round(time.monotonic() - began, 1),
            }
        ).decode(),
        flush=True,
    )
    for round_ in range(args.rounds):
        arms = args.arms if round_ % 2 == 0 else list(reversed(args.arms))
        for arm in arms:
            print(orjson.dumps({"round": round_ + 1, **run_arm(arm, day, args)}).decode(), flush=True)


if __name__ == "__main__":
    main()
