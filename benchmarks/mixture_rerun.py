"""Offline re-runs of the risk mixture over recorded outcome streams: how each weighting ranks tuning data.

Usage::

    .venv/bin/python benchmarks/mixture_rerun.py --workdir DIR --sources simulator shapes-tuning --files 10

Each tuning file of ``benchmarks/generalization_sources.py`` (generated into ``--workdir``, as the
generalisation benchmark does) is replayed once with ``DetectorConfig(horizon_days=30)``, recording every
batch of outcomes the engine learns and the sweep day it learns them (cached in ``--workdir`` as
``*.outcomes.pickle``). Then a fresh :class:`~detectors.risk.RiskModel` per variant re-learns that stream
in the same order and, at each as-of point of the file (the benchmark's: days 56, 84 and 112), ranks the
snapshots taken in the week before it (every warm account's features and whether it then churned) by its
risk. Printed: the mean AUC per variant and source, over the files' as-of points. Only for tuning sources;
the variants are the sixth pass's (``docs/detection.md``).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from detectors.monitor import DetectorConfig, Outcome
from detectors.risk import RiskModel
from streams.offline.baselines import auc
from streams.offline.replay import replay_file

sys.path.insert(0, str(Path(__file__).parent))
from generalization_sources import SOURCES, SourceFile  # benchmarks/generalization_sources.py
from outcome_timing import Learned, RecordingMonitor  # benchmarks/outcome_timing.py


@dataclass(frozen=True, slots=True)
class Variant:
    make: Callable[[], RiskModel]  # a fresh model
    dated: bool = True  # outcomes learned with their snapshot day: time-matched rank weights
    hold: int | None = None  # positives wait until their snapshot is this many days from its horizon


HORIZON = 30
VARIANTS: dict[str, Variant] = {
    "before (unmatched, uncapped)": Variant(lambda: RiskModel(loss_cap=None), dated=False),
    "matched, uncapped": Variant(lambda: RiskModel(loss_cap=None)),
    "matched, cap 3 (the default)": Variant(RiskModel),
    "matched, cap 3, hold 7": Variant(RiskModel, hold=7),
}


def recorded(
    source_file: SourceFile, suffix: str = ".outcomes.pickle", config: DetectorConfig | None = None
) -> list[Learned]:
    """The outcome stream of one replay of ``source_file`` (with ``config``, else the defaults and the file's
    horizon), cached in the workdir under ``suffix``."""
    cache = source_file.events.with_suffix(suffix)
    if cache.exists():
        stream: list[Learned] = pickle.loads(cache.read_bytes())
        return stream
    detector_config = config or DetectorConfig(horizon_days=source_file.horizon_days)
    monitor = RecordingMonitor(detector_config)
    replay_file(source_file.events, config=detector_config, monitor=monitor)
    cache.write_bytes(pickle.dumps(monitor.stream))
    return monitor.stream


def rerun(stream: list[Learned], as_of: tuple[int, ...], variant: str) -> list[float]:
    how = VARIANTS[variant]
    everything = [o for batch in stream for o in batch.outcomes]
    week_before: dict[int, list[Outcome]] = {t: [o for o in everything if t - 7 <= o.day < t] for t in as_of}
    model = how.make()
    aucs: list[float] = []
    pending = list(as_of)
    held: list[Outcome] = []
    for batch in stream:
        today = batch.day
        if today is None:
            continue
        while pending and today >= pending[0]:
            snapshots = week_before[pending.pop(0)]
            risks = [model.predict_proba_one(o.features) for o in snapshots]
            result = auc(risks, [o.label for o in snapshots])
            if result is not None:
                aucs.append(result.auc)
        learn = batch.outcomes
        if how.hold is not None:
            wait = HORIZON - how.hold
            everything_now = held + learn
            learn = [o for o in everything_now if not o.label or today - o.day >= wait]
            held = [o for o in everything_now if o.label and today - o.day < wait]
        for outcome in learn:
            model.learn_one(outcome.features, outcome.label, day=outcome.day if how.dated else None)
    return aucs


def run_file(source_file: SourceFile) -> dict[str, list[float]]:
    stream = recorded(source_file)
    return {variant: rerun(stream, source_file.as_of_days, variant) for variant in VARIANTS}


def screen(
    argv: list[str] | None,
    run_file: Callable[[SourceFile], dict[str, list[float]]],
    variants: Iterable[str],
    description: str | None,
) -> int:
    """Parse the screens' arguments, run ``run_file`` over the chosen tuning files and print each variant's
    mean AUC per source (shared with ``benchmarks/drift_screen.py``)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
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
    names = list(variants)
    width = max(len(name) for name in names) + 2
    for source in SOURCES:
        if source.name not in args.sources:
            continue
        if source.split != "tuning":
            print(f"{source.name} is held-out data: not re-run here", file=sys.stderr)
            continue
        files = list(source.files(args.workdir, args))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_file, files))
        print(f"\n{source.name} ({len(files)} files): mean AUC at the as-of points")
        for variant in names:
            per_file = [statistics.fmean(r[variant]) for r in results if r[variant]]
            shown = " ".join(f"{a:.3f}" for a in per_file)
            print(f"  {variant:{width}s} {statistics.fmean(per_file):.4f}   ({shown})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return screen(argv, run_file, VARIANTS, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
