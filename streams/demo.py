"""``churnwatch demo``: local Kafka, a simulated customer base produced live, a worker, and a terminal view.

The simulated clock starts ``days`` ago and runs as fast as ``rate`` events/s allows, so weeks of history pass
in a minute or two; the view shows what the worker holds. Ctrl-C (or ``--duration``) stops everything in
order: producer, worker, then the broker if the demo started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streams import kafka_local
from streams.kafka_client import client_options, ensure_topics
from streams.producer import produce_live
from streams.settings import Settings
from streams.simulator import Simulation, SimulationConfig
from streams.worker import local_broker, quiet_kafka_client_logs

DEMO_PREFIX = "churnwatch-demo"


@dataclass
class DemoState:
    produced: int = 0
    simulated_ts: str = "-"
    stats: dict[str, Any] = field(default_factory=dict)
    rates: list[tuple[float, int]] = field(default_factory=list)
    at_risk: dict[str, Any] = field(default_factory=dict)
    slack_messages: list[dict[str, Any]] = field(default_factory=list)
    jsonl_alerts: int = 0

    def events_per_second(self) -> float:
        if len(self.rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rates[0], self.rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


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


def demo_settings(base: Settings) -> Settings:
    """The user's settings with demo-owned topic names, so the demo can reset them freely."""
    return base.model_copy(
        update={
            # The simulated history is replayed fast: its own event time is the clock.
            "evaluation_clock": "event",
            "app_id": DEMO_PREFIX,
            "topic_usage": f"{DEMO_PREFIX}.usage",
            "topic_support": f"{DEMO_PREFIX}.support",
            "topic_billing": f"{DEMO_PREFIX}.billing",
            "topic_alerts": f"{DEMO_PREFIX}.alerts",
            "topic_deadletter": f"{DEMO_PREFIX}.deadletter",
        }
    )


