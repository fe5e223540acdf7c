"""The ``churnwatch`` command line."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from streams.cli.checks import UsageError, output_file, parse_day
from streams.errors import ChurnwatchError, KafkaUnavailableError
from streams.settings import Settings, load_settings

app = typer.Typer(
    help="churnwatch: streaming engagement monitor for subscription businesses.",
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
kafka_app = typer.Typer(help="The embedded local Kafka broker (used when no bootstrap servers are set).")
app.add_typer(kafka_app, name="kafka")
alerts_app = typer.Typer(help="Alert sinks, per-account snoozes and answers to alerts.")
app.add_typer(alerts_app, name="alerts")

DURATION_UNITS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
SINK_SETTINGS = {
    "slack": "CHURNWATCH_SLACK_WEBHOOK_URL",
    "webhook": "CHURNWATCH_WEBHOOK_URL (and CHURNWATCH_WEBHOOK_SECRET)",
    "jsonl": "CHURNWATCH_ALERTS_JSONL_PATH",
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"churnwatch {version('churnwatch')}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """churnwatch: streaming engagement monitor for subscription businesses."""
    if ctx.invoked_subcommand is None:  # a bare `churnwatch` is a request for help, not a mistake
        typer.echo(ctx.get_help())
        raise typer.Exit()


def parse_duration(text: str) -> float:
    """Seconds in a positive duration like ``30m``, ``12h``, ``7d`` or ``2w``."""
    unit = DURATION_UNITS.get(text[-1:].lower())
    try:
        if unit is None:
            raise ValueError
        seconds = float(text[:-1]) * unit
    except ValueError:
        raise UsageError(f"--for {text!r}: not a duration like 30m, 12h, 7d or 2w") from None
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"--for {text!r}: the duration must be more than zero")
    return seconds


def _settings() -> Settings:
    try:
        return load_settings()
    except ChurnwatchError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the local single-node KRaft broker on 127.0.0.1 and wait until it answers."""
    from streams.dev import kafka_local
    from streams.live.worker import local_broker

    settings = _settings()
    pid = kafka_local.start(local_broker(settings))
    typer.echo(f"kafka running at {settings.kafka.bootstrap} (pid {pid})")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker."""
    from streams.dev import kafka_local
    from streams.live.worker import local_broker

    stopped = kafka_local.stop(local_broker(_settings()))
    typer.echo("kafka stopped" if stopped else "kafka was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Tell whether the local broker runs (exit code 1 when it does not)."""
    from streams.dev import kafka_local
    from streams.live.worker import local_broker

    settings = _settings()
    pid = kafka_local.status(local_broker(settings))
    if pid is None:
        typer.echo("kafka is not running")
        raise typer.Exit(1)
    typer.echo(f"kafka running at {settings.kafka.bootstrap} (pid {pid})")


@app.command()
def worker() -> None:
    """Run a worker against the configured Kafka (every setting: docs/configuration.md, CHURNWATCH_* env)."""
    from streams.live.worker import run_worker

    run_worker(_settings())


@app.command()
def ingest() -> None:
    """Run the ingest gateway: Segment-compatible tracking API, Stripe/Zendesk/Intercom webhooks."""
    from streams.gateway.server import run_gateway

    run_gateway(_settings())


@app.command()
def produce(
    events: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL file of events."),
) -> None:
    """Send a file of canonical events to their topics, keyed by account id."""
    from streams.dev.producer import produce_file
    from streams.live.worker import prepare_kafka

    settings = _settings()
    prepare_kafka(settings)
    sent, rejected = produce_file(settings, events)
    typer.echo(f"sent {sent} events; {rejected} lines were not canonical events and were not sent")


