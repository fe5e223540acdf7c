"""The ``churnwatch`` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from streams.errors import ChurnwatchError
from streams.settings import Settings, load_settings

app = typer.Typer(help="churnwatch: streaming engagement monitor for subscription businesses.", no_args_is_help=True)
kafka_app = typer.Typer(help="The embedded local Kafka broker (used when no bootstrap servers are set).")
app.add_typer(kafka_app, name="kafka")


def _settings() -> Settings:
    try:
        return load_settings()
    except ChurnwatchError as exc:
        typer.secho(f"configuration error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the local single-node KRaft broker on 127.0.0.1 and wait until it answers."""
    from streams import kafka_local
    from streams.worker import local_broker

    settings = _settings()
    pid = kafka_local.start(local_broker(settings))
    typer.echo(f"kafka running at {settings.bootstrap} (pid {pid})")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker."""
    from streams import kafka_local
    from streams.worker import local_broker

    stopped = kafka_local.stop(local_broker(_settings()))
    typer.echo("kafka stopped" if stopped else "kafka was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Tell whether the local broker runs (exit code 1 when it does not)."""
    from streams import kafka_local
    from streams.worker import local_broker

    settings = _settings()
    pid = kafka_local.status(local_broker(settings))
    if pid is None:
        typer.echo("kafka is not running")
        raise typer.Exit(1)
    typer.echo(f"kafka running at {settings.bootstrap} (pid {pid})")


@app.command()
def worker() -> None:
    """Run a worker against the configured Kafka (every setting: docs/configuration.md, CHURNWATCH_* env)."""
    from streams.worker import run_worker

    run_worker(_settings())


@app.command()
def produce(events: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL file of events.")) -> None:
    """Send a file of canonical events to their topics, keyed by account id."""
    from streams.producer import produce_file

    from streams.worker import prepare_kafka

    settings = _settings()
    prepare_kafka(settings)
    sent, rejected = produce_file(settings, events)
    typer.echo(f"sent {sent} events; {rejected} lines were not canonical events and were not sent")


def main() -> None:
    try:
        app()
    except ChurnwatchError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise SystemExit(2) from None
