"""``churnwatch replay``: run detection offline over an event file (registered on the main typer app)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.cli.backtest import backtest_report, print_backtest, snapshot_days
from streams.cli.checks import output_file
from streams.cli.progress import PlainProgress, progress_for, report_console
from streams.cli.setting_flags import FLAG_SETTINGS, flag_name, replay_settings, setting_help
from streams.dev.mypyc_build import loaded_compiled
from streams.events import InvalidEventError, parse_ts
from streams.feedback import Feedback
from streams.offline.backtest import OutcomeMode
from streams.offline.replay import ReplayResult, rfc3339, run_replay
from streams.offline.replay_input import (
    DEFAULT_SORT_MEMORY_BYTES,
    STDIN,
    InputError,
    InputRules,
    InputStats,
    input_report,
    no_event_summary,
    rejects_file,
)
from streams.offline.replay_lockstep import ShardFailed, replay_lockstep
from streams.offline.replay_outputs import build_report, state_sizes, write_alerts, write_scores
from streams.offline.replay_parallel import replay_file_parallel
from streams.offline.sorted_input import SortedInput, read_source
from streams.settings import Settings


def _flag(setting: str) -> Any:
    return typer.Option(flag_name(setting), help=setting_help(setting))


def replay(
    events: Annotated[
        str, typer.Argument(help="JSONL file of canonical events (gzip-compressed or not), or - for stdin.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Stop the clock at this time (RFC 3339): later events are ignored."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Wall clock for the future_ts check (RFC 3339). Default: the file's own clock, its latest "
            "event time that other events confirm.",
        ),
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
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report: charts, at-risk list, timelines."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Write every rejected or duplicate line: LINE<TAB>REASON<TAB>DETAIL<TAB>LINE TEXT.",
        ),
    ] = None,
    sort_memory_mb: Annotated[
        int,
        typer.Option("--sort-memory-mb", min=1, help="Lines buffered for sorting before spilling to disk."),
    ] = DEFAULT_SORT_MEMORY_BYTES >> 20,
    alert_threshold: Annotated[float | None, _flag("alert_threshold")] = None,
    allowed_lateness_seconds: Annotated[float | None, _flag("allowed_lateness_seconds")] = None,
    max_event_bytes: Annotated[int | None, _flag("max_event_bytes")] = None,
    max_future_skew_seconds: Annotated[float | None, _flag("max_future_skew_seconds")] = None,
    retention_days: Annotated[int | None, _flag("retention_days")] = None,
    top_events: Annotated[int | None, _flag("top_events")] = None,
    event_dedup_max_keys: Annotated[int | None, _flag("event_dedup_max_keys")] = None,
    warmup_days: Annotated[
        int, typer.Option("--warmup-days", min=0, help="Days left out of false-positive counts.")
    ] = 21,
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines/--no-baselines",
            help="Compare risk with simple baselines on the file's own outcomes (keeps usage per "
            "account-day in memory: turn off for very large files).",
        ),
    ] = True,
    outcome: Annotated[
        OutcomeMode,
        typer.Option(
            "--outcome",
            help="What counts as churn for the comparison: cancel (subscription_canceled), inactive (no "
            "usage for the horizon), either; auto = cancel if the file has cancellations, else inactive.",
        ),
    ] = OutcomeMode.AUTO,
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Churn horizon of the baseline comparison.")
    ] = 30,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            help="Replay on this many processes (a file, not stdin), each owning the accounts whose id "
            "hashes to it, in lock-step at every midnight: the results are the same as with one. With "
            "--feedback only the reading runs on N (docs/performance.md).",
        ),
    ] = 1,
    feedback: Annotated[
        Path | None,
        typer.Option(
            "--feedback",
            help="JSONL file of answers to alerts (feedback records, as on the feedback topic), folded at "
            "their time: backtest what answers change (CHURNWATCH_FEEDBACK_* settings).",
        ),
    ] = None,
) -> None:
    """Replay an event file through the live windows, detectors and alert policy, as fast as the CPU can.

    Lines are validated as the live worker validates records (CHURNWATCH_* settings, overridden by the
    flags), sorted by event time whatever their order, and deduplicated; see docs/detection.md.
    \f
    Over ~60 lines: the signature declares one parameter per flag (typer reads them from it, and click cuts
    the help at the form feed above); the body is a dozen statements.
    """
    flags = {name: value for name, value in locals().items() if name in FLAG_SETTINGS}
    outputs = {
        "--scores": scores,
        "--alerts": alerts,
        "--report": report,
        "--html": html,
        "--rejects": rejects,
    }
    for flag, path in outputs.items():
        output_file(path, flag)  # before reading: a typo in a path must not cost the whole replay
    try:
        as_of_ms, now_ms = _time_option(as_of, "--as-of"), _time_option(now, "--now")
        settings = replay_settings(flags)
        rules = InputRules.from_settings(settings, now_ms=now_ms, sort_memory_bytes=sort_memory_mb << 20)
        answers = read_feedback(feedback) if feedback is not None else []
        result, stats = _run(
            events, rules, settings, as_of_ms, rejects, baselines or html is not None, answers, jobs
        )
    except InputError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        raise typer.Exit(2) from None
    except ShardFailed as error:  # not a mistake of the user: one line, and one process still replays
        typer.secho(f"error: {error} (--jobs 1 replays without shards)", err=True, fg="red")
        raise typer.Exit(1) from None
    holdout = settings.holdout.holdout()
    body = build_report(result, warmup_days=warmup_days, holdout=holdout)
    body.update(input_report(stats))
    body["state_bytes"] = state_sizes(result)
    if baselines:
        body["backtest"] = backtest_report(
            result, outcome=outcome, horizon_days=horizon_days, warmup_days=warmup_days
        )
    if scores is not None:
        write_scores(result, scores)
    if alerts is not None:
        write_alerts(result, alerts, holdout)
    if report is not None:
        report.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if html is not None:
        from streams.offline.report_html import write_html_report

        write_html_report(result, body, html)
    _print_summary(report_console(), body)


def read_feedback(path: Path) -> list[Feedback]:
    """Answers of a JSONL feedback file (blank lines skipped); InputError naming the first bad line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise InputError(f"--feedback {path}: {error.strerror or error}") from None
    answers: list[Feedback] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            answers.append(Feedback.from_bytes(line))
        except (ValueError, KeyError, TypeError) as error:
            problem = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise InputError(
                f"--feedback {path} line {number}: not an answer to an alert ({problem})"
            ) from None
    return answers


