"""Restore of the ``accounts`` table at start and at a takeover, next to the raw ``getmany`` rate (issue 15).

Usage::

    .venv/bin/python benchmarks/restore.py --accounts 1000000
    .venv/bin/python benchmarks/restore.py --accounts 100000 --standby

On a private embedded broker it seeds the ``accounts`` changelog with ``--accounts`` rows in the worker's own
format (:meth:`~streams.engine.AccountState.to_bytes` of a window with ``--days`` days of usage, each row in
the partition the worker would give it; ``--versions`` records per account, as before compaction), then:

* **raw**: reads the whole changelog with one ``AIOKafkaConsumer`` and ``getmany`` (what the event reader
  does): records/s, the consumer's own limit on this broker in this run;
* **empty start**: a worker of another app id (no state) from process start to ready: the fixed cost;
* **restart**: a worker from process start to ready owning every partition, then the accounts it counts;
* **scale-out**: a second worker from start until both are ready with the partitions split (the second
  restores its half);
* **takeover**: SIGKILL of the first, then until the second owns every partition and is ready (includes the
  group's session timeout, ``CHURNWATCH_SESSION_TIMEOUT_SECONDS``, 10 s here, before Kafka notices);
* **graceful takeover**: with ``--graceful``, SIGTERM instead (the worker leaves the group at once).

With ``--standby`` the workers keep one standby replica (``CHURNWATCH_STANDBY_REPLICAS=1``), and the takeover
waits for the survivor's standby to catch up first. Figures go to stdout as JSON; docs/performance.md quotes
them. Timings depend on the machine and on what else runs: never assert on them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pipeline_throughput import benchmark_kafka, rss_bytes, start_worker, stats, wait  # noqa: E402
from benchmarks.raw_getmany import raw_getmany_rate  # noqa: E402
from detectors.windows import AccountWindow, WindowConfig  # noqa: E402
from streams.engine import AccountState  # noqa: E402
from streams.live.kafka_client import client_options  # noqa: E402
from streams.offline.backfill_store import changelog_topic, ensure_changelog  # noqa: E402
from streams.settings import Settings  # noqa: E402

TEMPLATES = 64  # distinct windows; rows differ by template and partition (restore does not look inside)


def template_windows(days: int) -> list[AccountWindow]:
    """Windows with ``days`` days of usage each, of a few users: rows of the size a young account has."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    windows = []
    for t in range(TEMPLATES):
        window = AccountWindow(WindowConfig())
        for day in range(days):
            ts_ms = int((today - timedelta(days=days - day)).timestamp() * 1000) + 3_600_000
            for user in range(1 + t % 5):
                window.add_usage(ts_ms + user * 60_000, "login", f"u{user}", 1 + (t + day) % 7)
        windows.append(window)
    return windows


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (the event topics', so the worker's)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def seed(settings: Settings, accounts: int, days: int, versions: int) -> tuple[int, int]:
    """Write ``accounts`` rows (``versions`` records each) to the changelog; returns (records, bytes)."""
    partitions = settings.topics.partitions
    rows = [
        [AccountState(window, partition).to_bytes() for partition in range(partitions)]
        for window in template_windows(days)
    ]

    def records() -> Iterator[tuple[bytes, int, bytes]]:
        for version in range(versions):
            for index in range(accounts):
                key = b"acct-%07d" % index
                partition = partition_of(key, partitions)
                yield key, partition, rows[(index + version) % TEMPLATES][partition]

    return await produce_rows(settings, records())


async def produce_rows(settings: Settings, rows: Iterable[tuple[bytes, int, bytes]]) -> tuple[int, int]:
    """Write ``(key, partition, row)`` records to the ``accounts`` changelog (created if missing), as a
    worker's checkpoints would; returns (records, bytes)."""
    topic = changelog_topic(settings)
    admin = AIOKafkaAdminClient(request_timeout_ms=10_000, **client_options(settings))
    await admin.start()
    try:
        await ensure_changelog(admin, settings, topic)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        acks=1, linger_ms=20, max_batch_size=1024 * 1024, compression_type=None, **client_options(settings)
    )
    await producer.start()
    records = size = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, partition, value in rows:
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
            records += 1
            size += len(value)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return records, size


def owned(port: int) -> list[int]:
    answer = stats(port)
    return list(answer["partitions"]) if answer is not None and answer["ready"] else []


