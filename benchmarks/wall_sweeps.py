"""A wall-clock worker in steady state: what its timer sweeps cost while live events trickle in (issue 15).

Usage::

    .venv/bin/python benchmarks/wall_sweeps.py --accounts 100000 --days 4 --rate 200 --seconds 180
    .venv/bin/python benchmarks/wall_sweeps.py --accounts 10000 --days 30 --modes changed all   # the default
    .venv/bin/python benchmarks/wall_sweeps.py --accounts 100000 --days 16 --scale 0.25 --interval 1 \
        --rate 10000 --bursts 2 --seconds 120 --modes changed      # support bursts -> alerts

For each mode, on a private embedded broker: the simulator's history of ``--accounts`` x ``--days``, ending at
today's UTC midnight, is produced as a backlog; one worker on the wall clock
(``CHURNWATCH_EVALUATION_CLOCK=wall``, ``CHURNWATCH_SWEEP_INTERVAL_SECONDS=--interval``) folds it and sweeps.
Once it has finished a sweep that began after the backlog was folded (so every account is judged for today),
live usage events (timestamped now, random accounts) are produced at ``--rate`` events/s for ``--seconds``,
while ``/churnwatch/live/`` is asked every 0.5 s. Over that live phase it reports the worker's CPU (share of
one core), its sweeps (count, mean and longest seconds), the accounts they evaluated by scope
(``churnwatch_accounts_swept_total``), how long after the last live event was produced it had folded every
event, and the time ``/churnwatch/live/`` took to answer.

``--bursts B`` adds, B times a second, a support burst on a random account (``--burst-tickets`` urgent tickets
and an escalation) and reports, per mode, the seconds from each burst's last event to the first alert on its
account (the intraday event → alert latency; bursts that raised no alert are counted apart, and so are those
alerted before their last event was sent: the producer paused within the burst and the worker was quicker).

``--worker-env CHURNWATCH_X=V`` adds a worker setting (the harness drops ``CHURNWATCH_*`` from the
environment), ``--log PATH`` keeps the worker's log.

Modes: ``changed`` (``CHURNWATCH_SWEEP_CHANGED_ONLY=true``, the default: a day's later sweeps evaluate only
the accounts support or billing events, late usage or answers reached) and ``all`` (``false``: every account
at every sweep, what every version before it did). Prints one JSON object per mode. Timings depend on the
machine and what else runs: never assert on them; docs/performance.md ("Wall-clock sweeps of what changed",
"Intraday alerts on the wall clock") quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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
from streams.dev.producer import produce_live, send_all  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.events import ts_text  # noqa: E402
from tests.kafka_harness import read_all  # noqa: E402

MODES = {"changed": "true", "all": "false"}


def live_events(accounts: int, seed: int, burst_every: int, tickets: int) -> Iterator[dict[str, Any]]:
    """Usage events of random simulated accounts, stamped with the time they are made; with ``burst_every``,
    after every that many, a support burst on another random account: ``tickets`` urgent tickets and an
    escalation (its last event)."""
    rng = random.Random(seed)
    for n in itertools.count():
        account = f"acct-{rng.randrange(accounts):06d}"
        now = ts_text(int(time.time() * 1000))
        yield {
            "type": "usage",
            "account_id": account,
            "ts": now,
            "event": "page_viewed",
            "user_id": f"{account}-u001",
            "event_id": f"live-{seed}-{n}",
        }
        if burst_every and n % burst_every == burst_every - 1:
            yield from support_burst(f"acct-{rng.randrange(accounts):06d}", f"burst-{seed}-{n}", tickets)


def support_burst(account: str, prefix: str, tickets: int) -> Iterator[dict[str, Any]]:
    for k in range(tickets + 1):
        kind = "ticket_opened" if k < tickets else "escalated"
        yield {
            "type": "support",
            "account_id": account,
            "ts": ts_text(int(time.time() * 1000)),
            "kind": kind,
            "priority": "urgent",
            "event_id": f"{prefix}-{k}",
        }


def burst_latencies(
    settings: Any, bursts: dict[str, float], started: dict[str, float], live_from: float
) -> dict[str, Any]:
    """Seconds from each burst's last event (sent) to the first alert on its account after it; and how many
    accounts were alerted during their burst (after its first event was sent, before its last: the producer
    paused between them, waiting for acks or its rate, and the worker was quicker)."""
    first: dict[str, float] = {}
    during: set[str] = set()
    earlier: set[str] = set()  # alerted before their burst began (an episode already open)
    records = asyncio.run(read_all(settings.kafka.bootstrap, settings.topics.alerts, timeout=120))
    for record in records:
        account = orjson.loads(record.value)["account_id"]
        sent = bursts.get(account)
        at = record.timestamp / 1000
        if sent is not None and at < started[account]:
            earlier.add(account)
        if sent is not None and at >= sent and account not in first:
            first[account] = at - sent
        elif sent is not None and started[account] <= at < sent:
            during.add(account)
    ordered = sorted(first.values())
    return {
        "bursts": len(bursts),
        "alerted_during_burst": len(during),
        "alerted_before_burst": len(earlier),
        "alerts_in_topic": len(records),
        "alerts_before_live_phase": sum(record.timestamp / 1000 < live_from for record in records),
        "alerted": len(ordered),
        "p50_s": round(ordered[len(ordered) // 2], 3) if ordered else None,
        "p99_s": round(ordered[int(0.99 * (len(ordered) - 1))], 3) if ordered else None,
        "max_s": round(ordered[-1], 3) if ordered else None,
    }


def snapshot(port: int, pid: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    return {
        "cpu": cpu_seconds(pid),
        "at": time.monotonic(),
        "sweeps": metric(text, "churnwatch_sweep_duration_seconds_count"),
        "sweep_s": metric(text, "churnwatch_sweep_duration_seconds_sum"),
        "all": metric(text, 'churnwatch_accounts_swept_total{scope="all"}'),
        "changed": metric(text, 'churnwatch_accounts_swept_total{scope="changed"}'),
    }


class Prober(threading.Thread):
    """Asks ``/churnwatch/live/`` every half second; notes the seconds each answer took (5 s: none)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/churnwatch/live/"
        self.times: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            began = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url, timeout=5.0)
            self.times.append(time.monotonic() - began)


