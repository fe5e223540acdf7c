"""Helpers for tests against the real broker: worker processes, producing, reading topics, waiting."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from detectors.alerts import Alert, AlertKind, Severity, Transition
from streams.dev import kafka_local
from streams.dev.producer import send_all
from streams.dev.simulator import Simulation, SimulationConfig
from streams.settings import Settings

T = TypeVar("T")


def free_port(*, pair: bool = False) -> int:
    """A free loopback port (and, with ``pair``, the next one free too: the broker's controller port)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not pair or port >= 65535:
            return port
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def wait_until(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``condition`` until it returns something truthy (polling a condition, not sleeping blindly)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class KafkaForTests:
    bootstrap: str
    broker: kafka_local.LocalBroker | None = None


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=5)

    def stats(self) -> dict[str, Any] | None:
        try:
            response = self.get("/churnwatch/stats/")
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def account(self, account_id: str) -> dict[str, Any] | None:
        response = self.get(f"/churnwatch/accounts/{account_id}/")
        return response.json() if response.status_code == 200 else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, *, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL: a worker whose broker died may ignore SIGTERM."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@dataclass
class WorkerFactory:
    kafka: KafkaForTests
    directory: Path
    name: str
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    started: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", self.name)[:40]
        self.prefix = f"t-{slug}-{uuid.uuid4().hex[:6]}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
        env.update(
            {
                "CHURNWATCH_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
                "CHURNWATCH_APP_ID": self.prefix,
                "CHURNWATCH_TOPIC_USAGE": f"{self.prefix}.usage",
                "CHURNWATCH_TOPIC_SUPPORT": f"{self.prefix}.support",
                "CHURNWATCH_TOPIC_BILLING": f"{self.prefix}.billing",
                "CHURNWATCH_TOPIC_ALERTS": f"{self.prefix}.alerts",
                "CHURNWATCH_TOPIC_DEADLETTER": f"{self.prefix}.deadletter",
                "CHURNWATCH_TOPIC_FEEDBACK": f"{self.prefix}.feedback",
                "CHURNWATCH_PARTITIONS": str(self.partitions),
                "CHURNWATCH_DATA_DIR": str(self.directory / "data"),
                "CHURNWATCH_SESSION_TIMEOUT_SECONDS": "6",
                "CHURNWATCH_HEARTBEAT_INTERVAL_SECONDS": "1",
                "CHURNWATCH_REBALANCE_TIMEOUT_SECONDS": "10",
                "CHURNWATCH_BATCH_WITHIN_SECONDS": "0.1",
            }
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def settings(self, **overrides: str) -> Settings:
        """The workers' settings; ``overrides`` by flat name (``topic_identities=...``), validated."""
        values = {
            key.removeprefix("CHURNWATCH_").lower(): value
            for key, value in self.env().items()
            if key.startswith("CHURNWATCH_")
        }
        return Settings(**values, **overrides)

    def start(self, *, wait_ready: bool = True, module: str = "streams", **env: str) -> WorkerProcess:
        """A ``churnwatch worker`` process (``module``: another entry point, for a worker with a fault)."""
        web_port = free_port()
        log_path = self.directory / f"worker-{len(self.started)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", module, "worker"],
            env=self.env(CHURNWATCH_WEB_PORT=str(web_port), **env),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        worker = WorkerProcess(process, web_port, log_path)
        self.started.append(worker)
        if wait_ready:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, *, partitions: int | None = None) -> None:
        """Ready = partitions assigned, tables recovered, reader reading — or fail with its log."""
        expected = self.partitions if partitions is None else partitions

        def ready() -> bool:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}"
                )
            stats = worker.stats()
            return stats is not None and len(stats["partitions"]) == expected and stats["ready"]

        wait_until(ready, timeout=90, what="worker ready")

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()

    def produce(self, records: Iterable[tuple[str, bytes, bytes]]) -> int:
        return asyncio.run(send_all(self.settings(), records))


