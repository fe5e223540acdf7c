"""Sustained-drop detection: River's Page-Hinkley test (``mode="down"``, written out) on baseline z-scores.

:class:`DropDetector` runs on the baseline-normalised series (z-scores of
:meth:`~detectors.baseline.SeasonalBaseline.score_one`), so it reacts to sustained drops, not single bad days.
Like the baselines of :mod:`detectors.baseline` it has ``clone()``, JSON-compatible ``to_state()`` /
``from_state()`` and keeps its floats rounded to :data:`~detectors.baseline.STATE_DECIMALS` (4) decimals in
memory, so a JSON round trip (what the live table does on every update) gives bit-identical subsequent
outputs to an in-memory run (what offline replay does).

Page-Hinkley's test is written out in :meth:`DropDetector.update` for the sweep's cost (issue 15; checked
equal to River's own in ``tests/test_sweep_shortcuts.py``).
"""

from __future__ import annotations

from array import array
from functools import lru_cache
from typing import Any, ClassVar

__all__ = ["DropDetector"]

# What reset() sets: no values seen, mean 0, sums of decreases 0 and -1 (River starts the highest at the
# int -1: the same value), not detected. New detectors copy it (a slice: their exact size, and quicker than
# converting numbers), reset() copies it in place.
_RESET = array("d", (0.0, 0.0, 0.0, -1.0, 0.0))


@lru_cache(maxsize=64, typed=True)  # typed: 6 and 6.0 stay apart
def _shared_params(
    threshold: float, delta: float, alpha: float, min_instances: int
) -> tuple[float, float, float, int]:
    """The test's parameters: one tuple shared by every detector of a configuration (issue 15)."""
    return threshold, delta, alpha, min_instances


class DropDetector:
    """Sustained-drop detector: River's Page-Hinkley test (``mode="down"``) on a normalised series.

    Fed with baseline z-scores, ``threshold`` is in z units: with ``delta = 0.5`` a series sitting two
    standard deviations low accumulates 1.5 per day, so ``threshold = 6`` fires on the fourth such day,
    while independent noise rarely drifts that far. River's test is written out over the five numbers it
    keeps for decreases (its operations in its order; ``tests/test_sweep_shortcuts.py`` compares the two):
    a River object per detector held ~300 bytes of attribute dicts per signal in every resident account
    (issue 15), and only these numbers are serialised.

    Parameters
    ----------
    threshold, delta, alpha, min_instances
        As in :class:`river.drift.PageHinkley`.

    Examples
    --------
    >>> d = DropDetector()
    >>> noise = [0.3, -0.4, 0.1, -0.2, 0.5, -0.1, 0.0, 0.2, -0.3, 0.1]
    >>> [d.update(z) for z in noise].count(True)
    0
    >>> [d.update(z) for z in [-2.5] * 6]
    [False, False, False, True, False, False]
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 60
    __slots__ = ("_params", "stats")

    def __init__(
        self, threshold: float = 6.0, delta: float = 0.5, alpha: float = 0.98, min_instances: int = 7
    ) -> None:
        self._params = _shared_params(threshold, delta, alpha, min_instances)
        # The five numbers of the test: values seen since the last reset (a float, as River counts them),
        # the mean, the running and the highest sum of decreases, and 1.0 when a drop was detected at the
        # last value. One array of doubles where boxed numbers in slots took ~200 bytes a detector (issue
        # 15's resident state; three per account).
        self.stats = _RESET[:]

    # The parameters, read-only: shared by every detector of the configuration.
    @property
    def threshold(self) -> float:
        return self._params[0]

    @property
    def delta(self) -> float:
        return self._params[1]

    @property
    def alpha(self) -> float:
        return self._params[2]

    @property
    def min_instances(self) -> int:
        return self._params[3]

    # The numbers, read as before (values seen a float, detected a bool).
    @property
    def n_seen(self) -> float:
        return self.stats[0]

    @property
    def mean(self) -> float:
        return self.stats[1]

    @property
    def sum_decrease(self) -> float:
        return self.stats[2]

    @property
    def max_decrease(self) -> float:
        return self.stats[3]

    @property
    def detected(self) -> bool:
        return self.stats[4] != 0.0

    def clone(self) -> DropDetector:
        return DropDetector(*self._params)

    @property
    def n(self) -> int:
        return int(self.stats[0])

    def update(self, z: float) -> bool:
        """Feed one normalised value; True when a sustained drop is detected at this value.

        River's ``PageHinkley.update`` (``mode="down"``) written out: the same operations in the same order,
        without the "increase" half it never reads."""
        s = self.stats
        if s[4]:
            s[:] = _RESET  # reset()
        threshold, delta, alpha, min_instances = self._params
        n = s[0] + 1.0
        s[0] = n
        mean = s[1]
        mean = mean + (1.0 / n) * (z - mean)
        decrease = alpha * s[2] + (z - mean) + delta
        highest = s[3]
        if decrease > highest:
            highest = decrease
        detected = False
        if n >= min_instances:
            detected = highest - decrease > threshold
            s[4] = detected
        # Then on the same 1e-4 grid as the JSON state (see the module docstring).
        s[1] = round(mean, 4)
        s[2] = round(decrease, 4)
        s[3] = round(highest, 4)
        return detected

    def score(self) -> float:
        """Current Page-Hinkley statistic for decreases, as a share of the threshold (0 = no evidence)."""
        s = self.stats
        if s[0] == 0:
            return 0.0
        return max(0.0, (s[3] - s[2]) / self._params[0])

    def reset(self) -> None:
        """Forget the series (after a drop was handled or the baseline was re-levelled)."""
        self.stats[:] = _RESET

    def to_state(self) -> list[Any]:
        # The "increase" half of the test is irrelevant in mode="down", so it is not kept.
        s = self.stats
        return [int(s[0]), s[1], s[2], s[3], int(s[4])]

    @classmethod
    def from_state(cls, state: list[Any], **params: Any) -> DropDetector:
        detector = cls(**params)
        detector.stats = array("d", state)  # [n, mean, sum_decrease, max_decrease, detected 0 or 1]
        return detector
