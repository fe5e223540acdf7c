"""When the risk model learns its outcomes, and what that does to the `learned` regression's ranking.

Usage::

    .venv/bin/python benchmarks/outcome_timing.py FILE.jsonl --as-of 2020-03-01 2020-04-01 2020-05-01

Replays ``FILE`` once with the default ``DetectorConfig()`` (``--horizon-days`` otherwise), recording every
outcome handed to ``AccountMonitor.learn`` and the sweep it was learned at; then re-runs a fresh
:class:`~detectors.risk.RiskModel` over that stream twice: as recorded (each outcome learned as soon as it
is labelled, the default) and with every outcome held until its snapshot's horizon has closed (what
``DetectorConfig.learn_at_horizon`` does). At each as-of point it ranks the snapshots taken in the week
before it (each account's features and whether it then churned) by every expert and the mixture, and
prints the regression's largest weights (weight times the feature's spread on those snapshots) with the
feature's own AUC there. ``docs/detection.md`` (fifth pass) has the figures for ChurnSim and three tuning
files.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from detectors.monitor import AccountMonitor, DetectorConfig, Outcome
from detectors.risk import FEATURES, RiskModel
from detectors.windows import DAY_MS, WindowConfig
from streams.offline.baselines import auc as auc_result
from streams.offline.replay import replay_file


@dataclass(slots=True)
class Learned:
    day: int | None  # the sweep's census day when it was learned
    outcomes: list[Outcome]


class RecordingMonitor(AccountMonitor):
    """An :class:`AccountMonitor` that also keeps every batch of outcomes it learns."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config, WindowConfig())
        self.stream: list[Learned] = []

    def learn(self, outcomes: Iterable[Outcome]) -> int:
        batch = list(outcomes)
        self.stream.append(Learned(self.population.census_day, batch))
        return super().learn(batch)


def auc(scores: list[float], labels: list[bool]) -> float | None:
    result = auc_result(scores, labels)
    return round(result.auc, 3) if result is not None else None


def report(model: RiskModel, snapshots: list[Outcome], label: str) -> None:
    labels = [o.label for o in snapshots]
    inputs = [model._inputs(o.features) for o in snapshots]
    lifts = [model._lifts(i) for i in inputs]
    experts = {name: auc([lift[k] for lift in lifts], labels) for k, name in enumerate(model.mixture.names)}
    mixture = auc([model.predict_proba_one(o.features) for o in snapshots], labels)
    weights = model._lr._weights
    spread = {
        k: weights.get(k, 0.0) * statistics.pstdev([i.get(k, 0.0) for i in inputs])
        for k in ("prior", *FEATURES)
    }
    top = sorted(spread.items(), key=lambda kv: -abs(kv[1]))[:5]
    counts = f"{model.n_positives} positives / {model.n_negatives} negatives"
    print(f"  [{label}] learned {counts}; mixture AUC {mixture}")
    print("    expert AUC:", {k: round(v, 3) for k, v in experts.items() if v is not None})
    print("    weights:", {k: round(v, 3) for k, v in model.expert_weights().items() if v > 0.01})
    for k, v in top:
        own = auc([i.get(k, 0.0) for i in inputs], labels)
        print(f"    {k}: weight {weights.get(k, 0.0):+.3f}, x spread {v:+.3f}, feature alone AUC {own}")


def rerun(stream: list[Learned], as_of: list[int], horizon: int, *, wait: bool, label: str) -> None:
    everything = [o for batch in stream for o in batch.outcomes]
    week_before: Mapping[int, list[Outcome]] = {
        t: [o for o in everything if t - 7 <= o.day < t] for t in as_of
    }
    model = RiskModel()
    held: list[Outcome] = []
    reported: set[int] = set()
    for batch in stream:
        today = batch.day
        if today is None:
            continue
        if wait:
            ready = [o for o in held if today - o.day >= horizon]
            held = [o for o in held if today - o.day < horizon]
            for outcome in ready:
                model.learn_one(outcome.features, outcome.label)
        for t in as_of:
            if t not in reported and today >= t:
                reported.add(t)
                churned = sum(o.label for o in week_before[t])
                print(f"as of day {t} ({len(week_before[t])} snapshots, {churned} churned):")
                report(model, week_before[t], label)
        for outcome in batch.outcomes:
            if wait and outcome.label and today - outcome.day < horizon:
                held.append(outcome)
            else:
                model.learn_one(outcome.features, outcome.label)


def _epoch_day(text: str) -> int:
    d = date.fromisoformat(text)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) // 86_400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("events", type=Path)
    parser.add_argument("--as-of", nargs="+", required=True, help="UTC dates (YYYY-MM-DD).")
    parser.add_argument("--horizon-days", type=int, default=DetectorConfig().horizon_days)
    args = parser.parse_args(argv)
    as_of = [_epoch_day(t) for t in args.as_of]
    config = DetectorConfig(horizon_days=args.horizon_days)
    monitor = RecordingMonitor(config)
    replay_file(args.events, config=config, monitor=monitor, snapshot_ms=[d * DAY_MS for d in as_of])
    print(f"final expert weights: {monitor.risk_model.expert_weights()}\n")
    rerun(monitor.stream, as_of, args.horizon_days, wait=False, label="as labelled")
    rerun(monitor.stream, as_of, args.horizon_days, wait=True, label="at the horizon")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