async def read_topic(bootstrap: str, topic: str, *, expected: int, timeout: float = 30) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` records arrived (or time out)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} does not exist"
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[Any] = []
        while len(records) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def run(awaitable: Awaitable[T]) -> T:
    return asyncio.run(awaitable)  # type: ignore[arg-type]


# -- helpers for the fault-injection and hostile-input tests (additive) -------------------------------------


async def end_offsets(bootstrap: str, topic: str, *, timeout: float = 30) -> dict[int, int]:
    """Each partition's end offset (high watermark) of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, *, timeout: float = 30) -> list[Any]:
    """Every record of ``topic`` up to the end offsets it has now (no expected count needed)."""
    ends = await end_offsets(bootstrap, topic, timeout=timeout)
    if not any(ends.values()):
        return []
    return await read_topic(bootstrap, topic, expected=sum(ends.values()), timeout=timeout)


def latest_by_key(records: Iterable[Any]) -> dict[bytes, bytes | None]:
    """Compacted view of a changelog: the last value of each key (``None`` for a tombstone)."""
    latest: dict[bytes, bytes | None] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[bytes(record.key)] = None if record.value is None else bytes(record.value)
    return latest


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text exposition (``None`` when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def outbox_lag(workers: WorkerFactory) -> int | None:
    """Outbox records past the offsets the live workers checkpointed (None while a partition has no owner).

    The checkpointed offset is what a new owner of the partition would resume from.
    """
    ends = run(end_offsets(workers.kafka.bootstrap, workers.settings().topics.alerts))
    checkpointed: dict[int, int] = {}
    for worker in workers.started:
        stats = worker.stats() if worker.process.poll() is None else None
        if stats is not None:
            checkpointed.update({int(p): offset for p, offset in stats["outbox_positions"].items()})
    if set(checkpointed) != set(ends):
        return None
    return sum(max(0, end - checkpointed[partition]) for partition, end in ends.items())


def wait_outbox_committed(workers: WorkerFactory, *, timeout: float) -> None:
    """Every outbox record processed and its offset checkpointed: nothing more will be sent."""
    wait_until(
        lambda: outbox_lag(workers) == 0,
        timeout=timeout,
        what="the outbox fully committed",
        interval=1.0,
    )


REPO = Path(__file__).resolve().parent.parent


def private_broker(directory: Path) -> kafka_local.LocalBroker:
    """A broker of a test's own (own ports and data, the repo's downloaded jars), not yet started."""
    shared = kafka_local.LocalBroker(REPO / ".kafka", 0)
    kafka_local.ensure_jars(shared)
    directory.mkdir(parents=True, exist_ok=True)
    libs = directory / "libs"
    if not libs.exists():
        libs.symlink_to(shared.libs.resolve())
    return kafka_local.LocalBroker(directory, free_port(pair=True))


def start_private_broker(directory: Path, *, attempts: int = 3) -> kafka_local.LocalBroker:
    """Start a private broker; on a port taken between choosing and binding it, retry on fresh ports."""
    from streams.errors import ConfigError, KafkaUnavailableError

    for attempt in range(attempts):
        broker = private_broker(directory)
        try:
            kafka_local.start(broker)
            return broker
        except (ConfigError, KafkaUnavailableError):
            kafka_local.stop(broker)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def simulated_lines(accounts: int, days: int, seed: int) -> list[bytes]:
    """Simulator events ending about now (so none is dead-lettered as from the future), as JSON lines."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 2)
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=start))
    return [orjson.dumps(event) for event in simulation.events()]


def make_alert(
    account: str,
    *,
    transition: Transition = Transition.OPENED,
    risk: float = 0.4,
    mrr: float = 199.0,
    episode_ts_ms: int = 1_795_600_000_000,
    reasons: tuple[str, ...] = ("active users -62% vs its 8-week weekday median",),
) -> Alert:
    """An account-risk alert as the detection agent writes it to the outbox."""
    return Alert(
        kind=AlertKind.ACCOUNT_RISK,
        account_id=account,
        episode_id=f"{account}:{episode_ts_ms}",
        transition=transition,
        severity=Severity.HIGH,
        risk=risk,
        plan="pro",
        mrr=mrr,
        reasons=reasons,
        event_ts_ms=episode_ts_ms,
        detected_ts_ms=episode_ts_ms + 1_000,
    )
