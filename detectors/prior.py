"""The outcome-free prior of the risk model: event logistic, P(alive) and engagement percentile as a noisy-OR.

Split from :mod:`detectors.risk` (which re-exports :class:`PriorScorer`); the three pieces of evidence are
described there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["PRIOR_INTERCEPT", "PRIOR_WEIGHTS", "PriorScorer"]

# The prior: log-odds of cancelling within 30 days. The intercept is a ~2% monthly base rate; each weight is
# the log-odds added by one unit of its feature. Set by hand from what each signal means (tuned on simulator
# seeds 1-2 only), e.g. an unrecovered payment failure for a week (+2.4) or a long silence (up to +4.5)
# lift a healthy account into alert territory on their own; a vacation-like drop (~70% for a week or two,
# starting abruptly: the only negative weight) does not, unless other signals pile on.
PRIOR_INTERCEPT = -4.0
PRIOR_WEIGHTS: dict[str, float] = {
    "usage_drop": 0.8,
    "users_drop": 1.2,
    "key_drop": 0.4,
    "drop_weeks": 0.6,
    "abrupt": -1.5,
    "decline": 2.0,
    "silence": 0.45,
    "ticket_burst": 0.6,
    "urgent": 0.3,
    "low_csat": 0.7,
    "payment_failed": 0.4,
    "payment_unresolved": 2.4,
    "mrr_drop": 1.2,
}


def _logit(p: float) -> float:
    p = min(1.0 - 1e-9, max(1e-9, p))
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class PriorScorer:
    """The risk before any outcome: event logistic, P(alive) and engagement percentile as a noisy-OR.

    Examples
    --------
    >>> prior = PriorScorer()
    >>> round(prior.predict_proba_one({}), 3)  # nothing unusual: the base rate
    0.018
    >>> round(prior.predict_proba_one({"silence": 10.0}), 2)  # ten spreads of silence
    0.62
    >>> round(prior.predict_proba_one({"lapsed": 0.5}), 2)  # the BTYD model gives it even odds
    0.51
    >>> round(prior.predict_proba_one({"low_engagement": 1.0}), 3)  # the least engaged of its plan
    0.053
    >>> max(prior.contributions({"silence": 10.0, "urgent": 1.0}).items(), key=lambda kv: kv[1])
    ('silence', 4.5)
    """

    STATE_BUDGET_BYTES: ClassVar[int] = 600
    __slots__ = ("intercept", "weights")

    def __init__(
        self, weights: Mapping[str, float] | None = None, intercept: float = PRIOR_INTERCEPT
    ) -> None:
        self.weights = dict(PRIOR_WEIGHTS if weights is None else weights)
        self.intercept = intercept

    def clone(self) -> PriorScorer:
        return PriorScorer(self.weights, self.intercept)

    def learn_one(self, x: Mapping[str, float], y: bool) -> None:
        """A prior does not learn (present for a uniform detector interface)."""

    def _evidence(self, x: Mapping[str, float]) -> tuple[float, float]:
        """The two outcome-free probabilities besides the event logistic: lapsed, and low engagement."""
        base = _sigmoid(self.intercept)
        return x.get("lapsed", 0.0), min(1.0, 2.0 * base * x.get("low_engagement", 0.0))

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        z = self.intercept + sum([self.weights.get(k, 0.0) * v for k, v in x.items()])
        lapsed, low = self._evidence(x)
        return 1.0 - (1.0 - _sigmoid(z)) * (1.0 - lapsed) * (1.0 - low)

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Log-odds each feature adds to the base rate (noisy-OR terms: as if alone with the base rate)."""
        out = {k: self.weights.get(k, 0.0) * v for k, v in x.items() if v}
        base = _sigmoid(self.intercept)
        lapsed, low = self._evidence(x)
        for name, q in (("lapsed", lapsed), ("low_engagement", low)):
            if q > 0:
                out[name] = _logit(1.0 - (1.0 - base) * (1.0 - q)) - self.intercept
        return out

    def to_state(self) -> dict[str, Any]:
        return {"w": self.weights, "b": self.intercept}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PriorScorer:
        return cls(state["w"], state["b"])
