"""``churnwatch backfill``: fold history into the worker's state before it starts (registered in main.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from streams.cli.checks import UsageError
from streams.cli.progress import progress_for
from streams.errors import KafkaUnavailableError
from streams.offline.backfill_exports import ExportFormat
from streams.offline.replay import rfc3339
from streams.offline.replay_input import STDIN, InputError
from streams.settings import Settings, load_settings

if TYPE_CHECKING:  # the backfill modules import faust: loaded only when the command runs
    from streams.offline.backfill import History, Plan


T = TypeVar("T")


class LiveFrom(StrEnum):
    START = "start"
    END = "end"


def backfill(
    events: Annotated[
        list[str],
        typer.Argument(
            help="JSONL files of canonical events (gzip-compressed or not), or - for stdin: the history."
        ),
    ],
    live_from: Annotated[
        LiveFrom,
        typer.Option(
            "--live-from",
            help="Where a worker with no checkpoint starts reading the event topics: start (they hold only "
            "events after the history) or end (the files already cover what the topics hold now).",
        ),
    ] = LiveFrom.START,
    export: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="What the files hold: canonical events, a Segment export (one message per line) or a Stripe "
            "export (one event object per line, or list pages); exports are mapped as the gateway maps them.",
        ),
    ] = ExportFormat.CANONICAL,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fold and compare with the worker's state; write nothing.")
    ] = False,
) -> None:
    """Fold historical events as replay does and write each account's state into the worker's table.

    A worker started afterwards knows every account's baseline, risk and open episode; no alert is sent for
    history. Stop the workers first; running it again writes nothing new. See docs/ingest.md.
    """
    for source in events:
        if source != STDIN and not Path(source).is_file():
            problem = "is a directory" if Path(source).is_dir() else "no such file"
            raise UsageError(f"{source}: {problem}")
    settings = load_settings()  # a ConfigError is one line naming the setting (cli.main)
    _prepare_kafka(settings)
    try:
        history = _fold(events, settings, export)
    except InputError as error:
        raise UsageError(str(error)) from None
    plan = _write(settings, history, live_from is LiveFrom.END, dry_run)
    _print_summary(history, plan, dry_run)


def _prepare_kafka(settings: Settings) -> None:
    from streams.live.worker import prepare_kafka
    from streams.offline.backfill_store import check_no_worker

    prepare_kafka(settings)  # the embedded broker when none is configured; the topics, co-partitioned
    _kafka(settings, check_no_worker(settings))


def _fold(events: list[str], settings: Settings, export: ExportFormat) -> History:
    from streams.offline.backfill import fold_history

    bar = Progress(
        TextColumn("[bold]backfill"),
        TextColumn("{task.fields[phase]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress_for(bar, "backfill") as progress:
        task = progress.add_task("backfill", total=None, phase="reading")

        def on_progress(phase: str, lines: int) -> None:
            progress.update(task, phase=f"{lines:,} lines {'read' if phase == 'read' else 'folded'}")

        return fold_history(events, settings, export=export, on_progress=on_progress)


def _write(settings: Settings, history: History, live_from_end: bool, dry_run: bool) -> Plan:
    from streams.offline.backfill_store import backfill

    return _kafka(settings, backfill(settings, history, live_from_end=live_from_end, dry_run=dry_run))


def _kafka(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a Kafka failure is one line."""
    try:
        return asyncio.run(work)
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailableError(
            f"Kafka at {settings.kafka.bootstrap} failed during the backfill ({type(exc).__name__}); "
            "nothing the worker reads was changed unless it was acknowledged: run it again"
        ) from None


def _print_summary(history: History, plan: Plan, dry_run: bool) -> None:
    stats = history.input_stats
    verb = "would write" if dry_run else "wrote"
    clock = rfc3339(history.clock_ms) if history.clock_ms is not None else "-"
    rejected = sum(stats.bad_reasons().values())
    typer.echo(
        f"folded {history.events:,} events of {len(history.rows):,} accounts up to {clock} "
        f"in {history.fold_s:.1f} s ({history.events_per_s:,.0f} events/s); "
        f"{rejected:,} invalid lines, {stats.duplicates:,} duplicates, {history.late_events:,} late events"
    )
    exported = history.export_stats
    if exported is not None:
        typer.echo(
            f"mapped {exported.items:,} export items to {exported.events:,} events; "
            f"ignored {_counts(exported.ignored)}; set aside {_counts(exported.rejected)}"
        )
    typer.echo(
        f"{verb} {plan.written_accounts:,} account states; {plan.unchanged_accounts:,} already there; "
        f"{len(plan.kept_accounts):,} kept (the worker already holds other state for them)"
    )
    if plan.kept_accounts:
        typer.echo(f"kept, e.g.: {', '.join(plan.kept_accounts[:5])}")
    typer.echo(
        f"{history.open_episodes:,} accounts carry an open episode; "
        f"{history.history_alerts:,} alerts history raised were not sent"
    )
    model = history.risk_model
    learned = model.n_positives + model.n_negatives
    kept = f"; kept the worker's own in {plan.kept_engine_partitions}" if plan.kept_engine_partitions else ""
    typer.echo(
        f"engine state (risk model from {learned:,} outcomes, population, clock): "
        f"{verb} to {plan.engine_partitions} partitions{kept}"
    )
    if history.identities:
        typer.echo(
            f"{'would teach' if dry_run else 'taught'} the gateway {len(plan.identities):,} user -> account "
            f"assignments ({plan.known_identities:,} users it already maps keep theirs)"
        )
    if plan.position_partitions:
        typer.echo(
            f"{'would record' if dry_run else 'recorded'} the event topics' ends as where the worker starts "
            f"reading, for {plan.position_partitions} partitions"
        )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n:,} {reason}" for reason, n in counter.most_common()) or "none"