async def reset_demo_topics(settings: Settings) -> None:
    """Delete the previous demo run's topics (events, dead letters, changelog) so counts start from zero."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = [name for name in await admin.list_topics() if name.startswith(DEMO_PREFIX)]
        if existing:
            await admin.delete_topics(existing)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and set(existing) & set(await admin.list_topics()):
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


def render_at_risk(state: DemoState) -> Table:
    table = Table(
        title=f"accounts at risk ({state.at_risk.get('total', 0)}), by revenue at risk", min_width=60
    )
    for column in ("account", "severity", "risk", "plan", "MRR", "top reason"):
        table.add_column(column)
    for row in state.at_risk.get("accounts", []):
        table.add_row(
            row["account_id"],
            row["severity"],
            f"{row['risk']:.0%}",
            row["plan"] or "-",
            f"{row['mrr'] or 0:,.0f}",
            (row["reasons"] or ["-"])[0][:60],
        )
    return table


def render(state: DemoState, settings: Settings, started: float) -> Group:
    table = Table(title="churnwatch demo", show_header=False, min_width=60)
    stats = state.stats
    table.add_row("Kafka", settings.bootstrap)
    table.add_row("running for", f"{time.monotonic() - started:,.0f} s")
    table.add_row("simulated clock", state.simulated_ts)
    table.add_row("events produced", f"{state.produced:,}")
    table.add_row("events folded by the worker", f"{stats.get('events_folded', 0):,}")
    table.add_row("events/s (worker, last 5 s)", f"{state.events_per_second():,.0f}")
    table.add_row("accounts tracked", f"{stats.get('accounts', 0):,}")
    table.add_row("dead letters", f"{stats.get('deadletters', 0):,}")
    table.add_row("Slack messages received (local receiver)", f"{len(state.slack_messages):,}")
    table.add_row("alerts in the JSONL sink", f"{state.jsonl_alerts:,}")
    if state.slack_messages:
        table.add_row("last Slack message", str(state.slack_messages[-1].get("text", ""))[:70])
    table.add_row("worker", f"http://{settings.web_host}:{settings.web_port}  (/metrics, /churnwatch/stats/)")
    return Group(
        table, render_at_risk(state), "[dim]Ctrl-C stops the demo, the worker and the local broker.[/dim]"
    )


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHURNWATCH_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"CHURNWATCH_{name.upper()}"] = str(
            value.get_secret_value() if hasattr(value, "get_secret_value") else value
        )
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker"],
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops the worker in order.
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def watch(
    settings: Settings,
    state: DemoState,
    worker: subprocess.Popen[bytes],
    stop: asyncio.Event,
    live: Live,
    started: float,
) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://{settings.web_host}:{settings.web_port}", timeout=2
    ) as client:
        while not stop.is_set():
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see its log")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                state.stats = (await client.get("/churnwatch/stats/")).json()
                state.at_risk = (await client.get("/churnwatch/at-risk/", params={"limit": 8})).json()
                if settings.alerts_jsonl_path is not None and settings.alerts_jsonl_path.exists():
                    state.jsonl_alerts = settings.alerts_jsonl_path.read_bytes().count(b"\n")
                now = time.monotonic()
                state.rates.append((now, int(state.stats.get("events_folded", 0))))
                state.rates = [(t, n) for t, n in state.rates if now - t <= 5.0]
            live.update(render(state, settings, started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


async def run_demo_async(
    settings: Settings,
    *,
    accounts: int,
    days: int,
    rate: float,
    seed: int,
    duration: float | None,
    console: Console,
) -> DemoState:
    started = time.monotonic()
    state = DemoState()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await reset_demo_topics(settings)
    await ensure_topics(settings)
    log_path = settings.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    receiver = SlackLikeReceiver(state)
    await receiver.start()
    jsonl = (settings.data_dir / "demo-alerts.jsonl").resolve()
    jsonl.unlink(missing_ok=True)
    settings = settings.model_copy(
        update={"slack_webhook_url": SecretStr(receiver.url), "alerts_jsonl_path": jsonl}
    )
    worker = start_worker(settings, log_path)
    console.print(f"worker started (log: {log_path})")
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=start))

    def on_sent(count: int, event: dict[str, Any]) -> None:
        state.produced = count
        state.simulated_ts = event["ts"]

    try:
        with Live(render(state, settings, started), console=console, refresh_per_second=2) as live:
            watcher = asyncio.create_task(watch(settings, state, worker, stop, live, started))
            producer = asyncio.create_task(
                produce_live(
                    settings,
                    simulation.events(),
                    rate=rate,
                    malformed_every=2_000,
                    on_sent=on_sent,
                    should_stop=stop.is_set,
                )
            )
            if duration is not None:
                loop.call_later(duration, stop.set)
            await stop.wait()
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            await watcher
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(stop_process, worker)
        await receiver.stop()
    return state


def run_demo(
    base: Settings, *, accounts: int, days: int, rate: float, seed: int, duration: float | None
) -> DemoState:
    """Run the demo until Ctrl-C or ``duration`` seconds; returns the last state shown."""
    quiet_kafka_client_logs()
    console = Console()
    settings = demo_settings(base)
    broker = local_broker(settings) if settings.embedded_kafka else None
    started_broker = broker is not None and kafka_local.status(broker) is None
    if broker is not None:
        console.print(f"starting the local Kafka broker on {settings.bootstrap} ...")
        began = time.monotonic()
        kafka_local.start(broker)
        console.print(f"Kafka ready in {time.monotonic() - began:.1f} s")
    try:
        state = asyncio.run(
            run_demo_async(
                settings,
                accounts=accounts,
                days=days,
                rate=rate,
                seed=seed,
                duration=duration,
                console=console,
            )
        )
    finally:
        if broker is not None and started_broker:
            kafka_local.stop(broker)
            console.print("local Kafka broker stopped")
    console.print(
        f"demo finished: {state.produced:,} events produced, {state.stats.get('events_folded', 0):,} folded, "
        f"{state.stats.get('accounts', 0):,} accounts, {state.stats.get('deadletters', 0):,} dead letters, "
        f"{state.at_risk.get('total', 0):,} at risk, {len(state.slack_messages):,} Slack messages, "
        f"{state.jsonl_alerts:,} JSONL alerts"
    )
    return state
