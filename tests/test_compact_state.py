"""Compact in-memory forms of the detector state (issue 15's resident state): bounded bytes, same results.

Memory is measured with ``tracemalloc`` (exact bytes allocated; it does not depend on the machine's load).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson

from detectors.account_state import Snapshot
from detectors.baseline import GapTracker, SeasonalBaseline, is_weekend
from detectors.cycle import MonthlyCycle
from detectors.drop import DropDetector
from detectors.engagement import EngagementTracker
from detectors.risk import FEATURES


def bytes_each(make: Callable[[], Any], n: int = 200) -> float:
    """Bytes allocated per object by ``n`` calls of ``make`` (kept alive while measured)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(n)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == n
    return (after - before) / n


def trained(days: int = 60) -> SeasonalBaseline:
    baseline = SeasonalBaseline()
    for day in range(20_600, 20_600 + days):
        baseline.learn_one(day, 3.0 if is_weekend(day) else 17.0 + day % 5)
    return baseline


def test_a_trained_baseline_holds_its_numbers_in_one_array_and_shares_its_parameters() -> None:
    # Two lists of five boxed numbers took ~555 bytes; the array of ten doubles ~265 with its object, ~245
    # with the parameters and smoothing factors in one shared tuple (~220 decoded: its array of exact size).
    assert bytes_each(trained) < 255
    stored = orjson.loads(orjson.dumps(trained().to_state()))
    assert bytes_each(lambda: SeasonalBaseline.from_state(stored)) < 230
    assert SeasonalBaseline.from_state(stored)._params is SeasonalBaseline()._params
    assert isinstance(stored[0][0], int) and stored[0][0] + stored[1][0] == 60  # counts stay ints
    restored = SeasonalBaseline.from_state(stored)
    assert restored.to_state() == trained().to_state()
    assert restored.score_one(20_700, 2.0) == trained().score_one(20_700, 2.0) < -3
    assert restored.level() == trained().level() and restored.level(weekend=True) == 3.0


def test_a_snapshot_keeps_no_spare_room() -> None:
    features = {f: 0.37 * (i + 1) for i, f in enumerate(FEATURES[:6])}
    stored = orjson.dumps(Snapshot.taken(20_600, 0.5, features).to_state())
    # Six features: ~250 bytes as a list grown pair by pair (or decoded), ~200 as a tuple of its exact size.
    assert bytes_each(lambda: Snapshot.taken(20_600, 0.5, features)) < 225
    assert bytes_each(lambda: Snapshot.from_state(orjson.loads(stored))) < 225
    restored = Snapshot.from_state(orjson.loads(stored))
    assert orjson.dumps(restored.to_state()) == stored  # the stored form is unchanged
    assert restored.features() == {f: round(v, 2) for f, v in features.items()}


def test_trackers_share_their_smoothing_factors() -> None:
    # One float object for every account's tracker, not 24 bytes each.
    assert GapTracker()._alpha is GapTracker.from_state([20_600, 3, 1.5, 0.2])._alpha
    assert EngagementTracker()._alpha is EngagementTracker()._alpha
    assert MonthlyCycle()._decay is MonthlyCycle()._decay
    assert MonthlyCycle(30.0)._decay != MonthlyCycle()._decay


def trained_drop() -> DropDetector:
    detector = DropDetector()
    for z in [0.3, -0.4, 0.1, -0.2, 0.5, -0.1, 0.0, 0.2, -0.3, 0.1, -2.5, -2.5, -2.5, -2.5]:
        detector.update(z)  # a drop detected at the last value (as in DropDetector's docstring)
    return detector


