"""A batch model the backtest holds churnwatch's risk against: logistic regression on 28-day counts.

Issue 14 asks for an AUC of at least 0.75 where a batch model reaches 0.73-0.76 (evaluators outside the
project fitted a logistic regression on 28-day activity counts). This one is fitted, at each as-of
midnight, on the file's own *earlier* outcomes only: the accounts as they were one horizon before, their
features then, and whether they churned within the horizon after it, all known by the as-of midnight; then
it scores the accounts at the as-of midnight. It sees what a batch job run that night could see, no more (a
cross-validated fit at the same midnight would learn from outcomes still in the future).

Features (at a midnight, from the days before it, out of :class:`~streams.offline.baselines.BaselineScorer`'s
arrays): log1p of the usage in the last 7 and in the last 28 days, the share of the last 28 days with usage,
log1p of the days since the last and since the first usage, and the 8-week trend; standardised on the
training rows; an L2-penalised logistic regression (penalty 1 on the standardised weights) fitted by L-BFGS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from streams.offline.baselines import BaselineScorer, FloatArray, trend_slope, window_sums

MIN_CLASS = 5  # fewer churners (or non-churners) than this in the training rows: no model


def features(scorer: BaselineScorer, i: int, rows: npt.NDArray[np.int64]) -> FloatArray:
    """The model's inputs at the midnight starting day index ``i`` (one row per account, six columns)."""
    days = np.array([i])
    cum = scorer.cum[rows]
    active = scorer.active[rows]
    seen28 = active[:, i] - active[:, max(i - 28, 0)]
    return np.column_stack(
        [
            np.log1p(window_sums(cum, days, 7)[:, 0]),
            np.log1p(window_sums(cum, days, 28)[:, 0]),
            seen28 / 28.0,
            np.log1p(i - scorer.last[rows, i]),
            np.log1p(np.maximum(i - scorer.first[rows], 0.0)),
            trend_slope(cum, days)[:, 0],
        ]
    )


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """Standardisation and weights of a fitted :func:`fit_logistic`."""

    mean: FloatArray
    scale: FloatArray
    weights: FloatArray  # one per feature, then the intercept

    def logits(self, x: FloatArray) -> FloatArray:
        """Log-odds of churning (higher = riskier)."""
        z = (x - self.mean) / self.scale
        return np.asarray(z @ self.weights[:-1] + self.weights[-1], dtype=np.float64)


def fit_logistic(x: FloatArray, y: npt.NDArray[np.bool_], penalty: float = 1.0) -> LogisticModel:
    """L2-penalised logistic regression of ``y`` on standardised ``x`` (the intercept not penalised).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 2))
    >>> y = x[:, 0] + 0.3 * rng.normal(size=400) > 1.0  # the first input says it, the second is noise
    >>> w = fit_logistic(x, y).weights
    >>> bool(w[0] > 2.0 and abs(w[1]) < 0.5 and w[2] < 0.0)
    True
    """
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    target = y.astype(np.float64)

    def loss(w: FloatArray) -> tuple[float, FloatArray]:
        t = z @ w
        value = -np.sum(target * log_expit(t) + (1.0 - target) * log_expit(-t))
        grad = z.T @ (expit(t) - target)
        value += 0.5 * penalty * float(w[:-1] @ w[:-1])
        grad[:-1] += penalty * w[:-1]
        return float(value), grad

    fitted = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B")
    return LogisticModel(mean, scale, np.asarray(fitted.x, dtype=np.float64))


def batch_scores(
    scorer: BaselineScorer,
    train: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.bool_]],
    i: int,
    rows: npt.NDArray[np.int64],
) -> FloatArray | None:
    """Scores at day index ``i`` for ``rows`` of a model fitted on ``train`` (day index, rows, outcomes);
    None when the training rows hold fewer than :data:`MIN_CLASS` of either outcome."""
    day, train_rows, y = train
    if min(int(y.sum()), int((~y).sum())) < MIN_CLASS:
        return None
    model = fit_logistic(features(scorer, day, train_rows), y)
    return model.logits(features(scorer, i, rows))
