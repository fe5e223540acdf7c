"""Mixture weights of experts by how well each *ranks* recent outcomes: AUC over a bounded reservoir.

Churnwatch's value is the order in which it lists accounts, so :class:`~detectors.risk.RiskModel` weighs its
experts by their AUC on recent labelled outcomes as well as by their log-loss: on a base where one expert is
best calibrated but ranks at chance (ChurnSim's ``learned`` regression), the log-loss follows the calibration
and the ranking is lost (``docs/detection.md``). By default the model multiplies these rank weights with the
log-loss weights (``weigh_by="both"``): an expert must rank *and* predict.

:class:`RankWeights` keeps the inputs of the last ``positives`` positive and the last ``negatives`` negative
outcomes (FIFO per class: positives are rare, a plain window of recent outcomes would hold a handful), has
every expert score them as it is *now*, and weighs expert ``k`` by ``exp(-(best AUC - AUC_k) / (temperature
* SE))``, SE being the rank-sum test's standard error of an AUC on the reservoir. With a handful of outcomes
the SE is large and the weights stay near uniform (a few skewed outcomes cannot hand the mixture to one
expert); with a full reservoir (SE ~0.044) an expert ``temperature * SE`` behind the best keeps ``1/e`` of its
weight. The experts are scored as they are now rather than as they were when each outcome arrived: scores
kept from the time of each outcome held a regression's first, immature guesses for hundreds of outcomes and
ranked the tuning shapes worse (rank weights alone: 0.821 vs 0.826 AUC). The experts have learned these
outcomes, so their AUC here is slightly optimistic, least so for the one-or-two-input experts.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["RankWeights", "auc_of"]

Scores = Callable[[Mapping[str, float]], Sequence[float]]


def auc_of(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Share of (positive, negative) pairs the scores order correctly, ties counting half; 0.5 if empty.

    >>> auc_of([0.9, 0.4], [0.1, 0.4, 0.5])
    0.75
    >>> auc_of([], [0.3])
    0.5
    """
    if not positives or not negatives:
        return 0.5
    ordered = sorted(negatives)
    wins = sum(
        bisect_left(ordered, p) + 0.5 * (bisect_right(ordered, p) - bisect_left(ordered, p))
        for p in positives
    )
    return wins / (len(positives) * len(negatives))


class RankWeights:
    """Weights of experts from their AUC on the inputs of the last outcomes of each class.

    Parameters
    ----------
    names
        The experts, in a fixed order.
    keys
        The inputs kept of each outcome (others are dropped; a missing key is 0).
    positives, negatives
        How many of the most recent positive and negative outcomes the reservoir keeps (FIFO per class).
    temperature
        Weights ``∝ exp(-(best - AUC_k) / (temperature * SE))``.

    Examples
    --------
    >>> def scores(x):  # expert "good" ranks by x, expert "flat" cannot rank
    ...     return [x["x"], 0.0]
    >>> mix = RankWeights(("good", "flat"), ("x",), positives=8, negatives=8)
    >>> mix.weights(scores)  # nothing seen: uniform
    [0.5, 0.5]
    >>> mix.update({"x": 2.0}, True); mix.update({"x": -1.0}, False)
    >>> [round(w, 2) for w in mix.weights(scores)]  # one pair: little evidence, close to uniform
    [0.88, 0.12]
    >>> for i in range(8):
    ...     mix.update({"x": 2.0 + i}, True)
    ...     mix.update({"x": -1.0 - i}, False)
    >>> mix.aucs(scores), [round(w, 3) for w in mix.weights(scores)]
    ([1.0, 0.5], [0.999, 0.001])
    >>> again = RankWeights(("good", "flat"), ("x",), positives=8, negatives=8)
    >>> again.restore(mix.to_state())
    >>> again.weights(scores) == mix.weights(scores)
    True
    """

    __slots__ = ("_cache", "keys", "names", "neg", "pos", "temperature")

    def __init__(
        self,
        names: Sequence[str],
        keys: Sequence[str],
        *,
        positives: int = 64,
        negatives: int = 128,
        temperature: float = 0.5,
    ) -> None:
        self.names = tuple(names)
        self.keys = tuple(keys)
        self.temperature = temperature
        self.pos: deque[tuple[float, ...]] = deque(maxlen=positives)
        self.neg: deque[tuple[float, ...]] = deque(maxlen=negatives)
        self._cache: list[float] | None = None

    def update(self, x: Mapping[str, float], y: bool, weight: float = 1.0) -> None:
        """Keep the inputs of a labelled outcome (weight 0 keeps nothing; any other counts once)."""
        if weight <= 0.0:
            return
        (self.pos if y else self.neg).append(tuple(round(float(x.get(k, 0.0)), 3) for k in self.keys))
        self._cache = None

    def changed(self) -> None:
        """The experts learned: recompute the weights when next asked."""
        self._cache = None

    def _scored(self, rows: Iterable[tuple[float, ...]], scores: Scores) -> list[Sequence[float]]:
        return [scores(dict(zip(self.keys, row, strict=True))) for row in rows]

    def aucs(self, scores: Scores) -> list[float]:
        """Each expert's AUC on the reservoir as ``scores`` (inputs -> one score per expert) rank it now
        (0.5 while a class is missing)."""
        pos, neg = self._scored(self.pos, scores), self._scored(self.neg, scores)
        return [auc_of([r[k] for r in pos], [r[k] for r in neg]) for k in range(len(self.names))]

    def se(self) -> float:
        """Standard error of an AUC on the reservoir: the rank-sum test's, at AUC 0.5 (a best AUC near 1
        from a few positives has a Hanley-McNeil SE near 0, which would make the weights a hard choice)."""
        n_pos, n_neg = len(self.pos), len(self.neg)
        return math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)) if n_pos and n_neg else 0.5

    def weights(self, scores: Scores) -> list[float]:
        """The weights (cached until the next :meth:`update` or :meth:`changed`)."""
        if self._cache is None:
            aucs = self.aucs(scores)
            best = max(aucs)
            scale = self.temperature * self.se()
            raw = [math.exp(-(best - a) / scale) for a in aucs]
            total = sum(raw)
            self._cache = [r / total for r in raw]
        return list(self._cache)

    def to_state(self) -> dict[str, Any]:
        """The reservoir (zeros written as ``0``: most inputs of most outcomes are 0)."""
        return {
            "keys": list(self.keys),
            "pos": [[v or 0 for v in row] for row in self.pos],
            "neg": [[v or 0 for v in row] for row in self.neg],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take the reservoir of a saved state (an input it did not keep is 0)."""
        where = {key: i for i, key in enumerate(state["keys"])}
        for saved, mine in ((state["pos"], self.pos), (state["neg"], self.neg)):
            mine.clear()
            for row in saved:
                mine.append(tuple(float(row[where[k]]) if k in where else 0.0 for k in self.keys))
        self._cache = None
