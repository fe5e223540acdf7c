"""Batch refits of the risk model's ``learned`` regression from a sample of its labelled outcomes.

The ``learned`` expert of :class:`~detectors.risk.RiskModel` is a River logistic regression that takes one
SGD step per outcome. Refitted in batch on the outcomes it has seen, the same regression over the same
features ranks the next horizon's churners better (issue 14, eleventh pass: ``docs/detection.md``).
:class:`RefitSample` keeps a bounded, class-balanced sample of labelled inputs and fits an L2-penalised
logistic regression to it by iteratively reweighted least squares; each kept row carries the weight that
restores its class's share of all outcomes seen, so the fitted intercept stays calibrated.

The fit runs on one BLAS thread (:func:`~detectors.blas.one_blas_thread`).

Because the fit takes its intercept from every outcome its sample holds, on a base whose churn rate moves
it predicts the wrong level (ChurnSim: a mean of 0.056 against a rate of 0.018) while ranking well; one-pass
SGD follows the rate. :class:`CalibrationGate` says when the refitted regression is off its base's rate, so
the risk model can let an SGD regression have a say there only (issue 14, sixteenth pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors.blas import one_blas_thread
from detectors.ranking import reservoir_slot

__all__ = ["CalibrationGate", "RefitSample"]


Row = tuple[tuple[float, ...], float]  # (inputs in key order, label weight)


class RefitSample:
    """A reservoir of labelled inputs per class and the L2 logistic regression fitted to it.

    Parameters
    ----------
    keys
        The inputs kept of each outcome, in order (a missing key is 0).
    positives, negatives
        Rows kept of each class (a uniform sample of all seen, seeded by the row: the same stream keeps
        the same rows).
    l2
        Penalty on the weights (not on the intercept).
    min_rows
        Rows of each class needed before :meth:`fit` answers.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(1)
    >>> sample = RefitSample(("x", "noise"), positives=200, negatives=600, min_rows=20)
    >>> for _ in range(3000):
    ...     y = rng.random() < 0.1
    ...     sample.add({"x": rng.gauss(1.5 if y else 0.0, 1.0), "noise": rng.random()}, y)
    >>> intercept, weights = sample.fit()
    >>> round(weights["x"], 1), abs(weights["noise"]) < 0.5  # the log-odds slope of x is 1.5
    (1.5, True)
    >>> 0.02 < 1 / (1 + math.exp(-intercept)) < 0.05  # logit(0.1) - 1.5**2 / 2: 0.035 where x = 0
    True
    >>> again = RefitSample(("x", "noise"), positives=200, negatives=600, min_rows=20)
    >>> again.restore(sample.to_state())
    >>> again.fit() == sample.fit()
    True
    """

    # 2,000 rows of 25 numbers of up to 4 decimals; zeros are written as 0, and most inputs of most outcomes
    # are 0 (~150 kB on a tuning file), but every input of every row non-zero is the bound.
    STATE_BUDGET_BYTES: ClassVar[int] = 400_000
    __slots__ = ("kept", "keys", "l2", "min_rows", "room", "seen")

    def __init__(
        self,
        keys: Sequence[str],
        *,
        positives: int = 500,
        negatives: int = 1500,
        l2: float = 1.0,
        min_rows: int = 30,
    ) -> None:
        self.keys = tuple(keys)
        self.room = (negatives, positives)
        self.l2 = l2
        self.min_rows = min_rows
        self.kept: tuple[list[Row], list[Row]] = ([], [])  # negatives, positives
        self.seen = [0, 0]

    def add(self, x: Mapping[str, float], y: bool, weight: float = 1.0) -> None:
        """Offer one labelled outcome (weight 0 keeps nothing)."""
        if weight <= 0.0:
            return
        label = int(bool(y))
        row = (tuple(round(float(x.get(k, 0.0)), 4) for k in self.keys), round(float(weight), 4))
        kept, seen = self.kept[label], self.seen[label]
        self.seen[label] = seen + 1
        if len(kept) < self.room[label]:
            kept.append(row)
        elif (slot := reservoir_slot(seen, row)) < self.room[label]:
            kept[slot] = row

    def fit(self, iterations: int = 30) -> tuple[float, dict[str, float]] | None:
        """The intercept and weights of the L2 logistic regression on the kept rows, each weighted back to
        its class's share of all seen outcomes; None until ``min_rows`` of each class are kept."""
        negatives, positives = self.kept
        if len(negatives) < self.min_rows or len(positives) < self.min_rows:
            return None
        rows = negatives + positives
        x = np.array([r[0] for r in rows], dtype=np.float64)
        x = np.hstack([np.ones((len(rows), 1)), x])
        y = np.array([0.0] * len(negatives) + [1.0] * len(positives))
        scale = [self.seen[c] / len(self.kept[c]) for c in (0, 1)]
        w = np.array([r[1] * scale[0] for r in negatives] + [r[1] * scale[1] for r in positives])
        penalty = np.full(x.shape[1], self.l2)
        penalty[0] = 0.0
        with one_blas_thread():
            beta = _irls(x, y, w, penalty, iterations)
        return float(beta[0]), {k: float(b) for k, b in zip(self.keys, beta[1:], strict=True)}

    def to_state(self) -> dict[str, Any]:
        """The kept rows (zeros written as 0) and the counts seen."""

        def dump(rows: list[Row]) -> list[list[float]]:
            return [[*(v if v else 0 for v in inputs), weight] for inputs, weight in rows]

        return {
            "keys": list(self.keys),
            "seen": list(self.seen),
            "neg": dump(self.kept[0]),
            "pos": dump(self.kept[1]),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take the rows of :meth:`to_state` (saved with the same keys)."""
        if list(state["keys"]) != list(self.keys):
            return  # saved for other features: start a new sample
        self.seen = [int(n) for n in state["seen"]]
        self.kept = tuple(
            [(tuple(float(v) for v in r[:-1]), float(r[-1])) for r in state[k]] for k in ("neg", "pos")
        )  # type: ignore[assignment]


Array = npt.NDArray[np.float64]


class CalibrationGate:
    """Whether the refitted regression predicts its outcomes' rate: decayed sums of its predictions and of
    the outcomes (half-life :attr:`HALF_LIFE` outcomes), open when their ratio is off by more than ``factor``.

    Parameters
    ----------
    factor
        The gate opens when the mean prediction is above ``factor`` times the outcome rate, or below it
        divided by ``factor``, once the sums hold :attr:`MIN_POSITIVES` positives.

    Examples
    --------
    >>> gate = CalibrationGate(1.5)
    >>> for k in range(800):
    ...     gate.learn_one(0.06, k % 40 == 0)
    >>> gate.open  # predicts 0.06 where 1 in 40 (0.025) churned
    True
    >>> calibrated = CalibrationGate(1.5)
    >>> for k in range(1000):
    ...     calibrated.learn_one(0.05, k % 20 == 0)
    >>> calibrated.open, CalibrationGate.from_state(gate.to_state()).open
    (False, True)
    """

    HALF_LIFE: ClassVar[float] = 1_000.0
    MIN_POSITIVES: ClassVar[float] = 10.0
    __slots__ = ("factor", "observed", "predicted")

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.predicted = 0.0
        self.observed = 0.0

    def learn_one(self, p: float, y: bool, weight: float = 1.0) -> None:
        keep = 0.5 ** (weight / self.HALF_LIFE)
        self.predicted = keep * self.predicted + weight * p
        self.observed = keep * self.observed + weight * float(y)

    @property
    def open(self) -> bool:
        if self.observed < self.MIN_POSITIVES:
            return False
        return not 1.0 / self.factor <= self.predicted / self.observed <= self.factor

    def to_state(self) -> list[float]:
        return [self.factor, self.predicted, self.observed]

    @classmethod
    def from_state(cls, state: Sequence[float]) -> CalibrationGate:
        gate = cls(float(state[0]))
        gate.predicted, gate.observed = float(state[1]), float(state[2])
        return gate


def _irls(x: Array, y: Array, w: Array, penalty: Array, iterations: int) -> Array:
    """Newton steps of the weighted, penalised logistic log-likelihood from zero, until a step is < 1e-7."""
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -30.0, 30.0)))
        gradient = x.T @ (w * (y - p)) - penalty * beta
        hessian = (x.T * (w * p * (1.0 - p))) @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    return beta
