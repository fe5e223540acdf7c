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
import os
import shutil
import signal
import socket
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

from streams import kafka_local
from streams.demo_view import DemoState, progress_line, render, summary_lines
from streams.errors import ChurnwatchError, ConfigError
from streams.kafka_client import client_options, ensure_topics
from streams.producer import produce_live
from streams.settings import Settings
from streams.simulator import Simulation, SimulationConfig
from streams.worker import local_broker, quiet_kafka_client_logs

DEMO_PREFIX = "churnwatch-demo"
POLL_SECONDS = 0.5
PROGRESS_EVERY_SECONDS = 5.0
# Above the worker's own bounded stop (shutdown_timeout_seconds): it checkpoints and exits well before.
WORKER_STOP_GRACE_SECONDS = 45.0
PORT_RELEASE_SECONDS = 15.0
LOG_TAIL_LINES = 20
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
    return base.model_copy(
        update={
            # The simulated history is replayed fast: its own event time is the clock.
            "evaluation_clock": "event",
            "app_id": name,
            "topic_usage": f"{name}.usage",
            "topic_support": f"{name}.support",
            "topic_billing": f"{name}.billing",
            "topic_alerts": f"{name}.alerts",
            "topic_deadletter": f"{name}.deadletter",
        }
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
    for directory in settings.data_dir.glob(f"{DEMO_PREFIX}-*"):
        if directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
    return stale


def ensure_port_free(host: str, port: int, setting: str) -> None:
    """Fail before starting anything when a port is taken (say, by a worker a crashed demo left behind)."""
    if not port_free(host, port):
        raise ConfigError(
            setting, f"{host}:{port} is already in use (another worker or demo still running?): stop it first"
        )


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_ports_free(host: str, ports: list[int], timeout: float = PORT_RELEASE_SECONDS) -> list[int]:
    """Wait until the ports can be bound again; returns those still taken after ``timeout``."""
    deadline = time.monotonic() + timeout
    taken = [port for port in ports if not port_free(host, port)]
    while taken and time.monotonic() < deadline:
        time.sleep(0.1)
        taken = [port for port in taken if not port_free(host, port)]
    return taken


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


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"CHURNWATCH_{name.upper()}"] = str(
            value.get_secret_value() if hasattr(value, "get_secret_value") else value
        )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops the worker in order.
        )


def stop_worker(process: subprocess.Popen[bytes], force: threading.Event, grace: float) -> None:
    """SIGTERM (the worker checkpoints and exits), SIGKILL after ``grace`` s or when ``force`` is set."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline and not force.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.2)
    # Also whatever the worker started in its process group (none today): nothing outlives the demo.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])


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
        jsonl = self.settings.alerts_jsonl_path
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
        base_url = f"http://{self.settings.web_host}:{self.settings.web_port}"
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


async def run_demo_async(
    settings: Settings, options: DemoOptions, say: Callable[[str], None], tty: bool
) -> DemoState:
    loop = asyncio.get_running_loop()
    state = DemoState()
    stop = asyncio.Event()
    force = threading.Event()
    started = time.monotonic()

    def on_signal() -> None:
        if stop.is_set():
            force.set()  # a second Ctrl-C: no more waiting
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    receiver = SlackLikeReceiver(state)
    try:
        removed = await remove_previous_runs(settings)
        if removed:
            say(f"deleted {len(removed)} topics of earlier demo runs")
        await ensure_topics(settings)
        await receiver.start()
        if not stop.is_set():
            await run_worker_and_producer(settings, options, state, stop, force, say, tty, started, receiver)
    finally:
        await receiver.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return state


async def run_worker_and_producer(
    settings: Settings,
    options: DemoOptions,
    state: DemoState,
    stop: asyncio.Event,
    force: threading.Event,
    say: Callable[[str], None],
    tty: bool,
    started: float,
    receiver: SlackLikeReceiver,
) -> None:
    log_path = settings.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    jsonl = (settings.data_dir / "demo-alerts.jsonl").resolve()
    jsonl.unlink(missing_ok=True)
    settings = settings.model_copy(
        update={"slack_webhook_url": SecretStr(receiver.url), "alerts_jsonl_path": jsonl}
    )
    worker = start_worker(settings, log_path)
    say(f"worker started (pid {worker.pid}, app id {settings.app_id}, log: {log_path})")
    try:
        if options.duration is not None:
            asyncio.get_running_loop().call_later(options.duration, stop.set)
        await supervise(Supervisor(settings, state, worker, log_path, stop), options, say, tty, started)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)  # at once, before stopping the rest
        raise
    finally:
        if worker.poll() is None:
            say("stopping the worker (Ctrl-C again to kill it) ...")
        await asyncio.to_thread(stop_worker, worker, force, WORKER_STOP_GRACE_SECONDS)
        taken = await asyncio.to_thread(wait_ports_free, settings.web_host, [settings.web_port])
        clean = worker.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        say(
            "worker stopped"
            if clean
            else f"worker stopped with exit code {worker.returncode} (log: {log_path})"
        )
        if taken:
            say(f"port {settings.web_host}:{settings.web_port} is still in use")


async def supervise(
    supervisor: Supervisor, options: DemoOptions, say: Callable[[str], None], tty: bool, started: float
) -> None:
    """Live view on a terminal; otherwise a plain progress line every few seconds."""
    state, settings = supervisor.state, supervisor.settings
    if tty:
        with Live(render(state, settings, started), refresh_per_second=2) as live:
            await supervisor.run(options, lambda: live.update(render(state, settings, started)))
        return
    next_line = time.monotonic() + PROGRESS_EVERY_SECONDS

    def show() -> None:
        nonlocal next_line
        now = time.monotonic()
        if now >= next_line:
            say(progress_line(state, now - started, now))
            next_line = now + PROGRESS_EVERY_SECONDS

    await supervisor.run(options, show)
    now = time.monotonic()
    say(progress_line(state, now - started, now))


def stop_broker(broker: kafka_local.LocalBroker, say: Callable[[str], None]) -> None:
    """Stop the broker the demo started and wait for its ports; a Ctrl-C meanwhile kills it at once."""
    pid = kafka_local.status(broker)

    def kill_now(signum: int, frame: Any) -> None:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    previous = signal.signal(signal.SIGINT, kill_now)
    try:
        say("stopping the local Kafka broker ...")
        kafka_local.stop(broker)
    finally:
        signal.signal(signal.SIGINT, previous)
    taken = wait_ports_free("127.0.0.1", [broker.port, broker.port + 1])
    say("local Kafka broker stopped" + (f" (ports {taken} still in use)" if taken else ""))


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
    ensure_port_free(settings.web_host, settings.web_port, "CHURNWATCH_WEB_PORT")
    broker = local_broker(settings) if settings.embedded_kafka else None
    started_broker = broker is not None and kafka_local.status(broker) is None
    try:
        if broker is not None:
            say(f"starting the local Kafka broker on {settings.bootstrap} ...")
            began = time.monotonic()
            kafka_local.start(broker)
            say(f"Kafka ready in {time.monotonic() - began:.1f} s")
        state = asyncio.run(run_demo_async(settings, options, say, console.is_terminal))
    finally:
        if broker is not None and started_broker:
            stop_broker(broker, say)
    for line in summary_lines(state):
        say(line)
    return state
