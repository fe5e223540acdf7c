"""How many level-driven churners a 30-day risk could flag >= 7 days ahead, even knowing each account's shape.

Issue 14 asks for >= 90 % of churners flagged at least 7 days before they leave. A level-driven churner of
:mod:`streams.dev.shapes` (``Shape.LOW_LEVEL``) looks the same every day until it cancels: nothing in its
usage says *when*. This script asks what an oracle could do with that: it knows which accounts are
level-driven churners and the mix's distribution of their churn days (pooled over the seeds given), scores
each of them every day with the exact probability of cancelling within the risk's 30-day horizon given that
it is still there, ``P(C <= t + 30 | C > t)``, and opens one alert the first day that reaches the threshold
(and the account is past its warm-up); threshold 0 is an oracle that alerts every level-driven churner when
its warm-up ends, knowing only that it will leave some day. As in the backtest
(:mod:`streams.offline.backtest_alerts`), a churner counts as flagged ahead when an opening falls within 60
days before its churn and at least 7 days before it. Run on the generator's ground truth only (no replay); a
few seconds per mix::

    .venv/bin/python benchmarks/level_churn_ceiling.py --mix tuning --seeds 100-109

The figures are in ``docs/detection.md`` (twenty-second pass).
"""

from __future__ import annotations

import argparse

import numpy as np

from streams.dev.shape_mixes import MIXES, Shape
from streams.dev.shapes import ShapedBase, ShapesConfig

HORIZON, LOOKBACK, AHEAD, WARMUP = 30, 60, 7, 21


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def level_churners(mix: str, seeds: list[int], accounts: int, days: int) -> list[tuple[int, int]]:
    """(join day, churn day) of every level-driven churner; the churn day may fall after the file."""
    out = []
    for seed in seeds:
        base = ShapedBase(ShapesConfig(mix=mix, seed=seed, accounts=accounts, days=days))
        out += [(a.join, a.churn) for a in base.accounts if a.shape is Shape.LOW_LEVEL and a.churn]
    return out


def flagged_ahead(rows: list[tuple[int, int]], days: int, threshold: float) -> tuple[int, int, int | None]:
    """(flagged ahead, churners counted, the first day the oracle's risk reaches ``threshold``)."""
    churn = np.array([c for _, c in rows], dtype=float)

    def risk(t: int) -> float:
        alive = churn[churn > t]
        return float(np.mean(alive <= t + HORIZON)) if len(alive) else 1.0

    first = next((t for t in range(days) if risk(t) >= threshold), None)
    counted = [(j, c) for j, c in rows if WARMUP <= c < days]
    hits = 0
    if first is not None:
        hits = sum(c - LOOKBACK <= max(first, j + WARMUP) <= c - AHEAD for j, c in counted)
    return hits, len(counted), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", required=True, choices=sorted(MIXES))
    parser.add_argument("--seeds", type=seed_range, required=True, help="e.g. 100-109")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    args = parser.parse_args()
    rows = level_churners(args.mix, args.seeds, args.accounts, args.days)
    for threshold in (0.5, 0.3, 0.2, 0.0):
        hits, counted, first = flagged_ahead(rows, args.days, threshold)
        print(
            f"{args.mix}: 30-day risk >= {threshold} from day {first}: level-driven churners flagged >= "
            f"{AHEAD} d ahead {hits}/{counted} = {hits / max(counted, 1):.0%}"
        )


if __name__ == "__main__":
    main()