def accounts_counted(port: int, expected: int, timeout: float) -> int:
    """The accounts the worker counts (its gauge refreshes every 5 s) once they reach ``expected``."""
    deadline = time.monotonic() + timeout
    last = 0
    while time.monotonic() < deadline:
        last = int((stats(port) or {}).get("accounts", 0))
        if last >= expected:
            break
        time.sleep(0.5)
    return last


def timed(condition: Any, what: str, timeout: float = 1800) -> float:
    began = time.monotonic()
    wait(condition, timeout, what, interval=0.1)
    return round(time.monotonic() - began, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = {
        "CHURNWATCH_STANDBY_REPLICAS": "1" if args.standby else "0",
        "CHURNWATCH_EVALUATION_CLOCK": "wall",
    }
    partitions = args.partitions
    everything = list(range(partitions))
    with benchmark_kafka(partitions, extra) as (home, env, settings):
        env = {**env, "CHURNWATCH_LOG_LEVEL": args.log_level}
        began = time.monotonic()
        records, size = asyncio.run(seed(settings, args.accounts, args.days, args.versions))
        result: dict[str, Any] = {
            "accounts": args.accounts,
            "partitions": partitions,
            "changelog_records": records,
            "row_bytes": round(size / records),
            "standby_replicas": 1 if args.standby else 0,
            "seed_s": round(time.monotonic() - began, 1),
        }
        count, seconds = asyncio.run(raw_getmany_rate(settings, [changelog_topic(settings)]))
        result["raw_getmany_records_per_s"] = round(count / seconds)
        log = home / "workers.log"

        empty, port = start_worker({**env, "CHURNWATCH_APP_ID": "churnwatch-empty"}, log)
        result["empty_start_to_ready_s"] = timed(lambda: owned(port) == everything, "empty worker ready")
        empty.terminate()
        empty.wait(60)

        first, port1 = start_worker(env, log)
        result["restart_to_ready_s"] = timed(lambda: owned(port1) == everything, "restart ready")
        result["restart_records_per_s"] = round(records / result["restart_to_ready_s"])
        result["restart_restore_s"] = restore_seconds(port1)
        result["restart_accounts_counted"] = accounts_counted(port1, args.accounts, 60)
        result["rss_after_restore_mb"] = round(rss_bytes(first.pid) / 2**20, 1)

        second, port2 = start_worker(env, log)
        result["scale_out_to_ready_s"] = timed(
            lambda: sorted(owned(port1) + owned(port2)) == everything and bool(owned(port2)), "scale-out"
        )
        if args.standby:
            result["standby_catch_up_s"] = timed(lambda: standby_caught_up(port2), "standby caught up")
        result["scale_out_restore_s"] = restore_seconds(port2)
        before = restore_seconds(port2) or 0.0
        victim_partitions = owned(port1)
        stop = first.terminate if args.graceful else first.kill
        stop()
        result["takeover"] = "SIGTERM" if args.graceful else "SIGKILL"
        result["takeover_partitions"] = len(victim_partitions)
        result["takeover_to_ready_s"] = timed(lambda: owned(port2) == everything, "takeover")
        result["takeover_restore_s"] = round((restore_seconds(port2) or 0.0) - before, 2)
        result["takeover_accounts_counted"] = accounts_counted(port2, args.accounts, 60)
        first.wait(60)
        second.terminate()
        second.wait(60)
        if args.keep_log is not None:
            shutil.copyfile(log, args.keep_log)
        return result


def restore_seconds(port: int) -> float | None:
    """Seconds the worker spent in batched restores so far (None: a worker without them, before issue 15)."""
    restore = (stats(port) or {}).get("restore")
    return float(restore["seconds"]) if restore else None


def standby_caught_up(port: int) -> bool:
    """The worker's standby partitions have no changelog records left to apply (``/churnwatch/stats/``)."""
    answer = stats(port) or {}
    return bool((answer.get("restore") or {}).get("standby_records_left") == 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--days", type=int, default=2, help="days of usage in each seeded row")
    parser.add_argument("--versions", type=int, default=1, help="changelog records per account")
    parser.add_argument("--standby", action="store_true", help="CHURNWATCH_STANDBY_REPLICAS=1")
    parser.add_argument("--graceful", action="store_true", help="SIGTERM the first worker, not SIGKILL")
    parser.add_argument("--log-level", default="warning", help="the workers' CHURNWATCH_LOG_LEVEL")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the workers' log here at the end")
    args = parser.parse_args()
    print(orjson.dumps(run(args)).decode(), flush=True)


if __name__ == "__main__":
    main()
