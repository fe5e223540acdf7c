"""``churnwatch demo``: local Kafka, a simulated customer base produced live, a worker, and a view of it.

The demo supervises what it starts. The simulated clock starts ``days`` ago and runs as fast as ``rate``
events/s allows, so weeks of history pass in a minute or two; the view shows what the worker holds, and says
so when the worker stops answering. Ctrl-C (or ``--duration``) stops everything in order and waits for it:
producer, worker (a second Ctrl-C kills it at once), then the broker if the demo started it; no process or
bound port is left behind. If the worker dies the demo stops at once with the last lines of its log.

Every run has its own app id and topics (``churnwatch-demo-<run>``), and deletes earlier runs' topics and
changelogs first: a run never folds into the state of the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live

from streams.dev import kafka_local
from streams.dev.demo_processes import (
    ensure_port_free,
    log_tail,
    start_worker,
    stop_broker,
    stop_worker,
    wait_ports_free,
)
from streams.dev.demo_view import DemoState, progress_line, render, summary_lines
from streams.dev.producer import produce_live
from streams.dev.simulator import Simulation, SimulationConfig
from streams.errors import ChurnwatchError
from streams.live.kafka_client import client_options, ensure_topics
from streams.live.worker import local_broker, quiet_kafka_client_logs
from streams.settings import Settings

DEMO_PREFIX = "churnwatch-demo"
POLL_SECONDS = 0.5
PROGRESS_EVERY_SECONDS = 5.0
# Beyond the worker's own bounded stop (shutdown_timeout_seconds), after which it exits by itself.
WORKER_STOP_MARGIN_SECONDS = 10.0
MALFORMED_EVERY = 2_000  # a truncated record (dead-letter path), the first one early in the run


class DemoError(ChurnwatchError):
    """The demo cannot go on (the worker died, the producer failed); the message says why."""


@dataclass(frozen=True)
class DemoOptions:
    accounts: int
    days: int
    rate: float
    seed: int
    duration: float | None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:4]


def demo_settings(base: Settings, run_id: str) -> Settings:
    """The user's settings with this run's own app id and topics, so no state carries over between runs."""
    name = f"{DEMO_PREFIX}-{run_id}"
    return base.with_values(
        evaluation_clock="event",  # the simulated history is replayed fast: its own event time is the clock
        app_id=name,
        topic_usage=f"{name}.usage",
        topic_support=f"{name}.support",
        topic_billing=f"{name}.billing",
        topic_alerts=f"{name}.alerts",
        topic_deadletter=f"{name}.deadletter",
    )


async def remove_previous_runs(settings: Settings) -> list[str]:
    """Delete earlier demo runs' topics (events, dead letters, changelogs) and data directories."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        stale = [name for name in await admin.list_topics() if name.startswith(DEMO_PREFIX)]
        if stale:
            await admin.delete_topics(stale)
    finally:
        await admin.close()
    for directory in settings.worker.data_dir.glob(f"{DEMO_PREFIX}-*"):
        if directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
    return stale


class SlackLikeReceiver:
    """A local stand-in for a Slack incoming webhook: records what the worker posts, answers ``ok``."""

    def __init__(self, state: DemoState) -> None:
        self.state = state
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.state.slack_messages.append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/services/demo", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/services/demo"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class Supervisor:
    """Runs the producer and watches the worker until a stop; the first failure ends the run."""

    def __init__(
        self,
        settings: Settings,
        state: DemoState,
        worker: subprocess.Popen[bytes],
        log_path: Path,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.state = state
        self.worker = worker
        self.log_path = log_path
        self.stop = stop

    def check_worker(self) -> None:
        code = self.worker.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            raise DemoError(
                f"the worker {how}; the demo stops (log: {self.log_path}). "
                f"Its last lines:\n{log_tail(self.log_path)}"
            )

    async def poll(self, client: httpx.AsyncClient) -> None:
        """Ask the worker; on no answer keep the old numbers, which the view then marks as old."""
        state = self.state
        try:
            stats = (await client.get("/churnwatch/stats/")).json()
            at_risk = (await client.get("/churnwatch/at-risk/", params={"limit": 8})).json()
        except (httpx.HTTPError, ValueError):
            return
        if not isinstance(stats, dict) or "events_folded" not in stats or not isinstance(at_risk, dict):
            return
        state.stats, state.at_risk = stats, at_risk
        jsonl = self.settings.delivery.jsonl_path
        if jsonl is not None and jsonl.exists():
            state.jsonl_alerts = jsonl.read_bytes().count(b"\n")
        state.record_answer(time.monotonic())

    async def watch(self, client: httpx.AsyncClient, show: Callable[[], None]) -> None:
        while not self.stop.is_set():
            self.check_worker()
            await self.poll(client)
            self.check_worker()  # died while we asked: say so rather than show what it last said
            show()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=POLL_SECONDS)

    async def produce(self, options: DemoOptions) -> None:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=options.days
        )
        config = SimulationConfig(
            seed=options.seed, accounts=options.accounts, days=options.days, start=start
        )

        def on_sent(count: int, event: dict[str, Any]) -> None:
            self.state.produced = count
            self.state.simulated_ts = event["ts"]

        await produce_live(
            self.settings,
            Simulation(config).events(),
            rate=options.rate,
            malformed_every=MALFORMED_EVERY,
            on_sent=on_sent,
            should_stop=self.stop.is_set,
        )
        self.state.producer_done = True

    async def run(self, options: DemoOptions, show: Callable[[], None]) -> None:
        """Until ``stop`` is set (Ctrl-C, ``duration``); raises :class:`DemoError` when something fails."""
        base_url = f"http://{self.settings.worker.web_host}:{self.settings.worker.web_port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            producer = asyncio.create_task(self.produce(options))
            watcher = asyncio.create_task(self.watch(client, show))
            try:
                done, _ = await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if watcher not in done:
                    failure = producer.exception()
                    if failure is not None:
                        raise DemoError(f"the producer failed: {failure!r}")
                # All sent (or a stop): keep watching the worker fold it until the stop.
                await watcher
            finally:
                self.stop.set()
                for task in (producer, watcher):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self.worker.poll() is None:
                await self.poll(client)  # the summary shows the worker's numbers as of the stop


