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


def test_a_trained_baseline_holds_its_numbers_in_one_array() -> None:
    # Two lists of five boxed numbers took ~555 bytes; the array of ten doubles ~265 with its object.
    assert bytes_each(trained) < 300
    stored = orjson.loads(orjson.dumps(trained().to_state()))
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
