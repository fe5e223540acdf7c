"""``churnwatch replay``: run detection offline over an event file (registered on the main typer app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from detectors.monitor import DetectorConfig
from streams.events import InvalidEventError, parse_ts
from streams.replay import build_report, rfc3339, run_replay, state_sizes, write_alerts, write_scores


def replay(
    events: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL file of canonical events.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Stop the clock at this time (RFC 3339): later events are ignored."),
    ] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="Write one CSV row per account (risk, reasons).")
    ] = None,
    alerts: Annotated[
        Path | None, typer.Option("--alerts", help="Write the alerts that would have fired (JSONL).")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the detection-quality report (JSON).")
    ] = None,
    alert_threshold: Annotated[
        float | None,
        typer.Option(
            "--alert-threshold", min=0.0, max=1.0, help="Risk at which an episode opens (default: tuned)."
        ),
    ] = None,
    warmup_days: Annotated[
        int, typer.Option("--warmup-days", min=0, help="Days left out of false-positive counts.")
    ] = 21,
) -> None:
    """Replay an event file through the live windows, detectors and alert policy, as fast as the CPU can."""
    console = Console(stderr=True)
    as_of_ms: int | None = None
    if as_of is not None:
        try:
            as_of_ms = parse_ts(as_of)
        except InvalidEventError as error:
            raise typer.BadParameter(str(error), param_hint="--as-of") from None
    config = DetectorConfig() if alert_threshold is None else DetectorConfig(alert_threshold=alert_threshold)
    total = events.stat().st_size
    with Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=total, clock="")
        with events.open("rb") as handle:

            def on_progress(lines: int, watermark_ms: int) -> None:
                clock = rfc3339(watermark_ms) if watermark_ms > 0 else ""
                progress.update(task, completed=handle.tell(), clock=f"{lines:,} lines, clock {clock}")

            result = run_replay(handle, config=config, as_of_ms=as_of_ms, on_progress=on_progress)
    body = build_report(result, warmup_days=warmup_days)
    body["state_bytes"] = state_sizes(result)
    if scores is not None:
        write_scores(result, scores)
    if alerts is not None:
        write_alerts(result, alerts)
    if report is not None:
        report.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    _print_summary(Console(), body)


def _fmt(value: Any, pattern: str = "{}") -> str:
    return "-" if value is None else pattern.format(value)


def _print_summary(console: Console, body: dict[str, Any]) -> None:
    table = Table(title="churnwatch replay", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("events / lines", f"{body['events']:,} / {body['lines']:,}")
    table.add_row("bad lines", f"{body['bad_lines']:,} {body['bad_reasons'] or ''}")
    table.add_row("late events (beyond lateness)", f"{body['late_events']:,}")
    if body["after_as_of"]:
        table.add_row("events after --as-of (ignored)", f"{body['after_as_of']:,}")
    table.add_row("accounts", f"{body['accounts']:,}")
    table.add_row("clock at end", _fmt(body["clock"]))
    table.add_row("throughput", f"{body['events_per_s']:,} lines/s ({body['elapsed_s']} s)")
    table.add_row("alerts", ", ".join(f"{k} {v}" for k, v in sorted(body["alerts"].items())) or "none")
    table.add_row("pipeline incidents", str(body["pipeline_incidents"]))
    if "churners" in body:
        lead = body["lead_days"]
        table.add_row(
            "churners flagged before cancelling",
            f"{body['churners_flagged']} / {body['churners']} ({body['flagged_share']:.0%})",
        )
        table.add_row("lead time (days) median / p25", f"{_fmt(lead['median'])} / {_fmt(lead['p25'])}")
    if "survivor_alerts_per_30_days" in body:
        table.add_row(
            "alerts on non-churners per account per 30 days",
            _fmt(body["survivor_alerts_per_30_days"], "{:.2%}"),
        )
        table.add_row("precision (alert followed by a cancel)", _fmt(body["precision"], "{:.0%}"))
    calibration = body.get("calibration")
    if calibration:
        table.add_row(
            "Brier score (base-rate Brier)",
            f"{calibration['brier']:.4f} ({calibration['brier_base_rate']:.4f})",
        )
    sizes = body.get("state_bytes")
    if sizes:
        table.add_row(
            "state bytes/account: window, detector",
            f"{sizes['window_mean']:.0f}, {sizes['detector_mean']:.0f} (max {sizes['detector_max']})",
        )
    console.print(table)
    if calibration:
        reliability = Table(title=f"reliability (deciles of risk, {calibration['horizon_days']}-day horizon)")
        for column in ("risk range", "snapshots", "mean predicted", "observed"):
            reliability.add_column(column, justify="right")
        for row in calibration["reliability"]:
            reliability.add_row(
                f"{row['low']:.3f}-{row['high']:.3f}",
                str(row["n"]),
                f"{row['mean_predicted']:.3f}",
                f"{row['observed_rate']:.3f}",
            )
        console.print(reliability)


__all__ = ["replay", "rfc3339"]
