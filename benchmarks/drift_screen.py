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

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from detectors.monitor import DetectorConfig, Outcome
from detectors.risk import FEATURES, RiskModel
from streams.offline.baselines import auc

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import SourceFile  # benchmarks/generalization_sources.py
from mixture_rerun import recorded, screen  # benchmarks/mixture_rerun.py
from outcome_timing import Learned  # benchmarks/outcome_timing.py

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
    absolute = DetectorConfig(
        horizon_days=source_file.horizon_days, relative_tenure=False, relative_trends=False
    )
    stream = recorded(source_file, ".absolute.outcomes.pickle", absolute)
    return {variant: rerun(stream, source_file.as_of_days, variant) for variant in VARIANTS}


def main(argv: list[str] | None = None) -> int:
    return screen(argv, run_file, VARIANTS, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