def test_a_drop_detector_shares_its_parameters() -> None:
    # Nine slots (four parameters, five numbers) took ~210 bytes; a shared tuple of the parameters ~185.
    assert bytes_each(trained_drop) < 195
    assert DropDetector()._params is DropDetector.from_state([3, 0.1, 0.2, 0.3, 0])._params
    assert DropDetector(6, 0.5, 0.98, 7)._params is not DropDetector()._params  # an int 6 stays an int
    stored = orjson.dumps(trained_drop().to_state())
    assert stored == b"[14,-0.7001,-1.8763,4.3967,1]"  # ints stay ints: the stored bytes of before
    restored = DropDetector.from_state(orjson.loads(stored))
    assert orjson.dumps(restored.to_state()) == stored and restored.detected is True
    assert (restored.n, restored.n_seen, restored.score()) == (14, 14.0, trained_drop().score())
    assert (restored.threshold, restored.delta, restored.alpha, restored.min_instances) == (6.0, 0.5, 0.98, 7)
    original = trained_drop()
    for z in [-3.0, 0.5] * 10:
        assert restored.update(z) is original.update(z)
        assert restored.to_state() == original.to_state()


def test_the_cycle_and_engagement_tracker_share_their_parameters_with_the_stored_bytes_of_before() -> None:
    def cycle() -> MonthlyCycle:
        c = MonthlyCycle()
        for day in range(20_600, 20_700):
            c.learn_one(day, 20.0 if day % 31 < 5 else 0.0)
        return c

    def engagement() -> EngagementTracker:
        t = EngagementTracker()
        for day in range(300):
            t.learn_one(float(day % 13), float(day % 3))
        return t

    # Eight slots and four boxed floats took ~200 bytes; with the parameters in a shared tuple ~180.
    cycle()  # the days' months cached first (not the cycle's memory)
    assert bytes_each(cycle) < 190
    makers: list[tuple[Callable[[], MonthlyCycle | EngagementTracker], bytes]] = [
        (cycle, b"[-23.042,10.479,26.433,8.683]"),
        (engagement, b"[300,276,6.3651,1.0324,0.8982]"),  # the counts stay ints
    ]
    for make, stored in makers:
        assert orjson.dumps(make().to_state()) == stored
        restored, original = type(make()).from_state(orjson.loads(stored)), make()
        assert orjson.dumps(restored.to_state()) == stored and restored._params is original._params
    c = MonthlyCycle.from_state(orjson.loads(orjson.dumps(cycle().to_state())))
    assert (c.concentration(), c.cyclic()) == (cycle().concentration(), cycle().cyclic())
    t = EngagementTracker.from_state(orjson.loads(orjson.dumps(engagement().to_state())))
    assert (t.n_days, t.n_active) == (300, 276) and type(t.n_days) is int and type(t.n_active) is int
    assert (t.per_user, t.per_active_day) == (6.3651 / 1.0324, 6.3651 / 0.8982)


def test_a_gap_tracker_shares_its_parameters_and_its_last_active_day() -> None:
    def trained() -> GapTracker:
        g = GapTracker()
        for day in range(20_600, 20_900, 3):
            g.learn_one(day)
        return g

    stored = orjson.dumps(trained().to_state())
    assert stored == b"[20897,99,3.0,0.0]"  # the stored bytes of before
    # Nine slots, a day of its own and two boxed floats took ~190 bytes; five slots, a shared day ~130.
    assert bytes_each(lambda: GapTracker.from_state(orjson.loads(stored))) < 150
    assert bytes_each(trained) < 150
    a, b = GapTracker.from_state(orjson.loads(stored)), GapTracker.from_state(orjson.loads(stored))
    assert a._params is b._params is GapTracker()._params and a.last_active_day is b.last_active_day
    assert (a.min_gaps, a.rel_floor, a.abs_floor_days) == (2, 0.25, 0.75) and type(a.min_gaps) is int
    assert orjson.dumps(a.to_state()) == stored and (a.score_one(20_910), a.spread()) == (
        trained().score_one(20_910),
        trained().spread(),
    )
    assert GapTracker.from_state([None, 0, 0.0, 0.0]).to_state() == GapTracker().to_state()
