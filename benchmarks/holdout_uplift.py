"""Does the holdout recover what delivered alerts are worth? Simulated base, real detection, known saves.

Usage::

    .venv/bin/python benchmarks/holdout_uplift.py --accounts 1500 --days 150 --event-scale 0.03 \
        --replicates 200

The simulator (``streams/dev/simulator/``) writes a customer base; ``churnwatch replay`` detection
(``streams.offline.replay.run_replay``) raises the alerts. Then, for each replicate, a 50 % holdout is drawn
by the real hash (``streams.live.holdout.Holdout``, experiment ``replicate-<i>``) and every delivered alerted
account that cancels within the horizon after its first alert is saved (its cancellation removed) with
probability ``--saved`` (the known share). :mod:`streams.offline.uplift` then estimates, from the alerts and
cancellations alone, the share of churners saved and the uplift in points, with their 95 % intervals.

Replicates share one base and one replay (replaying is the slow part): they vary the holdout draw and the
saves, which is the randomness the intervals are about, so coverage over replicates is coverage given this
cohort.
Prints one JSON object. The seeds are fixed: the same arguments print the same numbers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.alerts import Transition  # noqa: E402
from streams.dev.simulator import Simulation, SimulationConfig  # noqa: E402
from streams.live.holdout import Holdout  # noqa: E402
from streams.offline.replay import run_replay  # noqa: E402
from streams.offline.uplift import DAY_MS, Uplift, alerted_outcomes  # noqa: E402


def saves(result: Any, holdout: Holdout, saved: float, horizon_ms: int, rng: random.Random) -> dict[str, int]:
    """The cancellations left once delivered alerts saved each churner within the horizon with ``saved``."""
    first: dict[str, int] = {}
    for alert in result.alerts:
        if alert.transition is Transition.OPENED:
            first[alert.account_id] = min(first.get(alert.account_id, alert.event_ts_ms), alert.event_ts_ms)
    left = dict(result.cancellations)
    for account, alerted in sorted(first.items()):
        canceled = left.get(account)
        within = canceled is not None and alerted <= canceled <= alerted + horizon_ms
        if within and not holdout.member(account) and rng.random() < saved:
            del left[account]
    return left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--event-scale", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--saved", type=float, default=0.4)
    parser.add_argument("--replicates", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    config = SimulationConfig(
        seed=args.seed, accounts=args.accounts, days=args.days, event_scale=args.event_scale
    )
    simulation = Simulation(config)
    result = run_replay(orjson.dumps(event) for event in simulation.events())
    truth = {row["account_id"]: row for row in simulation.truth()}
    replayed_s = time.perf_counter() - started
    horizon_days = result.config.horizon_days
    assert result.clock_ms is not None
    covered_share = 0
    shares: list[float] = []
    uplifts: list[float] = []
    example = ""
    for i in range(args.replicates):
        holdout = Holdout(0.5, f"replicate-{i}")
        rng = random.Random(i)
        cancellations = saves(result, holdout, args.saved, horizon_days * DAY_MS, rng)
        cohort = alerted_outcomes(
            result.alerts, cancellations, horizon_days=horizon_days, as_of_ms=result.clock_ms, holdout=holdout
        )
        uplift = Uplift.estimate(cohort)
        assert uplift is not None and uplift.saved_share is not None and uplift.saved_share_ci is not None
        covered_share += uplift.saved_share_ci[0] <= args.saved <= uplift.saved_share_ci[1]
        shares.append(uplift.saved_share)
        uplifts.append(uplift.uplift)
        example = example or uplift.render()
    settled = alerted_outcomes(
        result.alerts,
        result.cancellations,
        horizon_days=horizon_days,
        as_of_ms=result.clock_ms,
        holdout=Holdout(0.5, "replicate-0"),
    )
    churners = [o for o in settled.outcomes if o.churned]
    print(
        orjson.dumps(
            {
                "accounts": args.accounts,
                "days": args.days,
                "events": result.lines,
                "horizon_days": horizon_days,
                "alerted_settled": len(settled.outcomes),
                "alerted_pending": settled.pending,
                "alerted_churners_before_saves": len(churners),
                "alerted_churners_true_in_simulator": sum(truth[o.account_id]["churned"] for o in churners),
                "saved_share_true": args.saved,
                "replicates": args.replicates,
                "saved_share_mean": statistics.mean(shares),
                "saved_share_sd": statistics.stdev(shares),
                "saved_share_ci95_coverage": covered_share / args.replicates,
                "uplift_points_mean": 100 * statistics.mean(uplifts),
                "example": example,
                "replay_seconds": round(replayed_s, 1),
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