class DemoRun:
    """One run: topics, the local Slack stand-in, the worker and the producer, until a stop or a failure."""

    def __init__(
        self, settings: Settings, options: DemoOptions, say: Callable[[str], None], tty: bool
    ) -> None:
        self.settings = settings
        self.options = options
        self.say = say
        self.tty = tty
        self.state = DemoState()
        self.stop = asyncio.Event()
        self.force = threading.Event()  # a second Ctrl-C: kill instead of waiting
        self.started = time.monotonic()

    def on_signal(self) -> None:
        if self.stop.is_set():
            self.force.set()
        self.stop.set()

    async def run(self) -> DemoState:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal)
        receiver = SlackLikeReceiver(self.state)
        try:
            removed = await remove_previous_runs(self.settings)
            if removed:
                self.say(f"deleted {len(removed)} topics of earlier demo runs")
            await ensure_topics(self.settings)
            await receiver.start()
            if not self.stop.is_set():
                await self.run_worker(receiver.url)
        finally:
            await receiver.stop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        return self.state

    async def run_worker(self, slack_url: str) -> None:
        data_dir = self.settings.worker.data_dir
        log_path = data_dir / "demo-worker.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        jsonl = (data_dir / "demo-alerts.jsonl").resolve()
        jsonl.unlink(missing_ok=True)
        settings = self.settings.with_values(slack_webhook_url=SecretStr(slack_url), alerts_jsonl_path=jsonl)
        worker = start_worker(settings, log_path)
        self.say(f"worker started (pid {worker.pid}, app id {settings.topics.app_id}, log: {log_path})")
        try:
            if self.options.duration is not None:
                asyncio.get_running_loop().call_later(self.options.duration, self.stop.set)
            await self.supervise(Supervisor(settings, self.state, worker, log_path, self.stop))
        except DemoError as exc:
            print(f"demo failed: {exc}", file=sys.stderr, flush=True)  # at once, before stopping the rest
            raise
        finally:
            if worker.poll() is None:
                self.say("stopping the worker (Ctrl-C again to kill it) ...")
            grace = settings.worker.shutdown_timeout_seconds + WORKER_STOP_MARGIN_SECONDS
            await asyncio.to_thread(stop_worker, worker, self.force, grace)
            taken = await asyncio.to_thread(
                wait_ports_free, settings.worker.web_host, [settings.worker.web_port]
            )
            clean = worker.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
            self.say("worker stopped" if clean else f"worker stopped with exit code {worker.returncode}")
            if taken:
                self.say(f"port {settings.worker.web_host}:{settings.worker.web_port} is still in use")

    async def supervise(self, supervisor: Supervisor) -> None:
        """Live view on a terminal; otherwise a plain progress line every few seconds."""
        state, settings, started = self.state, supervisor.settings, self.started
        if self.tty:
            with Live(render(state, settings, started), refresh_per_second=2) as live:
                await supervisor.run(self.options, lambda: live.update(render(state, settings, started)))
            return
        next_line = time.monotonic() + PROGRESS_EVERY_SECONDS

        def show() -> None:
            nonlocal next_line
            now = time.monotonic()
            if now >= next_line:
                self.say(progress_line(state, now - started, now))
                next_line = now + PROGRESS_EVERY_SECONDS

        await supervisor.run(self.options, show)
        now = time.monotonic()
        self.say(progress_line(state, now - started, now))


def run_demo(base: Settings, options: DemoOptions) -> DemoState:
    """Run the demo until Ctrl-C or ``duration`` seconds; returns the last state shown.

    Raises :class:`DemoError` when the worker or the producer fails, :class:`ConfigError` when a port the
    demo needs is taken; everything the demo started is stopped either way.
    """
    quiet_kafka_client_logs()
    console = Console()

    def say(line: str) -> None:
        if console.is_terminal:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    settings = demo_settings(base, new_run_id())
    ensure_port_free(settings.worker.web_host, settings.worker.web_port, "CHURNWATCH_WEB_PORT")
    broker = local_broker(settings) if settings.kafka.embedded else None
    started_broker = broker is not None and kafka_local.status(broker) is None
    try:
        if broker is not None:
            say(f"starting the local Kafka broker on {settings.kafka.bootstrap} ...")
            began = time.monotonic()
            kafka_local.start(broker)
            say(f"Kafka ready in {time.monotonic() - began:.1f} s")
        state = asyncio.run(DemoRun(settings, options, say, console.is_terminal).run())
    finally:
        if broker is not None and started_broker:
            stop_broker(broker, say)
    for line in summary_lines(state):
        say(line)
    return state
