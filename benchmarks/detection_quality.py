"""Detection quality on simulator seeds the detectors were not tuned on, against two naive baselines.

Usage::

    .venv/bin/python benchmarks/detection_quality.py --seeds 11 12 13 --accounts 1000 --days 150

For each seed it simulates a customer base (``streams.dev.simulator``), replays it through churnwatch
(``streams.offline.replay.run_replay`` with the default :class:`~detectors.monitor.DetectorConfig`) and scores
the alerts against the simulator's ground truth. The same truth scores two naive rules evaluated at every
midnight:

* ``weekly<50%``: usage in the last 7 days below half the account's average week over the 4 weeks before;
* ``silent>=7d``: no usage event for 7 days.

All three use the same episode rule for counting (an alert opens when the condition starts; churnwatch's own
policy decides when its episodes end; the naive rules close when the condition clears and then wait 14 days).
Metrics: share of churners alerted within 60 days before cancelling, lead time (median, p25), alerts on
healthy accounts per account per 30 days, share of vacation-dip / sparse / healthy accounts ever alerted.
The first ``--warmup-days`` (default 21) are warm-up: alerts then are not counted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detectors.alerts import AlertKind, Transition
from detectors.monitor import DetectorConfig
from detectors.windows import DAY_MS
from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl
from streams.offline.replay import replay_file
from streams.offline.replay_outputs import state_sizes

START = datetime(2026, 6, 1, tzinfo=UTC)
LOOKBACK_DAYS = 60
NAIVE_COOLDOWN_DAYS = 14


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def daily_usage(events: Path, accounts: list[str], days: int) -> np.ndarray:
    """Usage events per account and simulated day (the naive baselines' only input)."""
    index = {a: i for i, a in enumerate(accounts)}
    day0 = int(START.timestamp() * 1000) // DAY_MS
    usage = np.zeros((len(accounts), days), dtype=np.int64)
    with events.open("rb") as handle:
        for line in handle:
            if not line.startswith(b'{"type":"usage"'):
                continue
            body = orjson.loads(line)
            day = _ms(body["ts"]) // DAY_MS - day0
            if 0 <= day < days:
                usage[index[body["account_id"]], day] += body.get("count", 1)
    return usage


def naive_alerts(condition: np.ndarray, warmup_days: int, cancel_day: np.ndarray) -> dict[int, list[int]]:
    """Episode openings (day indices) of a per-account, per-day boolean condition."""
    opened: dict[int, list[int]] = defaultdict(list)
    n_accounts, n_days = condition.shape
    for a in range(n_accounts):
        in_episode = False
        cooldown_until = -1
        for d in range(warmup_days, min(n_days, int(cancel_day[a]))):
            if condition[a, d]:
                if not in_episode and d >= cooldown_until:
                    opened[a].append(d)
                    in_episode = True
            elif in_episode:
                in_episode = False
                cooldown_until = d + NAIVE_COOLDOWN_DAYS
    return opened


def score(
    opened_days: dict[int, list[float]], truth: list[dict[str, Any]], days: int, warmup_days: int
) -> dict[str, Any]:
    """Quality metrics of alert openings (fractional days since START) against the simulator's truth."""
    leads: list[float] = []
    churners = 0
    alerted: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    healthy_alerts = 0
    survivors_alerts = 0
    survivor_days = 0.0
    for i, row in enumerate(truth):
        archetype = row["archetype"]
        times = [t for t in opened_days.get(i, []) if t >= warmup_days]
        if row["churned"]:
            cancel = (_ms(row["churn_ts"]) - int(START.timestamp() * 1000)) / DAY_MS
            if cancel < warmup_days:
                continue
            churners += 1
            before = [t for t in times if cancel - LOOKBACK_DAYS <= t < cancel]
            if before:
                leads.append(cancel - min(before))
            archetype += "+churn"
        else:
            survivors_alerts += len(times)
            survivor_days += days - warmup_days
            if archetype == "healthy":
                healthy_alerts += len(times)
        counts[archetype] += 1
        alerted[archetype] += bool(times)
    healthy_months = counts["healthy"] * (days - warmup_days) / 30.0
    return {
        "churners": churners,
        "flagged_share": round(len(leads) / churners, 3) if churners else None,
        "lead_median": round(statistics.median(leads), 1) if leads else None,
        "lead_p25": round(float(np.percentile(leads, 25)), 1) if leads else None,
        "healthy_alerts_per_30d": round(healthy_alerts / healthy_months, 4) if healthy_months else None,
        "survivor_alerts_per_30d": round(survivors_alerts / (survivor_days / 30.0), 4)
        if survivor_days
        else None,
        "alerted_share": {k: round(alerted[k] / counts[k], 3) for k in sorted(counts)},
    }


def run_seed(seed: int, accounts: int, days: int, warmup_days: int, workdir: Path) -> dict[str, Any]:
    events, truth_path = workdir / f"seed{seed}.jsonl", workdir / f"seed{seed}.truth.jsonl"
    simulation = Simulation(SimulationConfig(seed=seed, accounts=accounts, days=days, start=START))
    if not events.exists():
        write_jsonl(simulation, events, truth_path)
    truth = [orjson.loads(line) for line in truth_path.read_bytes().splitlines()]
    ids = [row["account_id"] for row in truth]
    index = {a: i for i, a in enumerate(ids)}
    result = replay_file(events, config=DetectorConfig())
    start_ms = int(START.timestamp() * 1000)
    ours: dict[int, list[float]] = defaultdict(list)
    for alert in result.alerts:
        if alert.kind is AlertKind.ACCOUNT_RISK and alert.transition is Transition.OPENED:
            ours[index[alert.account_id]].append((alert.event_ts_ms - start_ms) / DAY_MS)
    usage = daily_usage(events, ids, days)
    cancel_day = np.array(
        [(_ms(r["churn_ts"]) - start_ms) / DAY_MS if r["churned"] else days + 1 for r in truth], dtype=float
    )
    # Condition on day d uses days < d (evaluated at the midnight that starts day d).
    cumulative = np.concatenate([np.zeros((len(ids), 1), dtype=np.int64), np.cumsum(usage, axis=1)], axis=1)
    last7 = np.zeros_like(usage)
    prior4w = np.zeros(usage.shape, dtype=float)
    for d in range(days):
        last7[:, d] = cumulative[:, d] - cumulative[:, max(0, d - 7)]
        prior4w[:, d] = (cumulative[:, max(0, d - 7)] - cumulative[:, max(0, d - 35)]) / 4.0
    weekly = (prior4w >= 1.0) & (last7 < 0.5 * prior4w)
    silent = (last7 == 0) & (cumulative[:, :days] > 0)
    baselines = {
        "weekly<50%": naive_alerts(weekly, warmup_days, cancel_day),
        "silent>=7d": naive_alerts(silent, warmup_days, cancel_day),
    }
    scores = {"churnwatch": score(ours, truth, days, warmup_days)}
    for name, opened in baselines.items():
        scores[name] = score(
            {a: [float(d) for d in ds] for a, ds in opened.items()}, truth, days, warmup_days
        )
    model = result.monitor.risk_model if result.monitor else None
    calibration_pairs = [(o.risk, o.label) for o in result.outcomes]
    return {
        "seed": seed,
        "events": result.events,
        "replay_s": round(result.elapsed_s, 1),
        "pipeline_incidents": sum(1 for a in result.alerts if a.kind is AlertKind.PIPELINE_INCIDENT),
        "state_bytes": state_sizes(result),
        "risk_model_positives": model.n_positives if model else 0,
        "brier": round(sum((p - y) ** 2 for p, y in calibration_pairs) / len(calibration_pairs), 4)
        if calibration_pairs
        else None,
        "scores": scores,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        "| seed | detector | churners flagged | lead median (d) | lead p25 (d) | healthy alerts / 30 d | "
        "vacation alerted | sparse alerted | healthy alerted |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in results:
        for name, s in r["scores"].items():
            share = s["alerted_share"]
            print(
                f"| {r['seed']} | {name} | {s['flagged_share']:.0%} of {s['churners']} | "
                f"{s['lead_median']} | {s['lead_p25']} | {s['healthy_alerts_per_30d']:.2%} | "
                f"{share.get('vacation_dip', 0):.0%} | {share.get('sparse', 0):.0%} | "
                f"{share.get('healthy', 0):.0%} |"
            )
    print()
    for r in results:
        ours = r["scores"]["churnwatch"]["alerted_share"]
        print(f"seed {r['seed']}: churnwatch alerted share per archetype: {ours}")
        print(
            f"  events {r['events']:,}, replay {r['replay_s']} s, "
            f"pipeline incidents {r['pipeline_incidents']}, Brier {r['brier']}, "
            f"state bytes {r['state_bytes']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--warmup-days", type=int, default=21)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Keep simulated files here (default: temp)."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the results as JSON here.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for seed in args.seeds:
            results.append(run_seed(seed, args.accounts, args.days, args.warmup_days, workdir))
            print(f"seed {seed} done", file=sys.stderr)
    print_table(results)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