def folded(port: int) -> int:
    s = stats(port) or {}
    return int(s.get("events_folded", 0) + s.get("deadletters", 0))


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    extra = {
        "CHURNWATCH_EVALUATION_CLOCK": "wall",
        "CHURNWATCH_SWEEP_INTERVAL_SECONDS": str(args.interval),
        "CHURNWATCH_SWEEP_CHANGED_ONLY": MODES[mode],
        "CHURNWATCH_STATE_CACHE_ACCOUNTS": str(args.cache),
        **dict(item.split("=", 1) for item in args.worker_env),
    }
    with benchmark_kafka(args.partitions, extra) as (home, env, settings):
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight - timedelta(days=args.days)
        config = SimulationConfig(
            seed=5, accounts=args.accounts, days=args.days, start=start, event_scale=args.scale
        )
        topics = settings.topics.events
        history = (
            (topics[event["type"]], event["account_id"].encode(), orjson.dumps(event))
            for event in Simulation(config).events()
        )
        sent = asyncio.run(send_all(settings, history))
        worker, port = start_worker(env, home / "worker.log")
        wait(lambda: bool((s := stats(port)) and s["partitions"]), 300, "worker ready")
        wait(lambda: folded(port) >= sent, 3600, "backlog folded", interval=1.0)
        after_fold = snapshot(port, worker.pid)["sweeps"]
        # A sweep that began after the fold has ended: every account judged for today.
        wait(
            lambda: snapshot(port, worker.pid)["sweeps"] >= after_fold + 2,
            1800,
            "a sweep after the fold",
            1.0,
        )
        before = snapshot(port, worker.pid)
        load0 = os.getloadavg()[0]
        prober = Prober(port)
        prober.start()
        deadline = time.monotonic() + args.seconds
        live_from = time.time()
        bursts: dict[str, float] = {}  # account -> when its burst's last event was sent (epoch s)
        started: dict[str, float] = {}  # account -> when its burst's first event was sent

        def noted(_: int, event: dict[str, Any]) -> None:
            if event.get("kind") == "escalated":  # a burst's last event
                bursts.setdefault(event["account_id"], time.time())
            elif event["type"] == "support":
                started.setdefault(event["account_id"], time.time())

        burst_every = round(args.rate / args.bursts) if args.bursts else 0
        live = asyncio.run(
            produce_live(
                settings,
                live_events(args.accounts, 7, burst_every, args.burst_tickets),
                rate=args.rate,
                on_sent=noted,
                should_stop=lambda: time.monotonic() > deadline,
            )
        )
        produced = time.monotonic()
        wait(lambda: folded(port) >= sent + live, 600, "live events folded", interval=0.1)
        caught_up = time.monotonic() - produced
        after = snapshot(port, worker.pid)
        prober.stop.set()
        prober.join()
        load1 = os.getloadavg()[0]
        if args.log is not None:
            shutil.copyfile(home / "worker.log", args.log.with_suffix(f".{mode}.log"))
        out = report(mode, args, sent, live, before, after, caught_up, prober.times, (load0, load1))
        if bursts:
            out["support_bursts"] = burst_latencies(settings, bursts, started, live_from)
        return out


