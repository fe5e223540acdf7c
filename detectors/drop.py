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

from functools import lru_cache
from typing import Any, ClassVar

__all__ = ["DropDetector"]


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
    # The parameters in one tuple shared by every detector of the configuration (issue 15's resident state),
    # the numbers boxed: an array of doubles saves ~8 bytes a detector more (~30 of its process's resident
    # set) but is one more object for the garbage collector to track and walk.
    __slots__ = ("_params", "detected", "max_decrease", "mean", "n_seen", "sum_decrease")
    n_seen: float  # values seen since the last reset (a float, as River counts them)
    mean: float
    sum_decrease: float
    max_decrease: float
    detected: bool

    def __init__(
        self, threshold: float = 6.0, delta: float = 0.5, alpha: float = 0.98, min_instances: int = 7
    ) -> None:
        self._params = _shared_params(threshold, delta, alpha, min_instances)
        self.reset()

    # The parameters, read-only.
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

    def clone(self) -> DropDetector:
        return DropDetector(*self._params)

    @property
    def n(self) -> int:
        return int(self.n_seen)

    def update(self, z: float) -> bool:
        """Feed one normalised value; True when a sustained drop is detected at this value.

        River's ``PageHinkley.update`` (``mode="down"``) written out: the same operations in the same order,
        without the "increase" half it never reads."""
        if self.detected:
            self.reset()
        threshold, delta, alpha, min_instances = self._params
        n = self.n_seen = self.n_seen + 1.0
        mean = self.mean + (1.0 / n) * (z - self.mean)
        decrease = alpha * self.sum_decrease + (z - mean) + delta
        highest = self.max_decrease
        if decrease > highest:
            highest = decrease
        if n >= min_instances:
            self.detected = highest - decrease > threshold
        # Then on the same 1e-4 grid as the JSON state (see the module docstring).
        self.mean = round(mean, 4)
        self.sum_decrease = round(decrease, 4)
        self.max_decrease = round(highest, 4)
        return self.detected

    def score(self) -> float:
        """Current Page-Hinkley statistic for decreases, as a share of the threshold (0 = no evidence)."""
        if self.n_seen == 0:
            return 0.0
        return max(0.0, (self.max_decrease - self.sum_decrease) / self.threshold)

    def reset(self) -> None:
        """Forget the series (after a drop was handled or the baseline was re-levelled)."""
        self.n_seen = 0.0
        self.mean = 0.0
        self.sum_decrease = 0.0
        self.max_decrease = -1.0  # River starts it at the int -1: the same value
        self.detected = False

    def to_state(self) -> list[Any]:
        # The "increase" half of the test is irrelevant in mode="down", so it is not kept.
        return [
            int(self.n_seen),
            float(self.mean),
            float(self.sum_decrease),
            float(self.max_decrease),
            int(self.detected),
        ]

    @classmethod
    def from_state(cls, state: list[Any], **params: Any) -> DropDetector:
        detector = cls(**params)
        n, mean, sum_decrease, max_decrease, detected = state
        detector.n_seen = float(n)
        detector.mean = float(mean)
        detector.sum_decrease = float(sum_decrease)
        detector.max_decrease = float(max_decrease)
        detector.detected = bool(detected)
        return detector
