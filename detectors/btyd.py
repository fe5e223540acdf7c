"""Buy-till-you-die: how likely an account with irregular activity is still "alive".

The modified BG/NBD model (MBG/NBD, Batislam, Denizel & Filiztekin 2007) describes each account by how
often it is active while alive (a Poisson rate drawn from a gamma distribution, parameters ``r, alpha``) and
the chance that it leaves at any active day, including its first (a beta distribution, parameters ``a,
b``). From an account's summary alone, ``x`` (active days after its first), ``t_x`` (days from its first to
its last active day) and ``T`` (days from its first active day to now), it gives the probability that the
account is still alive: an account that used to be active every other day and has been silent for three
weeks is probably gone; one that visits once a month and was last seen two weeks ago probably is not.
Unlike plain BG/NBD, a one-time visitor (``x = 0``) is not assumed alive for ever.

The population parameters are learned, not set: :class:`BtydModel` keeps a bounded, uniform sample of the
accounts' current summaries (the ``sample_size`` accounts with the smallest hash of their id: the same
accounts whatever the order they are seen in) and refits ``r, alpha, a, b`` by maximum likelihood
(:func:`scipy.optimize.minimize`) every ``refit_every_days``. Per account nothing beyond ``x`` (the count
of active days) is stored; ``t_x`` and ``T`` come from days the monitor already keeps.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from detectors.blas import one_blas_thread

# Starting point of the fit and the parameters used before the first fit: a weak, diffuse population.
DEFAULT_PARAMS: tuple[float, float, float, float] = (1.0, 2.0, 0.5, 10.0)  # r, alpha, a, b


def p_alive(x: float, t_x: float, T: float, params: tuple[float, float, float, float]) -> float:
    """MBG/NBD probability that an account with summary ``(x, t_x, T)`` is still alive.

    Parameters
    ----------
    x
        Repeat active days (active days after the first one).
    t_x, T
        Days from the first active day to the last one, and to now (``T >= t_x``).
    params
        Population parameters ``(r, alpha, a, b)``.

    Examples
    --------
    >>> params = (1.0, 2.0, 0.5, 10.0)
    >>> round(p_alive(40, 60, 61, params), 2)  # active every 1.5 days, seen yesterday
    0.98
    >>> round(p_alive(40, 60, 80, params), 3)  # the same account after 20 silent days
    0.001
    >>> p_alive(2, 50, 60, params) > 0.9  # a rare visitor 10 days after its last visit: fine
    True
    """
    r, alpha, a, b = params
    log_ratio = math.log(a / (b + x)) + (r + x) * (math.log(alpha + T) - math.log(alpha + t_x))
    if log_ratio > 50:
        return 0.0
    return 1.0 / (1.0 + math.exp(log_ratio))


def p_inactive(
    x: float, t_x: float, T: float, horizon: float, params: tuple[float, float, float, float]
) -> float:
    """MBG/NBD probability that an account shows no activity at all in the next ``horizon`` days.

    Either it has already left (``1 - P(alive)``), or it is alive and its Poisson rate, whose posterior
    given ``x`` activities in ``T`` days is Gamma(``r + x``, ``alpha + T``), produces nothing in the horizon:
    ``((alpha + T) / (alpha + T + horizon)) ** (r + x)`` (in MBG/NBD an account can only leave at an
    activity, so none in the horizon means none). This is the quantity "inactive in the next 30 days"
    outcomes ask for; unlike P(alive) it tells a rare visitor (likely quiet for a month, though alive) from
    a frequent one.

    >>> params = (1.0, 2.0, 0.5, 10.0)
    >>> round(p_inactive(40, 60, 61, 30, params), 2)  # active every 1.5 days, seen yesterday
    0.02
    >>> round(p_inactive(2, 50, 60, 30, params), 2)  # two repeat visits in 60 days: a quiet month is likely
    0.35
    >>> p_inactive(0, 0, 90, 30, params) > p_inactive(0, 0, 10, 30, params)  # one-time visitors fade
    True
    """
    r, alpha = params[0], params[1]
    alive = p_alive(x, t_x, T, params)
    quiet_if_alive = math.exp((r + x) * (math.log(alpha + T) - math.log(alpha + T + horizon)))
    return 1.0 - alive * (1.0 - quiet_if_alive)


def negative_log_likelihood(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, penalty: float = 1e-3
) -> float:
    """Mean MBG/NBD negative log-likelihood of summaries, parameters on the log scale (lightly penalised)."""
    r, alpha, a, b = np.exp(np.clip(log_params, -8.0, 8.0))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x + 1.0) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    ll = a1 + a2 + a3 + np.logaddexp(a4, 0.0)
    return float(-ll.mean() + penalty * float(np.sum(log_params**2)))


def fit_params(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, start: tuple[float, float, float, float] = DEFAULT_PARAMS
) -> tuple[float, float, float, float]:
    """Maximum-likelihood ``(r, alpha, a, b)`` of the summaries (rounded to 4 significant digits).

    The fit runs on one BLAS thread (:func:`~detectors.blas.one_blas_thread`).

    >>> rng = np.random.default_rng(1)
    >>> T = np.full(300, 100.0)
    >>> x = rng.poisson(20, 300).astype(float)   # alive all along, ~20 repeat days in 100
    >>> t_x = T - rng.exponential(5, 300).clip(0, 99)
    >>> r, alpha, a, b = fit_params(x, t_x, T)
    >>> 0.1 < r / alpha < 0.3   # the mean activity rate per day is recovered
    True
    """
    with one_blas_thread():
        result = minimize(
            negative_log_likelihood,
            np.log(np.asarray(start, dtype=float)),
            args=(x, t_x, T),
            method="L-BFGS-B",
            bounds=[(-6.0, 6.0)] * 4,
        )
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return (_sig(r), _sig(alpha), _sig(a), _sig(b))


def _sig(value: float) -> float:
    return float(f"{value:.4g}")


# How far (days per sampled account) the running sum of spans may fall below the threshold before the
# mean is taken from the rows: rounding of the sum stays many orders of magnitude below it.
SPAN_SLACK = 0.5


def _rank(account_id: str) -> int:
    return zlib.crc32(account_id.encode())


class BtydModel:
    """Worker-wide MBG/NBD: a bounded sample of account summaries and population parameters refitted on it.

    Parameters
    ----------
    sample_size
        Accounts kept in the sample (those with the smallest CRC32 of their id, so the sample is uniform,
        deterministic and independent of the order accounts are seen in).
    refit_every_days
        Days between refits; a refit needs at least ``min_accounts`` summaries.
    min_accounts
        Summaries needed before the first fit; until then :meth:`score_one` uses :data:`DEFAULT_PARAMS`
        and :attr:`fitted` is False.
    min_span_days
        Mean observation span ``T`` of the sample needed before a fit: when the data has just started, every
        account looks new and the parameters would describe the start of the file, not the customers.

    Examples
    --------
    >>> model = BtydModel(sample_size=50, min_accounts=20)
    >>> for i in range(60):  # accounts active every ~2 days for 90 days; a third stopped at day 60
    ...     model.learn_one(f"a{i}", x=30 if i % 3 else 20, t_x=89 if i % 3 else 60, T=90, day=100)
    >>> model.fitted, len(model.sample)
    (True, 50)
    >>> round(model.score_one(30, 89, 90), 2), round(model.score_one(20, 60, 90), 2)
    (0.98, 0.0)
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 24_000
    __slots__ = (
        "_spans",
        "_worst",
        "fitted_day",
        "min_accounts",
        "min_span_days",
        "params",
        "refit_every_days",
        "sample",
        "sample_size",
    )

    def __init__(
        self,
        sample_size: int = 600,
        refit_every_days: int = 7,
        min_accounts: int = 50,
        min_span_days: float = 28.0,
    ) -> None:
        self.sample_size = sample_size
        self.refit_every_days = refit_every_days
        self.min_accounts = min_accounts
        self.min_span_days = min_span_days
        self.params: tuple[float, float, float, float] = DEFAULT_PARAMS
        self.fitted_day: int | None = None
        # account id -> [x, t_x, T]; at most sample_size entries.
        self.sample: dict[str, list[float]] = {}
        self._worst: tuple[int, str] | None = None  # the sample's largest (rank, id), cached
        # The sum of the sample's T, kept as the sample changes: the census offers every account, so the
        # test of the sample's mean span before a fit runs once per account (see _may_fit).
        self._spans = 0.0

    def clone(self) -> BtydModel:
        return BtydModel(self.sample_size, self.refit_every_days, self.min_accounts, self.min_span_days)

    @property
    def fitted(self) -> bool:
        return self.fitted_day is not None

    def learn_one(self, account_id: str, *, x: float, t_x: float, T: float, day: int) -> None:
        """Offer an account's current summary; refit when due (at most once per ``refit_every_days``)."""
        sample = self.sample
        held = sample.get(account_id)
        if held is not None:  # the same ids: the largest rank stays
            self._spans -= held[2]
        elif len(sample) < self.sample_size:
            self._worst = None
        else:
            if self._worst is None:
                worst = max(sample, key=_rank)
                self._worst = (_rank(worst), worst)
            if _rank(account_id) >= self._worst[0]:
                self._may_fit(day)
                return
            self._spans -= sample.pop(self._worst[1])[2]
            self._worst = None
        sample[account_id] = [x, t_x, T]
        self._spans += T
        self._may_fit(day)

    def _may_fit(self, day: int) -> None:
        """Refit when due and the sample's mean span is long enough.

        The mean is taken from the sample's rows, as the fit reads them; the running sum only rules out a
        sample clearly too young (by more than :data:`SPAN_SLACK` days a row, far beyond its rounding), so
        a young population's census no longer builds the sample's array once per account.
        """
        sample = self.sample
        if (
            len(sample) >= self.min_accounts
            and (self.fitted_day is None or day - self.fitted_day >= self.refit_every_days)
            and self._spans >= (self.min_span_days - SPAN_SLACK) * len(sample)
        ):
            rows = np.array(list(sample.values()), dtype=float)
            if rows[:, 2].mean() >= self.min_span_days:
                self.params = fit_params(rows[:, 0], rows[:, 1], rows[:, 2], self.params)
                self.fitted_day = day

    def forget(self, account_id: str) -> None:
        """Drop an account from the sample (it no longer belongs to the population the model describes)."""
        held = self.sample.pop(account_id, None)
        if held is not None:
            self._spans -= held[2]
            self._worst = None

    def score_one(self, x: float, t_x: float, T: float) -> float:
        """P(alive) of a summary under the current population parameters."""
        return p_alive(x, t_x, T, self.params)

    def inactive_one(self, x: float, t_x: float, T: float, horizon: float) -> float:
        """P(no activity in the next ``horizon`` days) of a summary (:func:`p_inactive`)."""
        return p_inactive(x, t_x, T, horizon, self.params)

    def to_state(self) -> dict[str, Any]:
        return {"p": list(self.params), "d": self.fitted_day, "s": self.sample}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> BtydModel:
        model = cls(**params)
        r, alpha, a, b = state["p"]
        model.params = (r, alpha, a, b)
        model.fitted_day = state["d"]
        model.sample = {k: list(v) for k, v in state["s"].items()}
        model._spans = float(sum(row[2] for row in model.sample.values()))
        return model
