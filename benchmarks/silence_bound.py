"""How far apart are vacations and silent churn in the generated bases? A bound for alerts on silence.

Issue 14 asks, on SaaS-shaped data, for >= 90 % of churners flagged at least 7 days ahead *and* <= 10 % of
vacation accounts alerted. A vacation and a silent churner both stop using the product; only the end tells
them apart. This script measures, on the ground truth of ``streams.dev.shapes`` bases (no detector runs),
what the simplest rule that sees nothing but silence can reach: "alert when an account has had no usage
event for k days". For each k it prints

* the share of silent churners (cancelled after their usage stopped) whose k-th silent day falls 7-60 days
  before the cancellation (flagged >= 7 d ahead),
* the share of vacation accounts that did not churn whose longest run of days without usage overlapping
  the vacation reaches k (alerted),
* the ceiling on all churners flagged >= 7 d ahead if every other churner were flagged: what the silent
  churners cost at that k.

Usage::

    .venv/bin/python benchmarks/silence_bound.py                       # the tuning and held-out mixes
    .venv/bin/python benchmarks/silence_bound.py --mixes tuning --seeds 3

The figures are in ``docs/detection.md`` (Known gaps). Dependencies: numpy (core).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from streams.dev.shape_mixes import MIXES
from streams.dev.shapes import ShapedBase, ShapesConfig

START = datetime(2026, 6, 1, tzinfo=UTC)
KS = (3, 5, 7, 10, 14, 21)
LEAD_MIN, LOOKBACK = 7, 60


@dataclass(slots=True)
class Gaps:
    """Per base: silent churners' silence before cancelling, vacation accounts' longest silence in it."""

    churners: int = 0
    silent: list[int] = field(default_factory=list)
    vacation: list[int] = field(default_factory=list)


def usage_days(base: ShapedBase) -> dict[str, set[int]]:
    used: dict[str, set[int]] = defaultdict(set)
    for event in base.events():
        if event["type"] == "usage":
            used[event["account_id"]].add((datetime.fromisoformat(event["ts"]) - START).days)
    return used


def longest_gap_over(days: list[int], first: int, end: int, horizon: int) -> int:
    """The longest run of days without usage that overlaps ``[first, end)`` (the base's end closes a run)."""
    best, previous = 0, None
    for day in [*days, horizon]:
        if previous is not None and day > first and previous < end:
            best = max(best, day - previous - 1)
        previous = day
    return best


def collect(mix: str, seeds: range, accounts: int, days: int, gaps: Gaps) -> None:
    for seed in seeds:
        base = ShapedBase(ShapesConfig(mix=mix, seed=seed, accounts=accounts, days=days, start=START))
        used = usage_days(base)
        for account_id, plan, truth in zip(base.ids, base.accounts, base.truth(), strict=True):
            churn_day = truth["churn_day"]
            if churn_day is not None:
                gaps.churners += 1
                last = max((d for d in used[account_id] if d < churn_day), default=None)
                if truth["shape"] == "silent" and last is not None:
                    gaps.silent.append(churn_day - last)
            elif plan.vacation is not None:
                gaps.vacation.append(longest_gap_over(sorted(used[account_id]), *plan.vacation, days))


def report(mix: str, gaps: Gaps) -> None:
    silent, vacation = np.array(gaps.silent), np.array(gaps.vacation)
    share = len(silent) / gaps.churners if gaps.churners else 0.0
    print(f"\n{mix}: {gaps.churners} churners, {len(silent)} silent ({share:.0%}), {len(vacation)} vacations")
    print("| k silent days | silent churners flagged >= 7 d | vacations alerted | ceiling, all churners |")
    print("|---|---|---|---|")
    for k in KS:
        lead = silent - k
        flagged = float(np.mean((lead >= LEAD_MIN) & (lead <= LOOKBACK))) if len(silent) else 0.0
        alerted = float(np.mean(vacation >= k)) if len(vacation) else 0.0
        ceiling = 1.0 - share * (1.0 - flagged)
        print(f"| {k} | {flagged:.0%} | {alerted:.0%} | {ceiling:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mixes = [m for m in MIXES if m != "rhythm"]  # rhythm is the tuning mix with monthly accounts
    parser.add_argument("--mixes", nargs="+", default=mixes, choices=list(MIXES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of each mix")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    for mix in args.mixes:
        gaps = Gaps()
        collect(mix, range(args.seeds), args.accounts, args.days, gaps)
        report(mix, gaps)


if __name__ == "__main__":
    main()
