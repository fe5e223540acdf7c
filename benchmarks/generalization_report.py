"""The generalisation benchmark's per-file results, their summary per source and its printed table.

``benchmarks/detection_generalization.py`` replays the files and backtests them; this module adds them up:
per scorer the mean AUC and its SE over files, the alert columns pooled over files, the holiday and
per-shape counts, and the batch model's AUC against churnwatch's over the same as-of points.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.offline.backtest import BATCH_LABEL, CHURNWATCH, Backtest
from streams.offline.baselines import BASELINE_LABELS, BASELINES

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import Source  # benchmarks/generalization_sources.py
from holiday_alerts import HolidayAlerts, describe, fmt  # benchmarks/holiday_alerts.py

SCORERS = (CHURNWATCH, *BASELINES)


@dataclass(slots=True)
class FileResult:
    label: str
    backtest: Backtest
    vacation_alerted: dict[str, float | None]
    holiday_alerts: dict[str, HolidayAlerts] | None  # None: the file has no shared holiday
    repeat_auc: dict[str, float | None] = field(default_factory=dict)  # ranking among repeat customers
    by_shape: dict[str, tuple[int, int]] = field(default_factory=dict)  # shape -> (accounts, churnwatch hits)


# -- aggregation and printing ------------------------------------------------------------------------------


def summarise(files: list[FileResult]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in SCORERS:
        aucs = [f.backtest.scorers[name].auc for f in files]
        present = [a for a in aucs if a is not None]
        alerts = [f.backtest.scorers[name].alerts for f in files]
        churners = sum(a.churners for a in alerts)
        judged = sum(a.judged for a in alerts)
        leads = [lead for a in alerts for lead in a.leads]
        rates = [a.nonchurner_alerts_per_30d for a in alerts if a.nonchurner_alerts_per_30d is not None]
        vacation = [f.vacation_alerted[name] for f in files if f.vacation_alerted[name] is not None]
        if len(present) >= 2:
            se: float | None = statistics.stdev(a.auc for a in present) / len(present) ** 0.5
        else:
            se = present[0].se if present else None
        rows[name] = {
            "auc": statistics.fmean(a.auc for a in present) if present else None,
            "auc_se": se,
            "auc_per_file": [a.auc if a else None for a in aucs],
            "cases": sum(a.n for a in present),
            "positives": sum(a.positives for a in present),
            "churners": churners,
            "flagged_ahead": sum(a.flagged_ahead for a in alerts) / churners if churners else None,
            "lead_median": statistics.median(leads) if leads else None,
            "nonchurner_alerts_per_30d": statistics.fmean(rates) if rates else None,
            "precision": sum(a.hits for a in alerts) / judged if judged else None,
            "judged": judged,
            "vacation_alerted": statistics.fmean(v for v in vacation if v is not None) if vacation else None,
            "holiday_alerts": _holiday_total(files, name),
        }
    return rows


def batch_summary(files: list[FileResult]) -> dict[str, Any]:
    """The batch model's AUC per file, their mean and SE, and churnwatch's paired difference from it, both
    over the same as-of points."""
    pairs = [pair for f in files if (pair := f.backtest.batch_pair()) is not None]
    if not pairs:
        return dict.fromkeys(
            ("auc", "auc_se", "auc_per_file", "churnwatch_same_points", "churnwatch_minus_batch", "se")
        )
    batch = [b for b, _ in pairs]
    diff = [o - b for b, o in pairs]
    spread = len(pairs) >= 2
    return {
        "auc": statistics.fmean(batch),
        "auc_se": statistics.stdev(batch) / len(batch) ** 0.5 if spread else None,
        "auc_per_file": batch,
        "churnwatch_same_points": statistics.fmean(o for _, o in pairs),
        "churnwatch_minus_batch": statistics.fmean(diff),
        "se": statistics.stdev(diff) / len(diff) ** 0.5 if spread else None,
    }


def _holiday_total(files: list[FileResult], name: str) -> dict[str, Any] | None:
    counts = [f.holiday_alerts[name] for f in files if f.holiday_alerts is not None]
    if not counts:
        return None
    return sum(counts[1:], counts[0]).to_json()


def _fmt_auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_table(source: Source, files: list[FileResult], rows: dict[str, dict[str, Any]]) -> None:
    outcome = files[0].backtest.outcome.value if files else "-"
    horizon = files[0].backtest.horizon_days if files else "-"
    print(f"\n### {source.name} ({source.split.upper()}): {source.description}")
    print(f"{len(files)} file(s); outcome: {outcome} within {horizon} days\n")
    print(
        "| scorer | AUC ± SE | churners flagged ≥ 7 d ahead | median lead (d) | "
        "non-churner alerts / 30 d | precision (judged) | vacation alerted | holiday alerts (without) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        label = "churnwatch risk" if name == CHURNWATCH else BASELINE_LABELS[name]
        auc = "-" if r["auc"] is None else f"{r['auc']:.3f} ± {r['auc_se']:.3f}"
        lead = "-" if r["lead_median"] is None else f"{r['lead_median']:.1f}"
        rate = "-" if r["nonchurner_alerts_per_30d"] is None else f"{r['nonchurner_alerts_per_30d']:.2%}"
        print(
            f"| {label} | {auc} | {_pct(r['flagged_ahead'])} of {r['churners']} | {lead} | {rate} | "
            f"{_pct(r['precision'])} ({r['judged']}) | {_pct(r['vacation_alerted'])} | "
            f"{fmt(r['holiday_alerts'])} |"
        )
    ours = rows[CHURNWATCH]["auc"]
    best = max(
        (n for n in BASELINES if rows[n]["auc"] is not None), key=lambda n: rows[n]["auc"], default=None
    )
    if ours is not None and best is not None:
        verdict = "beats" if ours > rows[best]["auc"] else "does NOT beat"
        print(
            f"\nchurnwatch {verdict} the best baseline ({BASELINE_LABELS[best]}) on {source.name}: "
            f"AUC {ours:.3f} vs {rows[best]['auc']:.3f}"
        )
    batch = batch_summary(files)
    if batch["auc"] is not None:
        se = "" if batch["se"] is None else f" ± {batch['se']:.4f}"
        print(
            f"\n{BATCH_LABEL}, ranking only: AUC {batch['auc']:.3f} on {len(batch['auc_per_file'])} file(s), "
            f"churnwatch {batch['churnwatch_same_points']:.3f} at the same as-of points; churnwatch minus "
            f"it, paired per file: {batch['churnwatch_minus_batch']:+.4f}{se}"
        )
    holiday = rows[CHURNWATCH]["holiday_alerts"]
    if holiday is not None:
        print(f"\nchurnwatch's non-churner alerts: {describe(holiday)}")
    shapes: dict[str, list[int]] = {}
    for f in files:
        for key, (n, hits) in f.by_shape.items():
            total = shapes.setdefault(key, [0, 0])
            total[0] += n
            total[1] += hits
    if shapes:
        print(
            "\nchurnwatch by ground-truth shape: "
            + "; ".join(f"{key} {hits / n:.0%} of {n}" for key, (n, hits) in sorted(shapes.items()))
        )
    repeat = [f.repeat_auc for f in files if f.repeat_auc]
    if repeat:
        parts = []
        for name in SCORERS:
            values = [v for r in repeat if (v := r.get(name)) is not None]
            label = "churnwatch risk" if name == CHURNWATCH else BASELINE_LABELS[name]
            parts.append(f"{label} {_fmt_auc(statistics.fmean(values) if values else None)}")
        print(f"\nAUC among repeat customers (>= 2 active days before the as-of point): {', '.join(parts)}")
