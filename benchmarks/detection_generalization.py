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
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from detectors.monitor import DetectorConfig
from detectors.windows import DAY_MS
from streams.offline.backtest import CHURNWATCH, Backtest, BacktestConfig, backtest
from streams.offline.replay import ReplayResult, replay_file

sys.path.insert(0, str(Path(__file__).parent))
from generalization_report import (  # benchmarks/generalization_report.py
    FileResult,
    batch_summary,
    print_table,
    summarise,
)
from generalization_sources import SOURCES, SourceFile  # benchmarks/generalization_sources.py
from holiday_alerts import HolidayAlerts, holiday_alerts  # benchmarks/holiday_alerts.py


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
