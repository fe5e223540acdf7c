"""Does churnwatch's risk beat simple baselines on data shaped unlike our simulator? One table per source.

Usage::

    .venv/bin/python benchmarks/detection_generalization.py --split tuning            # tuning data only
    .venv/bin/python benchmarks/detection_generalization.py --split tuning --files 2 --jobs 2   # quick
    .venv/bin/python benchmarks/detection_generalization.py --split heldout           # final report only
    .venv/bin/python benchmarks/detection_generalization.py --split all --json out.json

Sources and splits (fixed in advance; defined in ``benchmarks/generalization_sources.py``):

* ``simulator`` (tuning): ``streams.dev.simulator`` seeds 1-10, 400 accounts (``--accounts``), 150 days from
  2026-06-01.
* ``shapes-tuning`` (tuning): ``streams.dev.shapes`` "tuning" mix, seeds 100-109, same size.
* ``shapes-rhythm`` (tuning): ``streams.dev.shapes`` "rhythm" mix (the tuning mix with a tenth of its
  accounts busy mid-month), seeds 150-159, added in the tenth pass.
* ``shapes-heldout`` (HELD-OUT): ``streams.dev.shapes`` "heldout" mix, seeds 200-209, same size.
* ``shapes-fresh`` (HELD-OUT): the same mix, seeds 300-309, added with the risk mixture and run once for it
  (200-209 had been seen by earlier passes).
* ``shapes-shifted`` (HELD-OUT): ``streams.dev.shapes`` "shifted" mix (a second held-out mix: churn from a
  low level and recency, late joiners), seeds 500-509, added in the sixth pass and run once, for its report.
* ``shapes-distant`` (HELD-OUT): ``streams.dev.shapes`` "distant" mix (a third held-out mix: B2B-like, long
  vacations, fades and card failures, short leads, a late holiday week), seeds 700-709, defined in the eighth
  pass before any run on it and run once, for its report.
* ``shapes-far`` (HELD-OUT): ``streams.dev.shapes`` "far" mix (a fourth held-out mix: consumer-like, wide
  levels, very sparse accounts, short vacations, subtle and slow churn, an early mild holiday week), seeds
  800-809, defined in the ninth pass before any work or run on it; run once, for its report.
* ``shapes-remote`` (HELD-OUT): ``streams.dev.shapes`` "remote" mix (a fifth held-out mix: seasonal accounts
  busy at the start of each month, sparse accounts, vacations of 1-3 weeks, churn of every cause, late
  joiners), seeds 900-909, defined in the tenth pass before any work or run on it; run once, for its report.
* ``shapes-plain``, ``shapes-smb``, ``shapes-thin`` (HELD-OUT): the "plain" (tenth pass), "smb" (eleventh)
  and "thin" (twelfth; not yet run) mixes, seeds 1000-1009, 1100-1109 and 1200-1209, each defined before any
  run on it (``benchmarks/generalization_sources.py`` describes them).
* ``cdnow`` (HELD-OUT, real): CDNOW purchases 1997-98 shipped in the ``lifetimes`` wheel (MIT; data published
  by Fader & Hardie), the 2,357-customer sample (``--cdnow-full``: all 23,570), converted by
  ``benchmarks/real_data.py``; as-of 1997-07-01, 1997-10-01, 1998-01-01, 1998-04-01, outcome: no purchase in
  the next 90 days.
* ``churnsim`` (HELD-OUT): ChurnSim "socialnet7" from ``fightchurn`` 1.2.0 (MIT), seed 300, 1000 initial
  customers, 2020-01-01..2020-06-01, exported by ``benchmarks/churnsim_export.py`` in its own virtualenv;
  as-of 2020-03-01, 04-01, 05-01, outcome: cancellation within 30 days.

Each file is replayed through ``streams.offline.replay.run_replay`` (what ``churnwatch replay`` runs,
``DetectorConfig()`` with ``horizon_days`` set to the horizon the file is judged on, as a user sets
``CHURNWATCH_HORIZON_DAYS`` to what they call churn: 30 days, 90 for CDNOW), keeping churnwatch's risk at
the as-of midnights and the usage per account-day; then ``streams.offline.backtest.backtest`` scores
churnwatch and the baselines of ``streams.offline.baselines`` (days since last activity, activity in the
last 28 days, 8-week trend, BG/NBD P(alive) fitted on the file by maximum likelihood with scipy) on the
file's own outcomes: cancellation within the horizon (30 days), or, for files without cancellations, no
activity for the whole horizon (90 days for CDNOW). Columns:

* AUC ± SE: mean over the file's as-of points of the AUC among accounts active and not cancelled at that
  point; across a source's files, the mean AUC and the standard error of that mean (Hanley-McNeil SE of
  the file when the source has one file).
* flagged >= 7 d: share of churners (churning after the 21-day warm-up) with an alert opened 7-60 days
  before they churned; lead: median days from the first alert within 60 days to the churn (pooled).
* non-churner alerts / 30 d: alerts opened after warm-up on accounts that did not churn, per account per
  30 days. Baselines alert when their daily score crosses a threshold, chosen per file so that they raise
  no more alerts on non-churners than churnwatch did (same alert budget).
* precision (judged): alerts followed by a churn within 60 days over the alerts whose outcome is known.
* vacation alerted: share of the ground truth's vacation accounts (that did not churn) ever alerted.
* holiday alerts (without): alerts opened on non-churners after warm-up during a holiday shared by the whole
  base or the 7 days after it, and in brackets the same count on the same base generated without its
  holiday (``benchmarks/holiday_alerts.py``; the shapes sources replay that control file too): what a
  holiday adds is the difference. Without a control (the simulator's one-day holidays) the brackets hold
  ``~`` and the file's other days' rate times the windows' days, a rough expectation (alerts are not spread
  evenly over a file). A line under the table gives the same for the 14 days after the windows, where
  alerts a holiday only postponed would land.

Dependencies: numpy, scipy (core). CDNOW needs the benchmark extra (``.venv/bin/pip install -e '.[bench]'``,
which installs ``lifetimes``; only its data file is read). ChurnSim needs ``fightchurn``, whose pinned
dependencies do not belong in churnwatch's environment::

    python3.11 -m venv .venv-churnsim && .venv-churnsim/bin/pip install fightchurn==1.2.0

(``--churnsim-python``, default ``.venv-churnsim/bin/python``). A source whose package is missing is skipped
with a message saying how to install it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from detectors.monitor import DetectorConfig
from detectors.windows import DAY_MS
from streams.offline.backtest import BATCH_LABEL, CHURNWATCH, Backtest, BacktestConfig, backtest
from streams.offline.baselines import BASELINE_LABELS, BASELINES
from streams.offline.replay import ReplayResult, replay_file

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import SOURCES, Source, SourceFile  # benchmarks/generalization_sources.py
from holiday_alerts import HolidayAlerts, describe, fmt, holiday_alerts  # benchmarks/holiday_alerts.py

SCORERS = (CHURNWATCH, *BASELINES)


@dataclass(slots=True)
class FileResult:
    label: str
    backtest: Backtest
    vacation_alerted: dict[str, float | None]
    holiday_alerts: dict[str, HolidayAlerts] | None  # None: the file has no shared holiday
    repeat_auc: dict[str, float | None] = field(default_factory=dict)  # ranking among repeat customers
    by_shape: dict[str, tuple[int, int]] = field(default_factory=dict)  # shape -> (accounts, churnwatch hits)


def replay_and_backtest(
    source_file: SourceFile, events: Path, cfg: BacktestConfig, config: DetectorConfig
) -> tuple[ReplayResult, Backtest | None]:
    result = replay_file(
        events,
        config=config,
        snapshot_ms=[d * DAY_MS for d in source_file.as_of_days],
        record_activity=True,
    )
    return result, backtest(result, cfg)


def run_file(source_file: SourceFile, warmup_days: int, config: DetectorConfig) -> FileResult | None:
    cfg = BacktestConfig(
        horizon_days=source_file.horizon_days,
        outcome=source_file.outcome,
        as_of_days=source_file.as_of_days,
        warmup_days=warmup_days,
    )
    result, bt = replay_and_backtest(source_file, source_file.events, cfg, config)
    if bt is None:
        return None
    control = None
    if source_file.control is not None:
        control = replay_and_backtest(source_file, source_file.control, cfg, config)[1]
    repeat: dict[str, float | None] = {}
    if source_file.repeat_view:
        again = backtest(result, replace(cfg, min_active_days=2))
        if again is not None:
            repeat = {n: (s.auc.auc if s.auc else None) for n, s in again.scorers.items()}
    vacation = [a for a in source_file.vacation if a not in bt.churn_day]
    vacation_alerted: dict[str, float | None] = {}
    holidays: dict[str, HolidayAlerts] | None = {} if source_file.holidays else None
    for name, scorer in bt.scorers.items():
        openings = scorer.alerts.openings
        vacation_alerted[name] = (
            sum(1 for a in vacation if openings.get(a)) / len(vacation) if vacation else None
        )
        if holidays is not None:
            twin = control.scorers[name].alerts.openings if control is not None else None
            holidays[name] = holiday_alerts(bt, openings, source_file.holidays, twin)
    by_shape = shape_breakdown(bt, source_file.shape_of)
    return FileResult(source_file.label, bt, vacation_alerted, holidays, repeat, by_shape)


def shape_breakdown(bt: Backtest, shape_of: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per ground-truth shape: churners flagged >= 7 d ahead by churnwatch, or non-churners ever alerted."""
    cfg = BacktestConfig()
    openings = bt.scorers[CHURNWATCH].alerts.openings
    out: dict[str, list[int]] = {}
    for account, shape in shape_of.items():
        churned = bt.churn_day.get(account)
        times = openings.get(account, [])
        if churned is not None:
            if churned < bt.warm_day:
                continue
            key = f"{shape} (churners flagged >= {cfg.lead_min_days} d ahead)"
            hit = any(churned - cfg.lookback_days <= t <= churned - cfg.lead_min_days for t in times)
        else:
            key, hit = f"{shape} (non-churners alerted)", bool(times)
        counts = out.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += hit
    return {k: (v[0], v[1]) for k, v in out.items()}


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


