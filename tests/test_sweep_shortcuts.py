"""The sweep's shortcuts (issue 15) give exactly what the plain computations they replace give.

Each shortcut of the per-account path is checked against the computation it stands for: the written-out
Page-Hinkley update against River's, the cached percentile sums against sums of the counts, the weekly
totals summed in :func:`~detectors.features.sums.window_sums`'s pass against
:func:`~detectors.engagement.weekly_totals`, and the risk model's weights and coefficients kept between two
``learn_one`` against fresh ones. Equality is exact (``==`` on floats): the replay's outputs must not move.
"""

from __future__ import annotations

import random

from river import drift

from detectors.config import DetectorConfig
from detectors.drop import DropDetector
from detectors.engagement import ALL_SEGMENTS, SegmentQuantiles, weekly_totals
from detectors.features.sums import Rhythm, window_sums
from detectors.monitor import AccountMonitor
from detectors.risk import FEATURES, RiskModel
from detectors.windows import DAY_MS, AccountWindow, WindowConfig

DAY0 = 20_601


def test_drop_detector_update_is_rivers_page_hinkley() -> None:
    rng = random.Random(5)
    ours = DropDetector()
    river = drift.PageHinkley(min_instances=7, delta=0.5, threshold=6.0, alpha=0.98, mode="down")
    detections = 0
    for step in range(3_000):
        z = rng.gauss(-1.2 if (step // 200) % 2 else 0.2, 1.5)
        river.update(z)
        # What DropDetector.update did through River before: update, then round to the state's grid.
        river._x_mean._mean = round(river._x_mean._mean, 4)
        river._sum_decrease = round(river._sum_decrease, 4)
        river._max_decrease = round(river._max_decrease, 4)
        assert ours.update(z) is river.drift_detected
        assert (ours.n_seen, ours.mean) == (river._x_mean.n, river._x_mean._mean)
        assert (ours.sum_decrease, ours.max_decrease) == (river._sum_decrease, river._max_decrease)
        assert ours.to_state() == DropDetector.from_state(ours.to_state()).to_state()
        detections += river.drift_detected
    assert detections > 5  # the series has drops, so both paths of the test were taken


def test_segment_percentiles_from_cached_sums_equal_sums_of_counts() -> None:
    rng = random.Random(3)
    sketch = SegmentQuantiles()

    def plain(segment: str | None, value: float) -> float | None:  # percentile() before the cache
        counts = sketch.segments.get(segment or "unknown")
        if counts is None or sum(counts) < sketch.min_weight:
            counts = sketch.segments.get(ALL_SEGMENTS)
        if counts is None or sum(counts) < sketch.min_weight:
            return None
        index, within = sketch._bin(value)
        return round((sum(counts[:index]) + within * counts[index]) / sum(counts), 4)

    for day in range(DAY0, DAY0 + 20):
        for _ in range(rng.randrange(5, 40)):
            sketch.learn_one(rng.choice(["pro", "starter", None]), rng.lognormvariate(2.0, 1.2), day)
        for _ in range(50):  # read between learning, as sweeps do (the cache must follow the counts)
            segment, value = rng.choice(["pro", "starter", "enterprise", None]), rng.lognormvariate(2.0, 1.5)
            assert sketch.percentile(segment, value) == plain(segment, value)
    assert sketch.percentile("pro", 5.0) is not None


def test_weekly_totals_of_the_window_pass_equal_weekly_totals() -> None:
    rng = random.Random(11)
    config = DetectorConfig()
    monitor = AccountMonitor(config, WindowConfig())
    window, state = AccountWindow(WindowConfig()), monitor.new_state()
    for day in range(DAY0, DAY0 + 70):
        for k in range(rng.randrange(0, 30)):
            window.add_usage(day * DAY_MS + 1_000 * k, "login", f"u{k % 3}", 1)
    monitor.observe("acme", window, state, (DAY0 + 70) * DAY_MS)
    quiet = {DAY0 + 60: 0.3, DAY0 + 61: 0.05, DAY0 + 40: 0.5}
    today = DAY0 + 70
    rhythm = Rhythm.of(state, today, config, 56)
    sums = window_sums(window, rhythm, quiet, weekly=True)
    assert sums.weekly == weekly_totals(window.days, today - 1, 8, quiet)
    assert sums.weekly is not None and sum(sums.weekly) > 0
    assert window_sums(window, rhythm, quiet).weekly is None


def test_risk_weights_kept_between_learning_equal_fresh_ones() -> None:
    rng = random.Random(2)
    model = RiskModel(min_positives=4)
    seen = set()
    for _ in range(200):
        x = {name: round(rng.random() * 2, 3) for name in FEATURES if rng.random() < 0.3}
        model.learn_one(x, rng.random() < 0.3)
        kept = model.expert_weights()
        assert list(kept.values()) == model._weights()
        assert model.predict_proba_one(x) == model.predict_proba_one(x)
        seen.add(tuple(kept.values()))
    assert len(seen) > 150  # the weights moved with (almost) every outcome learned


def test_risk_coefficients_kept_between_learning_equal_fresh_ones() -> None:
    rng = random.Random(4)
    model = RiskModel(min_positives=4)
    probes = [{name: round(rng.random() * 2, 3) for name in FEATURES if rng.random() < 0.3} for _ in range(5)]
    scores = set()
    for _ in range(150):
        x = {name: round(rng.random() * 2, 3) for name in FEATURES if rng.random() < 0.3}
        model.learn_one(x, rng.random() < 0.3)
        kept = [model.predict_proba_one(probe) for probe in probes]  # the second call reads the caches
        assert [model.predict_proba_one(probe) for probe in probes] == kept
        fresh = RiskModel.from_state(model.to_state())  # its coefficients read from the regressions anew
        assert [fresh.predict_proba_one(probe) for probe in probes] == kept
        assert [e.predict_proba_one(probes[0]) for e in model.experts] == [
            e.predict_proba_one(probes[0]) for e in fresh.experts
        ]
        scores.add(kept[0])
    assert len(scores) > 100  # the coefficients moved with (almost) every outcome learned
