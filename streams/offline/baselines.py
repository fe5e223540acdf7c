"""Simple churn scores a backtest compares churnwatch's risk with, and the statistics to compare them.

Everything here works on a per-account daily activity matrix (:class:`ActivityMatrix`: usage counts per
account and UTC day, built from a replay), so the baselines see exactly the events churnwatch saw. Every score
is "higher = more likely to leave" and, at day ``d``, uses only days before ``d`` (the midnight that starts
``d``, like churnwatch's sweep):

* ``days_since_last``: days since the last day with usage;
* ``activity_28d``: minus the usage events in the last 28 days;
* ``trend_8w``: minus the least-squares slope of the 8 last weekly usage totals, relative to their mean;
* ``bgnbd_p_dead``: 1 - P(alive) of a BG/NBD model (Fader, Hardie & Lee 2005) fitted on the file by maximum
  likelihood (:func:`fit_bgnbd`), with active days as transactions and weeks as the time unit;
* ``bgnbd_expected``: minus the same model's expected number of active days within the horizon
  (:func:`expected_activity`). P(alive) is 1 for anyone with no repeat activity, so on purchase data full of
  one-time buyers it ranks them as safest; the expectation does not have that blind spot.

:func:`auc` gives the area under the ROC curve with ties counted half and its Hanley-McNeil standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

FloatArray = npt.NDArray[np.float64]

BASELINES = ("days_since_last", "activity_28d", "trend_8w", "bgnbd_p_dead", "bgnbd_expected")
BASELINE_LABELS = {
    "days_since_last": "days since last activity",
    "activity_28d": "activity in last 28 days",
    "trend_8w": "8-week trend",
    "bgnbd_p_dead": "BG/NBD P(alive)",
    "bgnbd_expected": "BG/NBD expected activity",
}


@dataclass(frozen=True, slots=True)
class AucResult:
    """AUC of a score for a binary outcome: ``auc`` ± ``se`` (Hanley-McNeil) over ``n`` cases."""

    auc: float
    se: float
    n: int
    positives: int


def auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> AucResult | None:
    """Area under the ROC curve (Mann-Whitney, ties count half) and its Hanley-McNeil standard error.

    None when either class is empty.

    >>> r = auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
    >>> r.auc, r.n, r.positives
    (0.75, 4, 2)
    >>> auc([1, 1, 1], [1, 0, 0]).auc
    0.5
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    value = (ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    q1 = value / (2 - value)
    q2 = 2 * value * value / (1 + value)
    variance = (
        value * (1 - value) + (n_pos - 1) * (q1 - value * value) + (n_neg - 1) * (q2 - value * value)
    ) / (n_pos * n_neg)
    return AucResult(round(float(value), 6), round(math.sqrt(max(variance, 0.0)), 6), len(y), n_pos)


# -- activity ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ActivityMatrix:
    """Usage counts per account (rows, ``accounts`` order) and UTC day (columns, from ``day0``)."""

    accounts: list[str]
    day0: int
    counts: npt.NDArray[np.float32]

    @classmethod
    def from_days(cls, activity: dict[str, dict[int, int]], day0: int, n_days: int) -> ActivityMatrix:
        accounts = sorted(activity)
        counts = np.zeros((len(accounts), n_days), dtype=np.float32)
        for i, account in enumerate(accounts):
            for day, count in activity[account].items():
                if 0 <= day - day0 < n_days:
                    counts[i, day - day0] += count
        return cls(accounts, day0, counts)

    def cumulative(self) -> FloatArray:
        """``cum[:, d]`` = usage before day index ``d`` (one more column than days)."""
        out = np.zeros((self.counts.shape[0], self.counts.shape[1] + 1), dtype=np.float64)
        np.cumsum(self.counts, axis=1, out=out[:, 1:])
        return out

    def last_active_before(self) -> FloatArray:
        """``last[:, d]`` = index of the last active day before ``d`` (NaN if none)."""
        n, days = self.counts.shape
        index = np.where(self.counts > 0, np.arange(days, dtype=np.float64), np.nan)
        last = np.full((n, days + 1), np.nan)
        last[:, 1:] = np.fmax.accumulate(index, axis=1)
        return last

    def first_active(self) -> FloatArray:
        active = self.counts > 0
        first = np.argmax(active, axis=1).astype(np.float64)
        first[~active.any(axis=1)] = np.nan
        return first

    def active_days_before(self) -> FloatArray:
        out = np.zeros((self.counts.shape[0], self.counts.shape[1] + 1), dtype=np.float64)
        np.cumsum(self.counts > 0, axis=1, out=out[:, 1:])
        return out


def window_sums(cum: FloatArray, days: npt.NDArray[np.int64], length: int) -> FloatArray:
    """Usage in days [d - length, d) for each d of ``days`` from a cumulative matrix (clipped at 0)."""
    hi = np.clip(days, 0, cum.shape[1] - 1)
    lo = np.clip(days - length, 0, cum.shape[1] - 1)
    return np.asarray(cum[:, hi] - cum[:, lo], dtype=np.float64)


def trend_slope(cum: FloatArray, days: npt.NDArray[np.int64], weeks: int = 8) -> FloatArray:
    """Least-squares slope of the last ``weeks`` weekly totals before each day, divided by their mean."""
    totals = np.stack([window_sums(cum, days - 7 * k, 7) for k in range(weeks)], axis=-1)  # k=0 newest
    x = -np.arange(weeks, dtype=np.float64)  # newest week has the largest x
    xc = x - x.mean()
    slope = (totals * xc).sum(axis=-1) / (xc * xc).sum()
    mean = totals.mean(axis=-1)
    return np.asarray(slope / np.maximum(mean, 1.0), dtype=np.float64)


# -- BG/NBD ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """BG/NBD population parameters (transaction rate ~ Gamma(r, alpha), dropout p ~ Beta(a, b))."""

    r: float
    alpha: float
    a: float
    b: float


def bgnbd_log_likelihood(params: BgNbdParams, x: FloatArray, t_x: FloatArray, t: FloatArray) -> FloatArray:
    """Per-customer log-likelihood of ``x`` repeat transactions, the last at ``t_x``, observed for ``t``."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t)
    died = np.where(
        x > 0,
        betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return np.asarray(common + np.logaddexp(alive, died), dtype=np.float64)


def fit_bgnbd(x: FloatArray, t_x: FloatArray, t: FloatArray) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters (L-BFGS-B on log-parameters, scipy).

    Recovers the parameters of customers drawn from the model (ground truth r=0.5, alpha=2, a=0.6, b=2.5):

    >>> from streams.offline.baselines import _simulate_bgnbd
    >>> p = fit_bgnbd(*_simulate_bgnbd(BgNbdParams(0.5, 2.0, 0.6, 2.5), 4000, 40.0, seed=1))
    >>> 0.35 < p.r < 0.7 and 1.0 < p.alpha < 3.5 and 0.3 < p.a < 1.2
    True
    """

    def objective(log_params: FloatArray) -> float:
        params = BgNbdParams(*np.exp(np.clip(log_params, -12, 12)))
        value = -float(bgnbd_log_likelihood(params, x, t_x, t).sum())
        return value if math.isfinite(value) else 1e300

    start = np.log([0.5, max(float(np.mean(t)), 1.0) / 2.0, 1.0, 1.0])
    options = {"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6}
    fitted = minimize(objective, start, method="Nelder-Mead", options=options)
    fitted = minimize(objective, fitted.x, method="Nelder-Mead", options=options)  # restart: NM stalls
    return BgNbdParams(*(float(v) for v in np.exp(np.clip(fitted.x, -12, 12))))


def p_alive(params: BgNbdParams, x: FloatArray, t_x: FloatArray, t: FloatArray) -> FloatArray:
    """P(still alive) given ``x`` repeat transactions, the last at ``t_x``, observed for ``t``.

    >>> p = BgNbdParams(0.5, 2.0, 0.6, 2.5)
    >>> bool(p_alive(p, np.array([0.0]), np.array([0.0]), np.array([10.0]))[0] == 1.0)
    True
    >>> a = p_alive(p, np.array([5.0, 5.0]), np.array([9.0, 2.0]), np.array([10.0, 10.0]))
    >>> bool(a[0] > a[1])  # same frequency, the more recent one is more likely alive
    True
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = (
        math.log(a)
        - np.log(np.maximum(b + x - 1, 1e-12))
        + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
    )
    alive = 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700)))
    return np.asarray(np.where(x > 0, alive, 1.0), dtype=np.float64)


def expected_activity(
    params: BgNbdParams, x: FloatArray, t_x: FloatArray, t: FloatArray, horizon: float
) -> FloatArray:
    """Expected transactions in the next ``horizon`` given ``(x, t_x, T)`` (Fader, Hardie & Lee 2005, eq. 10).

    Where the Gaussian hypergeometric function overflows (very active accounts), the alive rate times the
    horizon, ``P(alive) (r + x) / (alpha + T) horizon``, stands in.

    The paper's CDNOW example: with its estimates, a customer with 2 repeat purchases, the last at week
    30.43 of 38.86, is expected to buy 1.226 times in the next 39 weeks:

    >>> p = BgNbdParams(0.243, 4.414, 0.793, 2.426)
    >>> round(float(expected_activity(p, np.array([2.0]), np.array([30.43]), np.array([38.86]), 39.0)[0]), 3)
    1.226
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = horizon / (alpha + t + horizon)
    with np.errstate(all="ignore"):
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
        term = 1.0 - np.exp((r + x) * np.log((alpha + t) / (alpha + t + horizon))) * hyper
        value = (a + b + x - 1) / (a - 1) * term * p_alive(params, x, t_x, t)
    fallback = p_alive(params, x, t_x, t) * (r + x) / (alpha + t) * horizon
    ok = np.isfinite(value) & (value >= 0)
    return np.asarray(np.where(ok, value, fallback), dtype=np.float64)


def _simulate_bgnbd(
    params: BgNbdParams, n: int, horizon: float, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw ``(x, t_x, T)`` of ``n`` customers observed for ``horizon`` from a BG/NBD model (tests)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > horizon:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, np.full(n, horizon)


# -- scores at a day ---------------------------------------------------------------------------------------


class BaselineScorer:
    """All baselines of an :class:`ActivityMatrix` at given day indices (vectorised over accounts)."""

    def __init__(self, matrix: ActivityMatrix, horizon_days: int = 30) -> None:
        self.matrix = matrix
        self.horizon_weeks = horizon_days / 7.0
        self.cum = self.matrix.cumulative()
        self.last = self.matrix.last_active_before()
        self.active = self.matrix.active_days_before()
        self.first = self.matrix.first_active()

    def bgnbd_inputs(
        self, day: int, rows: npt.NDArray[np.int64]
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """BG/NBD ``(x, t_x, T)`` in weeks at day index ``day`` for the given rows (active before ``day``)."""
        first = self.first[rows]
        x = self.active[rows, day] - 1.0
        t_x = (self.last[rows, day] - first) / 7.0
        t = (day - first) / 7.0
        return np.maximum(x, 0.0), np.maximum(t_x, 0.0), np.maximum(t, 1.0 / 7.0)

    def fit(self, day: int, rows: npt.NDArray[np.int64]) -> BgNbdParams:
        return fit_bgnbd(*self.bgnbd_inputs(day, rows))

    def score(self, name: str, day: int, rows: npt.NDArray[np.int64], params: BgNbdParams) -> FloatArray:
        """Baseline ``name`` at the midnight starting day index ``day`` for ``rows`` (higher = riskier)."""
        days = np.array([day])
        if name == "days_since_last":
            return np.asarray(day - self.last[rows, day], dtype=np.float64)
        if name == "activity_28d":
            return -window_sums(self.cum[rows], days, 28)[:, 0]
        if name == "trend_8w":
            return -trend_slope(self.cum[rows], days)[:, 0]
        inputs = self.bgnbd_inputs(day, rows)
        if name == "bgnbd_p_dead":
            return 1.0 - p_alive(params, *inputs)
        if name == "bgnbd_expected":
            return -expected_activity(params, *inputs, self.horizon_weeks)
        raise ValueError(f"unknown baseline {name!r}")

    def scores(self, day: int, rows: npt.NDArray[np.int64], params: BgNbdParams) -> dict[str, FloatArray]:
        """Every baseline's score at the midnight starting day index ``day`` for ``rows``."""
        return {name: self.score(name, day, rows, params) for name in BASELINES}

    def daily(self, name: str, params: BgNbdParams) -> npt.NDArray[np.float32]:
        """One baseline's score for every account and day index (NaN before the first activity)."""
        n, days = self.matrix.counts.shape
        out = np.full((n, days), np.nan, dtype=np.float32)
        rows = np.arange(n)
        for day in range(days):
            seen = rows[self.active[:, day] > 0]
            if len(seen):
                out[seen, day] = self.score(name, day, seen, params)
        return out
