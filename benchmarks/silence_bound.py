"""How far apart are vacations and silent churn in the generated bases? A bound for alerts on silence.

Issue 14 asks, on SaaS-shaped data, for >= 90 % of churners flagged at least 7 days ahead *and* <= 10 % of
vacation accounts alerted. A silent churner (``Shape.SILENT``) uses the product as usual, goes quiet and
cancels some days later; a vacation account (``Shape.VACATION``) goes (almost) quiet for its vacation (usage
at 2 %) and comes back. Until one of them comes back or cancels, only the length of the quiet run tells them
apart. This script measures, on the ground truth of ``streams.dev.shapes`` bases (no detector runs), what
the simplest rule that sees nothing but silence can reach: it reads each account's exact daily usage (the
generator's own draws, without the mix's holiday week, so a shared holiday plays no part) and opens an alert
the first day an account's quiet run (days since its last active day) reaches k days, after the 21-day
warm-up, one per run. Counted as the backtest and ``benchmarks/detection_generalization.py`` count: a churner
is flagged ahead when an opening falls 7-60 days before its churn; a vacation account that did not churn is
alerted when it is ever alerted. For each k it prints

* the share of silent churners flagged >= 7 d ahead,
* the share of vacation accounts alerted,
* the ceiling on all churners flagged >= 7 d ahead if every other churner were flagged: what the silent
  churners cost at that k;

then the best share of silent churners at <= 10 % of vacations alerted, and the fewest vacations alerted at
>= 90 % of silent churners flagged (k from 1 to 40). About a second per mix and ten seeds::

    .venv/bin/python benchmarks/silence_bound.py                          # every mix but rhythm, seeds 0-2
    .venv/bin/python benchmarks/silence_bound.py --mixes tuning --seeds 100-109     # the benchmark's files

The figures are in ``docs/detection.md`` (Known gaps; the twenty-fourth pass). Dependencies: numpy (core).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.dev.shape_mixes import MIXES, Shape
from streams.dev.shapes import ShapedBase, ShapesConfig

KS = (3, 5, 7, 10, 14, 21)
LEAD_MIN, LOOKBACK, WARMUP, MAX_K = 7, 60, 21, 40
VACATION_GOAL, FLAGGED_GOAL = 0.10, 0.90


@dataclass(frozen=True, slots=True)
class Account:
    """What the rule needs of one account: its shape, life and which days it was active."""

    shape: Shape
    join: int
    churn: int | None  # within the file only
    active: npt.NDArray[np.bool_]  # per day of the file


def accounts_of(mix: str, seed: int, accounts: int, days: int) -> list[Account]:
    base = ShapedBase(ShapesConfig(mix=mix, seed=seed, accounts=accounts, days=days, holiday=False))
    rng = np.random.default_rng([seed, 12])  # the same draws as ShapedBase.events()
    counts = rng.poisson(base._rates(rng))
    return [
        Account(a.shape, a.join, a.churn if a.churn is not None and a.churn < days else None, counts[i] > 0)
        for i, a in enumerate(base.accounts)
    ]


def alert_days(account: Account, k: int) -> list[int]:
    """The days (after warm-up, before any churn) on which one of the account's quiet runs reaches ``k`` days:
    one alert per run, closed when the account is active again."""
    end = account.churn if account.churn is not None else len(account.active)
    last: int | None = None
    runs: list[int] = []  # the last active day before each alerted run
    for day in range(max(account.join, 0), end):
        if account.active[day]:
            last = day
        elif last is not None and day - last >= k and day >= account.join + WARMUP and last not in runs:
            runs.append(last)
    return [max(last + k, account.join + WARMUP) for last in runs]


@dataclass(frozen=True, slots=True)
class Point:
    """The rule at one ``k``."""

    k: int
    flagged: float  # silent churners flagged >= 7 d ahead
    alerted: float  # vacation accounts alerted
    ceiling: float  # all churners flagged >= 7 d ahead if every other churner were


def point(rows: list[Account], k: int) -> Point:
    churners = [a for a in rows if a.churn is not None and a.churn >= WARMUP]
    silent = [a for a in churners if a.shape is Shape.SILENT]
    vacations = [a for a in rows if a.shape is Shape.VACATION and a.churn is None]
    hits = sum(
        any(c - LOOKBACK <= day <= c - LEAD_MIN for day in alert_days(a, k)) for a in silent if (c := a.churn)
    )
    flagged = hits / len(silent) if silent else 0.0
    alerted = sum(bool(alert_days(a, k)) for a in vacations) / len(vacations) if vacations else 0.0
    share = len(silent) / len(churners) if churners else 0.0
    return Point(k, flagged, alerted, 1.0 - share * (1.0 - flagged))


def report(mix: str, rows: list[Account]) -> None:
    curve = [point(rows, k) for k in range(1, MAX_K + 1)]
    churners = sum(a.churn is not None and a.churn >= WARMUP for a in rows)
    silent = sum(a.shape is Shape.SILENT and a.churn is not None and a.churn >= WARMUP for a in rows)
    vacations = sum(a.shape is Shape.VACATION and a.churn is None for a in rows)
    print(
        f"\n{mix}: {churners} churners, {silent} silent ({silent / max(churners, 1):.0%}), "
        f"{vacations} vacations"
    )
    print("| k silent days | silent churners flagged >= 7 d | vacations alerted | ceiling, all churners |")
    print("|---|---|---|---|")
    for p in curve:
        if p.k in KS:
            print(f"| {p.k} | {p.flagged:.0%} | {p.alerted:.0%} | {p.ceiling:.0%} |")
    cheap = [p for p in curve if p.alerted <= VACATION_GOAL]
    if cheap:
        best = max(cheap, key=lambda p: p.flagged)
        print(
            f"at <= {VACATION_GOAL:.0%} of vacations alerted: k = {best.k}, "
            f"{best.flagged:.0%} of silent churners flagged"
        )
    enough = [p for p in curve if p.flagged >= FLAGGED_GOAL]
    if enough:
        least = min(enough, key=lambda p: p.alerted)
        print(
            f"at >= {FLAGGED_GOAL:.0%} of silent churners flagged: k = {least.k}, "
            f"{least.alerted:.0%} of vacations alerted"
        )


def seed_range(text: str) -> range:
    """``"N"``: seeds 0..N-1; ``"A-B"``: seeds A..B."""
    lo, dash, hi = text.partition("-")
    return range(int(lo), int(hi) + 1) if dash else range(int(lo))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mixes = [m for m in MIXES if m != "rhythm"]  # rhythm is the tuning mix with monthly accounts
    parser.add_argument("--mixes", nargs="+", default=mixes, choices=list(MIXES))
    parser.add_argument("--seeds", type=seed_range, default=range(3), help="N (seeds 0..N-1) or A-B")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    for mix in args.mixes:
        report(mix, [a for seed in args.seeds for a in accounts_of(mix, seed, args.accounts, args.days)])


if __name__ == "__main__":
    main()