@app.command()
def demo(
    accounts: int = typer.Option(300, min=1, help="Simulated accounts."),
    days: int = typer.Option(90, min=7, help="Days of history the simulated clock runs through."),
    rate: float = typer.Option(3_000, min=1, help="Events/s produced (this sets how fast the clock runs)."),
    seed: int = typer.Option(7, min=0, help="Simulator seed."),
    duration: float | None = typer.Option(
        None, min=1, help="Stop after this many seconds (default: Ctrl-C)."
    ),
) -> None:
    """Local Kafka + simulated customers + a worker, watched live (plain progress lines when piped).

    Ctrl-C stops the producer, the worker and the broker the demo started, and waits for them; each run starts
    from fresh topics. Exits non-zero, with the worker's last log lines, if the worker dies.
    """
    from streams.dev.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(accounts=accounts, days=days, rate=rate, seed=seed, duration=duration)
    try:
        run_demo(_settings(), options)
    except KeyboardInterrupt:  # before the demo's own Ctrl-C handling began; what it started is stopped
        typer.secho("demo interrupted", err=True)
        raise typer.Exit(130) from None
    except DemoError:  # the demo said why when it happened
        typer.secho("demo stopped after a failure; what it started is stopped", err=True, fg="red")
        raise typer.Exit(1) from None
    except ChurnwatchError as exc:
        typer.secho(f"demo cannot start: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


@app.command()
def simulate(
    out: Path | None = typer.Option(None, help="Write events as JSONL here instead of producing to Kafka."),
    truth: Path | None = typer.Option(
        None, help="Write the ground truth (who churns, when, why) as JSONL here."
    ),
    accounts: int = typer.Option(200, min=1, help="Number of accounts."),
    days: int = typer.Option(120, min=1, help="Days of history to simulate."),
    seed: int = typer.Option(7, min=0, help="Random seed (same seed, same events)."),
    start: str | None = typer.Option(None, help="First simulated day (RFC 3339). Default: DAYS days ago."),
    rate: float | None = typer.Option(
        None, min=1, help="Events/s when producing to Kafka (default: as fast as possible)."
    ),
) -> None:
    """Generate a realistic SaaS customer base: JSONL with --out, else produce to Kafka at --rate."""
    from datetime import UTC, datetime, timedelta

    from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl

    first_day = parse_day(start, "--start") if start else datetime.now(UTC) - timedelta(days=days)
    output_file(out, "--out")
    output_file(truth, "--truth")
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=first_day))
    from rich.console import Console
    from rich.progress import Progress

    from streams.cli.progress import CountedSource, progress_for

    if out is not None:
        bar = Progress(console=Console(stderr=True), transient=True)
        with progress_for(bar, "simulate") as progress:
            task = progress.add_task("events written", total=None)
            counted = CountedSource(simulation, lambda n: progress.update(task, completed=n))
            written = write_jsonl(counted, out, truth)
        typer.echo(
            f"wrote {written} events to {out}" + (f" and the ground truth to {truth}" if truth else "")
        )
        return
    if truth is not None:
        truth.write_bytes(b"".join(orjson_line(row) for row in simulation.truth()))
    import asyncio

    from streams.dev.producer import produce_live
    from streams.live.worker import prepare_kafka

    settings = _settings()
    prepare_kafka(settings)
    with progress_for(Progress(console=Console(stderr=True)), "simulate") as progress:
        task = progress.add_task("events produced", total=None)
        sent = asyncio.run(
            produce_live(
                settings,
                simulation.events(),
                rate=rate,
                on_sent=lambda n, _: progress.update(task, completed=n),
            )
        )
    typer.echo(f"produced {sent} events to {settings.kafka.bootstrap}")


@alerts_app.command("test")
def alerts_test(sink: str = typer.Argument(..., help="slack, webhook or jsonl")) -> None:
    """Send a sample alert to one configured sink and report the outcome."""
    import asyncio

    import httpx

    from streams.sinks import HTTP_TIMEOUT, build_sinks, send_test_alert

    if sink not in SINK_SETTINGS:
        raise UsageError(f"unknown sink {sink!r}: the sinks are {', '.join(SINK_SETTINGS)}")
    settings = _settings()
    config = settings.delivery

    async def run() -> str:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            sinks = {built.name: built for built in build_sinks(config, client)}
            if sink not in sinks:
                raise UsageError(f"sink {sink!r} is not configured: set {SINK_SETTINGS[sink]}")
            return await send_test_alert(sinks[sink])

    outcome = asyncio.run(run())
    typer.echo(outcome)
    if "FAILED" in outcome:
        raise typer.Exit(1)


@alerts_app.command("snooze")
def alerts_snooze(
    account: str = typer.Argument(..., help="Account id."),
    duration: str = typer.Option(..., "--for", help="How long, e.g. 12h, 7d, 2w."),
) -> None:
    """Hold back an account's alerts for a while (they are recorded, not sent)."""
    import asyncio
    import logging
    import time

    from aiokafka.errors import KafkaError

    from streams.dev.producer import send_all
    from streams.sinks.notifier import snooze_record

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it all
    seconds = parse_duration(duration)
    settings = _settings()
    until_ms = int((time.time() + seconds) * 1000)
    record = (settings.topics.alerts, account.encode(), snooze_record(account, until_ms))
    try:
        asyncio.run(send_all(settings, [record]))
    except (KafkaError, OSError):
        hint = " (start it with `churnwatch kafka start`)" if settings.kafka.embedded else ""
        raise KafkaUnavailableError(
            f"cannot reach Kafka at {settings.kafka.bootstrap}{hint}; the snooze was not recorded"
        ) from None
    typer.echo(f"alerts for {account} snoozed for {duration}")


def orjson_line(row: object) -> bytes:
    import orjson

    return orjson.dumps(row) + b"\n"


def _register_replay() -> None:
    from streams.cli.backfill import backfill
    from streams.cli.explain import explain
    from streams.cli.feedback import alerts_feedback
    from streams.cli.replay import replay

    app.command("replay")(replay)
    app.command("backfill")(backfill)
    app.command("explain")(explain)
    alerts_app.command("feedback")(alerts_feedback)


_register_replay()


def main() -> None:
    from streams.logs import configure_logging

    configure_logging(os.environ.get("CHURNWATCH_LOG_LEVEL", "info").lower())
    try:
        app()
    except ChurnwatchError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise SystemExit(2) from None
