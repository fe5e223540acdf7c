"""``churnwatch replay``'s baseline comparison: options, the backtest run and its summary table."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from rich.console import Console
from rich.table import Table

from streams.offline.backtest import (
    BATCH_LABEL,
    CHURNWATCH,
    BacktestConfig,
    EveryNthMidnight,
    OutcomeMode,
    backtest,
)
from streams.offline.baselines import BASELINE_LABELS
from streams.offline.replay import ReplayResult

SNAPSHOT_EVERY_DAYS = 7  # risk snapshots a replay keeps for the ranking (as-of points are chosen among them)


def snapshot_days(enabled: bool) -> Container[int]:
    return EveryNthMidnight(SNAPSHOT_EVERY_DAYS) if enabled else ()


def backtest_report(
    result: ReplayResult, *, outcome: OutcomeMode, horizon_days: int, warmup_days: int
) -> dict[str, Any] | None:
    """The report's ``backtest`` section (None when the file had no usage to compare on)."""
    cfg = BacktestConfig(horizon_days=horizon_days, outcome=outcome, warmup_days=warmup_days)
    outcome_of = backtest(result, cfg)
    return outcome_of.to_dict() if outcome_of is not None else None


def _fmt(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def print_backtest(console: Console, body: dict[str, Any] | None) -> None:
    """Risk against the baselines, one row each, and the verdict in words."""
    if body is None:
        return
    if not body["as_of"]:
        console.print(
            f"baselines: no as-of point with a full {body['horizon_days']}-day horizon after warm-up; "
            "no comparison"
        )
        return
    table = Table(
        title=(
            f"risk vs simple baselines: outcome {body['outcome']} within {body['horizon_days']} days, "
            f"as of {', '.join(t[:10] for t in body['as_of'])}"
        )
    )
    for column in (
        "score",
        "AUC ± SE",
        "cases (churn)",
        "churners flagged (≥ 7 d ahead)",
        "median lead (d)",
        "non-churner alerts / 30 d",
        "precision (judged)",
    ):
        table.add_column(column, justify="left" if column == "score" else "right")
    for name, row in body["scorers"].items():
        label = "churnwatch risk" if name == CHURNWATCH else BASELINE_LABELS[name]
        auc = "-" if row["auc"] is None else f"{row['auc']:.3f} ± {row['auc_se']:.3f}"
        ahead = next((v for k, v in row.items() if k.startswith("churners_flagged_") and "ahead" in k), None)
        table.add_row(
            label,
            auc,
            f"{row['cases']:,} ({row['positives']:,})",
            f"{_fmt(row['churners_flagged_share'], '{:.0%}')} ({_fmt(ahead, '{:.0%}')}) of {row['churners']}",
            _fmt(row["lead_days_median"], "{:.1f}"),
            _fmt(row["nonchurner_alerts_per_30_days"], "{:.2%}"),
            f"{_fmt(row['precision_judged'], '{:.0%}')} ({row['alerts_judged']})",
        )
    console.print(table)
    console.print(
        "Baselines alert where their score crosses the threshold giving churnwatch's alert rate on "
        "non-churners; precision counts only alerts whose outcome is known (their number in brackets)."
    )
    console.print(f"[bold]{body['verdict']}[/bold]")
    batch = body.get("batch_model") or {}
    if batch.get("auc") is not None:
        console.print(
            f"A {BATCH_LABEL}, for the ranking only: AUC {batch['auc']:.3f} ± {batch['auc_se']:.3f} "
            f"(churnwatch at the same as-of points: {batch['churnwatch_same_points']:.3f})."
        )


__all__ = ["backtest_report", "print_backtest", "snapshot_days"]