def report(
    mode: str,
    args: argparse.Namespace,
    backlog: int,
    live: int,
    before: dict[str, float],
    after: dict[str, float],
    caught_up: float,
    answers: list[float],
    load: tuple[float, float],
) -> dict[str, Any]:
    seconds = after["at"] - before["at"]
    sweeps = after["sweeps"] - before["sweeps"]
    ordered = sorted(answers)
    return {
        "mode": mode,
        "accounts": args.accounts,
        "days": args.days,
        "backlog_events": backlog,
        "live_events": live,
        "live_rate": round(live / args.seconds, 1),
        "live_phase_s": round(seconds, 1),
        "worker_cpu_share": round((after["cpu"] - before["cpu"]) / seconds, 3),
        "sweeps": int(sweeps),
        "sweep_mean_s": round((after["sweep_s"] - before["sweep_s"]) / sweeps, 3) if sweeps else None,
        "accounts_swept": {scope: int(after[scope] - before[scope]) for scope in ("all", "changed")},
        "caught_up_after_last_event_s": round(caught_up, 2),
        "live_endpoint_s": {
            "median": round(statistics.median(ordered), 3) if ordered else None,
            "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3) if ordered else None,
            "max": round(ordered[-1], 3) if ordered else None,
        },
        "load_average_1min": [round(load[0], 1), round(load[1], 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0, help="the simulator's event_scale")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--interval", type=float, default=60.0, help="CHURNWATCH_SWEEP_INTERVAL_SECONDS")
    parser.add_argument("--cache", type=int, default=50_000, help="CHURNWATCH_STATE_CACHE_ACCOUNTS")
    parser.add_argument("--rate", type=float, default=200.0, help="live events/s")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the live phase")
    parser.add_argument("--bursts", type=float, default=0.0, help="support bursts/s among the live events")
    parser.add_argument("--burst-tickets", type=int, default=8, help="urgent tickets a burst (+1 escalation)")
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["changed", "all"])
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="CHURNWATCH_X=VALUE",
        help="extra setting for the worker (repeatable), e.g. CHURNWATCH_LOG_LEVEL=info",
    )
    parser.add_argument("--log", type=Path, help="keep the worker's log as LOG.<mode>.log")
    args = parser.parse_args()
    for mode in args.modes:
        print(orjson.dumps(run_mode(mode, args)).decode(), flush=True)


if __name__ == "__main__":
    main()
