"""Calibration of predicted risk against outcomes: the Brier score and a reliability table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReliabilityRow:
    """One bin of a reliability table: predicted vs observed rate over ``n`` scored snapshots."""

    low: float
    high: float
    n: int
    mean_predicted: float
    observed_rate: float


def brier_score(pairs: Sequence[tuple[float, bool]]) -> float:
    """Mean squared error of predicted probabilities against 0/1 outcomes (lower is better).

    >>> brier_score([(0.9, True), (0.1, False)])
    0.01
    """
    if not pairs:
        return float("nan")
    return round(sum((p - float(y)) ** 2 for p, y in pairs) / len(pairs), 6)


def reliability_table(pairs: Iterable[tuple[float, bool]], bins: int = 10) -> list[ReliabilityRow]:
    """Reliability table over equal-count bins (deciles by default) of the predicted probability.

    Equal-count bins keep every row meaningful even though most accounts sit at low risk.

    >>> rows = reliability_table([(i / 100, i >= 50) for i in range(100)], bins=4)
    >>> [(r.n, round(r.mean_predicted, 3), r.observed_rate) for r in rows]
    [(25, 0.12, 0.0), (25, 0.37, 0.0), (25, 0.62, 1.0), (25, 0.87, 1.0)]
    """
    ordered = sorted(pairs, key=lambda pair: pair[0])
    if not ordered:
        return []
    rows: list[ReliabilityRow] = []
    total = len(ordered)
    for b in range(bins):
        chunk = ordered[b * total // bins : (b + 1) * total // bins]
        if not chunk:
            continue
        rows.append(
            ReliabilityRow(
                low=chunk[0][0],
                high=chunk[-1][0],
                n=len(chunk),
                mean_predicted=sum(p for p, _ in chunk) / len(chunk),
                observed_rate=sum(1 for _, y in chunk if y) / len(chunk),
            )
        )
    return rows
