"""How many silent churners a silence-driven alert could flag >= 7 days ahead, and at what cost in vacations.

Issue 14 asks, on SaaS-shaped data, for >= 90 % of churners flagged at least 7 days before they leave *and*
<= 10 % of vacation accounts alerted. In :mod:`streams.dev.shapes` a silent churner (``Shape.SILENT``) uses
the product as usual, goes quiet, and cancels some days later; a vacation account (``Shape.VACATION``) uses it
as usual, goes (almost) quiet for its vacation, and comes back. Until one of them comes back or cancels, only
the length of the quiet run tells them apart. This script asks what an oracle could do with that: it reads
each account's exact daily usage (the generator's own Poisson draws, without the mix's holiday week, so a
shared holiday plays no part) and opens an alert the first day an account's quiet run (days since its last
active day) reaches ``k`` days, after its warm-up (one alert per quiet run). As in the backtest
(:mod:`streams.offline.backtest_alerts`), a churner counts as flagged ahead when an opening falls within 60
days before its churn and at least 7 days before it; a vacation account (one that did not churn) counts as
alerted when it is ever alerted, as ``benchmarks/detection_generalization.py`` counts it. For every ``k`` it
prints both shares, then the best share of silent churners at <= 10 % of vacations alerted and the fewest
vacations alerted at >= 90 % of silent churners flagged. Ground truth only (no replay); a second per mix::

    .venv/bin/python benchmarks/silence_ceiling.py --mix tuning --seeds 100-109

The figures are in ``docs/detection.md`` (twenty-fourth pass).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.dev.shape_mixes import MIXES, Shape
from streams.dev.shapes import ShapedBase, ShapesConfig

LOOKBACK, AHEAD, WARMUP = 60, 7, 21
RUNS = (3, 5, 7, 10, 14, 21, 28)
VACATION_GOAL, FLAGGED_GOAL = 0.10, 0.90


@dataclass(frozen=True, slots=True)
class Account:
    """What the oracle needs of one account: its shape, life and which days it was active."""

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
    out: list[int] = []
    for day in range(max(account.join, 0), end):
        if account.active[day]:
            last = day
        elif last is not None and day - last >= k and day >= account.join + WARMUP and last not in out:
            out.append(last)
    return [last + k if last + k >= account.join + WARMUP else account.join + WARMUP for last in out]


def silent_flagged(rows: list[Account], k: int) -> tuple[int, int]:
    """(silent churners flagged >= 7 d ahead by a quiet run of ``k`` days, silent churners counted)."""
    counted = [a for a in rows if a.shape is Shape.SILENT and a.churn is not None and a.churn >= WARMUP]
    hits = sum(
        any(c - LOOKBACK <= day <= c - AHEAD for day in alert_days(a, k))
        for a in counted
        if (c := a.churn) is not None
    )
    return hits, len(counted)


def vacations_alerted(rows: list[Account], k: int) -> tuple[int, int]:
    """(vacation accounts that did not churn ever alerted by a quiet run of ``k`` days, such accounts)."""
    counted = [a for a in rows if a.shape is Shape.VACATION and a.churn is None]
    return sum(bool(alert_days(a, k)) for a in counted), len(counted)


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", required=True, choices=sorted(MIXES))
    parser.add_argument("--seeds", type=seed_range, required=True, help="e.g. 100-109")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    rows = [a for seed in args.seeds for a in accounts_of(args.mix, seed, args.accounts, args.days)]
    best: tuple[float, int] | None = None
    cheapest: tuple[float, int] | None = None
    for k in range(1, max(RUNS) + 1):
        hits, silent = silent_flagged(rows, k)
        alerted, vacations = vacations_alerted(rows, k)
        flagged, cost = hits / max(silent, 1), alerted / max(vacations, 1)
        if cost <= VACATION_GOAL and (best is None or flagged > best[0]):
            best = (flagged, k)
        if flagged >= FLAGGED_GOAL and (cheapest is None or cost < cheapest[0]):
            cheapest = (cost, k)
        if k in RUNS:
            print(
                f"{args.mix}: quiet for {k:2d} d: silent churners flagged >= {AHEAD} d ahead "
                f"{hits}/{silent} = {flagged:.0%}; vacation accounts alerted "
                f"{alerted}/{vacations} = {cost:.0%}"
            )
    if cheapest is None:
        print(f"{args.mix}: no run length up to {max(RUNS)} d flags >= {FLAGGED_GOAL:.0%} of silent churners")
    else:
        print(
            f"{args.mix}: cheapest at >= {FLAGGED_GOAL:.0%} of silent churners flagged: quiet for "
            f"{cheapest[1]} d, {cheapest[0]:.0%} of vacation accounts alerted"
        )
    if best is None:
        print(f"{args.mix}: no run length up to {max(RUNS)} d keeps vacations alerted <= {VACATION_GOAL:.0%}")
    else:
        print(
            f"{args.mix}: best at <= {VACATION_GOAL:.0%} of vacations alerted: quiet for {best[1]} d, "
            f"{best[0]:.0%} of silent churners flagged >= {AHEAD} d ahead"
        )


if __name__ == "__main__":
    main()
