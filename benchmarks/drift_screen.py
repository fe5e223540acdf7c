"""Offline screen of features read against the base (seventh pass): would they cost the tuning data?

Usage::

    .venv/bin/python benchmarks/drift_screen.py --workdir DIR --jobs 2

Each tuning file of ``benchmarks/generalization_sources.py`` (generated into ``--workdir`` when missing) is
replayed once with the features read *alone*, as before the seventh pass (``relative_tenure`` and
``relative_trends`` off), recording every batch of outcomes the engine learns (cached as
``*.absolute.outcomes.pickle``; the sixth pass's ``*.outcomes.pickle`` of ``benchmarks/mixture_rerun.py``
were recorded the same way). A fresh default :class:`~detectors.risk.RiskModel` re-learns each stream with
the features transformed, and at the as-of points (days 56, 84, 112) ranks the snapshots of the week before
each, as ``mixture_rerun.py`` does. The transforms stand in for the online features: a feature "against the
base" is its value less its mean over *all snapshots of the same day* (clipped at 0), a mean the online
feature takes over the live accounts instead (and one that looks ahead: it includes snapshots labelled
later); "centred" subtracts that mean from the learners' inputs without clipping. Only for tuning sources.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from detectors.monitor import DetectorConfig, Outcome
from detectors.risk import FEATURES, RiskModel
from streams.offline.baselines import auc
from streams.offline.replay import replay_file

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import SOURCES, SourceFile  # benchmarks/generalization_sources.py
from outcome_timing import Learned, RecordingMonitor  # benchmarks/outcome_timing.py

Means = Mapping[int, Mapping[str, float]]
TRENDS = ("trend_4w", "trend_8w")
DRIFTING = ("new_account", *TRENDS, "lapsed", "inactive_ahead")
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {  # name -> (features transformed, centred)
    "as recorded (features alone)": ((), False),
    "new_account against the base": (("new_account",), False),
    "trends against the base": (TRENDS, False),
    "both against the base": (("new_account", *TRENDS), False),
    "learners' inputs centred, all": (FEATURES, True),
    "learners' inputs centred, drifting": (DRIFTING, True),
}


class Centred(RiskModel):
    """A risk model whose learners see ``keys`` less the snapshot day's mean (``means``, set per call)."""

    __slots__ = ("keys", "means")
    keys: tuple[str, ...]
    means: Mapping[str, float]

    def _inputs(self, x: Mapping[str, float]) -> dict[str, float]:
        inputs = super()._inputs(x)
        for key in self.keys:
            inputs[key] = inputs.get(key, 0.0) - self.means.get(key, 0.0)
        return inputs


def recorded(source_file: SourceFile) -> list[Learned]:
    cache = source_file.events.with_suffix(".absolute.outcomes.pickle")
    if cache.exists():
        stream: list[Learned] = pickle.loads(cache.read_bytes())
        return stream
    config = DetectorConfig(
        horizon_days=source_file.horizon_days, relative_tenure=False, relative_trends=False
    )
    monitor = RecordingMonitor(config)
    replay_file(source_file.events, config=config, monitor=monitor)
    cache.write_bytes(pickle.dumps(monitor.stream))
    return monitor.stream


def day_means(outcomes: Iterable[Outcome]) -> dict[int, dict[str, float]]:
    """Mean of every feature over the snapshots of each day (an absent feature counts as 0)."""
    sums: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[int, int] = defaultdict(int)
    for outcome in outcomes:
        counts[outcome.day] += 1
        for key, value in outcome.features.items():
            sums[outcome.day][key] += value
    return {day: {k: v / counts[day] for k, v in row.items()} for day, row in sums.items()}


def against_base(outcome: Outcome, means: Means, keys: tuple[str, ...]) -> Outcome:
    features = dict(outcome.features)
    for key in keys:
        value = round(max(0.0, features.pop(key, 0.0) - means[outcome.day].get(key, 0.0)), 4)
        if value > 0:
            features[key] = value
    return Outcome(outcome.account_id, outcome.day, outcome.risk, features, outcome.label)


def rerun(stream: list[Learned], as_of: tuple[int, ...], variant: str) -> list[float]:
    keys, centred = VARIANTS[variant]
    everything = [o for batch in stream for o in batch.outcomes]
    means = day_means(everything)
    model: RiskModel = RiskModel()
    shift: Callable[[Outcome], Outcome] = lambda o: o  # noqa: E731
    if centred:
        model = Centred()
        model.keys = keys
    elif keys:
        shift = lambda o: against_base(o, means, keys)  # noqa: E731

    def look(outcome: Outcome) -> Mapping[str, float]:
        if isinstance(model, Centred):
            model.means = means[outcome.day]
            model._shares = None
        return shift(outcome).features

    aucs: list[float] = []
    pending = list(as_of)
    week_before = {t: [o for o in everything if t - 7 <= o.day < t] for t in as_of}
    for batch in stream:
        if batch.day is None:
            continue
        while pending and batch.day >= pending[0]:
            snapshots = week_before[pending.pop(0)]
            result = auc([model.predict_proba_one(look(o)) for o in snapshots], [o.label for o in snapshots])
            if result is not None:
                aucs.append(result.auc)
        for outcome in batch.outcomes:
            model.learn_one(look(outcome), outcome.label, day=outcome.day)
    return aucs


def run_file(source_file: SourceFile) -> dict[str, list[float]]:
    stream = recorded(source_file)
    return {variant: rerun(stream, source_file.as_of_days, variant) for variant in VARIANTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--sources", nargs="+", default=["simulator", "shapes-tuning"])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--sim-seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        if source.name not in args.sources or source.split != "tuning":
            continue
        files = list(source.files(args.workdir, args))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results: list[dict[str, Any]] = list(pool.map(run_file, files))
        print(f"\n{source.name} ({len(files)} files): mean AUC at the as-of points")
        for variant in VARIANTS:
            per_file = [statistics.fmean(r[variant]) for r in results if r[variant]]
            shown = " ".join(f"{a:.3f}" for a in per_file)
            print(f"  {variant:36s} {statistics.fmean(per_file):.4f}   ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