def _time_option(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_ts(text, min_ts_ms=None)  # historical data is data
    except InvalidEventError as error:
        detail = error.detail.replace("'ts'", repr(text))
        raise InputError(f"{flag}: {detail}") from None


def _run(
    source: str,
    rules: InputRules,
    settings: Settings,
    as_of_ms: int | None,
    rejects: Path | None,
    baselines: bool = False,
    answers: list[Feedback] | None = None,
    jobs: int = 1,
) -> tuple[ReplayResult, InputStats]:
    """Read, sort and replay, with a progress bar on stderr; InputError when no line was a valid event."""
    config = settings.detection.detector_config()
    replay_options: dict[str, Any] = {
        "config": config,
        "window_config": settings.windows.window_config(),
        "as_of_ms": as_of_ms,
        "snapshot_ms": snapshot_days(baselines),
        "record_activity": baselines,
        "feedback": answers or (),
        "answer_policy": settings.feedback.answer_policy(),
    }
    if jobs > 1:
        return _run_jobs(source, rules, rejects, jobs, replay_options)
    with contextlib.ExitStack() as stack:
        on_reject = stack.enter_context(rejects_file(rejects)) if rejects is not None else None
        sorted_input = stack.enter_context(SortedInput(rules, on_reject))
        bar = Progress(
            TextColumn("[bold]replay"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[clock]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        progress = stack.enter_context(progress_for(bar, "replay"))  # plain lines when piped
        reading = progress.add_task("replay", total=None, clock="reading")
        read_source(source, sorted_input, lambda n: progress.update(reading, clock=f"{n:,} lines read"))
        progress.update(reading, visible=False)
        task = progress.add_task("replay", total=sorted_input.stats.valid or None, clock="")

        def on_progress(lines: int, watermark_ms: int) -> None:
            clock = rfc3339(watermark_ms) if watermark_ms > 0 else ""
            progress.update(task, completed=lines, clock=f"{lines:,} events, clock {clock}")

        result = run_replay(sorted_input, on_progress=on_progress, **replay_options)
    return result, _accepted_some(source, sorted_input.stats)


def _run_jobs(
    source: str, rules: InputRules, rejects: Path | None, jobs: int, replay_options: dict[str, Any]
) -> tuple[ReplayResult, InputStats]:
    """``--jobs N``: the lock-step replay on N processes (streams/offline/replay_lockstep.py); with what it
    cannot do yet, pass 1 on N processes and the replay on this one (streams/offline/replay_parallel.py)."""
    if source == STDIN:
        raise InputError("--jobs reads the file once per process: give a file, not stdin")
    unsupported = (
        "--feedback"
        if replay_options["feedback"]
        else "the detectors' relative_trends"
        if replay_options["config"].relative_trends
        else "the detectors' spell outcomes"
        if replay_options["config"].follows_spells
        else "the compiled build, whose classes cannot be pickled between processes"
        if loaded_compiled()
        else None
    )
    console = Console(stderr=True)
    with contextlib.ExitStack() as stack:
        on_reject = stack.enter_context(rejects_file(rejects)) if rejects is not None else None
        if unsupported is not None:
            console.print(
                f"replay: reading on {jobs} processes, then replaying on one process ({unsupported} is not "
                "supported by the lock-step replay yet)",
                highlight=False,
            )
            result, stats = replay_file_parallel(
                source, jobs=jobs, rules=rules, on_reject=on_reject, **replay_options
            )
        else:
            console.print(f"replay: replaying on {jobs} processes in lock-step", highlight=False)
            options = {k: v for k, v in replay_options.items() if k not in ("feedback", "answer_policy")}
            # Plain lines, even on a terminal: a bar's refresh thread must not run when the shards fork.
            progress = stack.enter_context(PlainProgress("replay"))
            task = progress.add_task("replay", total=None, clock="")

            def on_progress(lines: int, clock_ms: int) -> None:
                progress.update(task, completed=lines, clock=f"{lines:,} lines, clock {rfc3339(clock_ms)}")

            result, stats = replay_lockstep(
                source, jobs=jobs, rules=rules, on_reject=on_reject, on_progress=on_progress, **options
            )
    return result, _accepted_some(source, stats)


def _accepted_some(source: str, stats: InputStats) -> InputStats:
    if not stats.accepted:
        name = "stdin" if source == STDIN else source
        raise InputError(f"{name} held no valid event ({stats.lines:,} lines: {no_event_summary(stats)})")
    return stats


def _fmt(value: Any, pattern: str = "{}") -> str:
    return "-" if value is None else pattern.format(value)


def _print_summary(console: Console, body: dict[str, Any]) -> None:
    table = Table(title="churnwatch replay", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("events / lines", f"{body['events']:,} / {body['lines']:,}")
    table.add_row("bad lines", f"{body['bad_lines']:,} {body['bad_reasons'] or ''}")
    table.add_row("duplicate events (dropped)", f"{body.get('duplicates', 0):,}")
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
        table.add_row(
            "precision (alert followed by a cancel; alerts judged)",
            f"{_fmt(body['precision'], '{:.0%}')} ({body.get('precision_alerts_judged', 0)})",
        )
    calibration = body.get("calibration")
    if calibration:
        table.add_row(
            "Brier score (base-rate Brier)",
            f"{calibration['brier']:.4f} ({calibration['brier_base_rate']:.4f})",
        )
    uplift = body.get("uplift")
    if uplift is not None:
        estimate = uplift["estimate"]
        table.add_row(
            f"holdout {uplift['experiment']} ({uplift['share']:.0%})",
            estimate["summary"]
            if estimate
            else f"no settled alerted account in a group ({uplift['pending']} pending)",
        )
    sizes = body.get("state_bytes")
    if sizes:
        table.add_row(
            "state bytes/account: window, detector",
            f"{sizes['window_mean']:.0f}, {sizes['detector_mean']:.0f} (max {sizes['detector_max']})",
        )
    console.print(table)
    if calibration:
        _print_reliability(console, calibration)
    print_backtest(console, body.get("backtest"))


def _print_reliability(console: Console, calibration: dict[str, Any]) -> None:
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