def matched(bt: Backtest) -> tuple[float, float] | None:
    """The batch model's and churnwatch's mean AUC over the as-of points where both were ranked (the batch
    model has none at a point with no earlier outcomes to fit on, usually the first)."""
    points = [
        (b.auc, o.auc)
        for b, o in zip(bt.batch_per_as_of, bt.scorers[CHURNWATCH].per_as_of, strict=True)
        if b is not None and o is not None
    ]
    if not points:
        return None
    return statistics.fmean(b for b, _ in points), statistics.fmean(o for _, o in points)


def batch_summary(files: list[FileResult]) -> dict[str, Any]:
    """The batch model's AUC per file, their mean and SE, and churnwatch's paired difference from it, both
    over the same as-of points."""
    pairs = [pair for f in files if (pair := matched(f.backtest)) is not None]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=("tuning", "heldout", "all"), default="tuning")
    parser.add_argument("--sources", nargs="+", default=None, help="Only these sources (names).")
    parser.add_argument("--files", type=int, default=10, help="At most this many files (seeds) per source.")
    parser.add_argument("--accounts", type=int, default=400, help="Accounts per generated file.")
    parser.add_argument("--days", type=int, default=150, help="Days per generated file.")
    parser.add_argument("--sim-seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--warmup-days", type=int, default=21)
    parser.add_argument("--workdir", type=Path, default=None, help="Keep generated files here (reused).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the summary as JSON here.")
    parser.add_argument("--jobs", type=int, default=1, help="Files replayed in parallel (processes).")
    parser.add_argument(
        "--alert-threshold",
        type=float,
        default=DetectorConfig().alert_threshold,
        help="Risk at which an episode opens (tuning only; the default is DetectorConfig's).",
    )
    parser.add_argument(
        "--spell-hold",
        action="store_true",
        help="Turn on DetectorConfig.spell_hold (an option, off by default; issue 14's eighth pass).",
    )
    parser.add_argument(
        "--alert-budget",
        type=float,
        default=None,
        help="DetectorConfig.alert_budget: openings per account per 30 days (off by default; ninth pass).",
    )
    parser.add_argument(
        "--monthly-cycles",
        action=argparse.BooleanOptionalAction,
        default=DetectorConfig().monthly_cycles,
        help="DetectorConfig.monthly_cycles (on by default since issue 14's tenth pass).",
    )
    parser.add_argument(
        "--refit-keeps-sgd",
        action=argparse.BooleanOptionalAction,
        default=DetectorConfig().refit_keeps_sgd,
        help="DetectorConfig.refit_keeps_sgd: an SGD regression beside the refitted one (on by default since "
        "issue 14's sixteenth pass, with its gate).",
    )
    parser.add_argument(
        "--refit-sgd-gate",
        type=float,
        default=DetectorConfig().refit_sgd_gate,
        help="DetectorConfig.refit_sgd_gate: the sgd expert only where the refit is off its base rate "
        "by this factor (0: always; sixteenth pass).",
    )
    parser.add_argument(
        "--refit-every",
        type=int,
        default=DetectorConfig().refit_every,
        help="DetectorConfig.refit_every: batch refits of the learned regression (issue 14's eleventh pass).",
    )
    parser.add_argument("--cdnow-full", action="store_true", help="All 23,570 CDNOW customers (slow).")
    parser.add_argument(
        "--churnsim-python",
        type=Path,
        default=Path(".venv-churnsim/bin/python"),
        help="Python of a virtualenv with fightchurn installed (ChurnSim runs there).",
    )
    args = parser.parse_args(argv)
    chosen = [
        s
        for s in SOURCES
        if (args.split == "all" or s.split == args.split) and (args.sources is None or s.name in args.sources)
    ]
    if not chosen:
        print(f"no source matches --split {args.split} --sources {args.sources}", file=sys.stderr)
        return 2
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for source in chosen:
            files = list(source.files(workdir, args))
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                # Each file is run the way a user whose question is that file's would run churnwatch: with
                # CHURNWATCH_HORIZON_DAYS set to the horizon the file is judged on (30, or 90 for CDNOW).
                configs = [
                    DetectorConfig(
                        alert_threshold=args.alert_threshold,
                        horizon_days=f.horizon_days,
                        spell_hold=args.spell_hold,
                        alert_budget=args.alert_budget,
                        monthly_cycles=args.monthly_cycles,
                        refit_every=args.refit_every,
                        refit_keeps_sgd=args.refit_keeps_sgd,
                        refit_sgd_gate=args.refit_sgd_gate or None,
                    )
                    for f in files
                ]
                done = pool.map(run_file, files, [args.warmup_days] * len(files), configs)
                results = [r for r in done if r is not None]
            for outcome in results:
                ours = outcome.backtest.scorers[CHURNWATCH].auc
                print(
                    f"{source.name} {outcome.label}: churnwatch AUC {ours.auc if ours else '-'}",
                    file=sys.stderr,
                )
            rows = summarise(results)
            print_table(source, results, rows)
            summary[source.name] = {
                "split": source.split,
                "files": len(results),
                "scorers": rows,
                "batch_model": batch_summary(results),
            }
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
