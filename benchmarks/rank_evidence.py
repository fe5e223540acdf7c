"""What the risk mixture's rank evidence says about each expert at given dates, against how each then ranks.

Usage::

    .venv/bin/python benchmarks/rank_evidence.py FILE.jsonl --as-of 2020-03-01 2020-04-01 2020-05-01

Replays ``FILE`` once with ``DetectorConfig()`` (``--horizon-days`` otherwise), recording the outcomes the
engine learns (``benchmarks/outcome_timing.py``), then re-runs a fresh default
:class:`~detectors.risk.RiskModel` over them, each outcome with its snapshot day. At each as-of point it
prints, per expert: its AUC on the matched rank evidence (positives against negatives of the same snapshot
week, :class:`~detectors.ranking.RankWeights`), its AUC on the snapshots taken in the week before the point
(what the mixture is about to be judged on), its decayed log-loss behind the best, and its weight. The
sixth pass of ``docs/detection.md`` has the figures for ChurnSim (an analysis after the held-out run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detectors.monitor import DetectorConfig
from detectors.risk import RiskModel
from streams.offline.baselines import auc
from streams.offline.replay import replay_file

sys.path.insert(0, str(Path(__file__).parent))
from outcome_timing import Learned, RecordingMonitor, _epoch_day  # benchmarks/outcome_timing.py


def report(model: RiskModel, stream: list[Learned], day: int) -> None:
    snapshots = [o for batch in stream for o in batch.outcomes if day - 7 <= o.day < day]
    labels = [o.label for o in snapshots]
    lifts = [model._lifts(model._inputs(o.features)) for o in snapshots]
    matched, se = model.ranking.ranked(model._lifts)
    mixture = auc([model.predict_proba_one(o.features) for o in snapshots], labels)
    positives = len(model.ranking._matched())
    print(
        f"day {day}: {len(snapshots)} snapshots in the week before, {sum(labels)} churned; "
        f"{positives} matched positives, SE {se:.3f}; mixture AUC {mixture.auc if mixture else None}"
    )
    best = min(model.mixture.losses)
    weights = model.expert_weights()
    for k, name in enumerate(model.mixture.names):
        week = auc([lift[k] for lift in lifts], labels)
        ranked = week.auc if week else float("nan")
        print(
            f"  {name:10s} matched AUC {matched[k]:.3f}  week-before AUC {ranked:.3f}"
            f"  log-loss behind {model.mixture.losses[k] - best:7.2f}  weight {weights[name]:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("events", type=Path)
    parser.add_argument("--as-of", nargs="+", required=True, help="UTC dates (YYYY-MM-DD).")
    parser.add_argument("--horizon-days", type=int, default=DetectorConfig().horizon_days)
    args = parser.parse_args(argv)
    config = DetectorConfig(horizon_days=args.horizon_days)
    monitor = RecordingMonitor(config)
    replay_file(args.events, config=config, monitor=monitor)
    pending = sorted(_epoch_day(t) for t in args.as_of)
    model = RiskModel()
    for batch in monitor.stream:
        if batch.day is None:
            continue
        while pending and batch.day >= pending[0]:
            report(model, monitor.stream, pending.pop(0))
        for outcome in batch.outcomes:
            model.learn_one(outcome.features, outcome.label, day=outcome.day)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
