"""Small calibrated risk experts and their mixture weights, chosen by how well each predicts the outcomes.

:class:`~detectors.risk.RiskModel` scores with a mixture: its learned logistic regression over every
feature, the outcome-free prior, and a few :class:`SignalExpert` s, each a River logistic regression over
one or two features that a simple churn score would use on its own (recency, the buy-till-you-die
probabilities, the engagement level, the slow trend; :data:`SIGNAL_EXPERTS`). Every expert predicts each
outcome *before* learning it; :class:`ExpertWeights` keeps each expert's exponentially decayed log-loss on
those predictions and weighs the experts by ``exp(-eta * loss)`` (exponentially weighted averaging, "Hedge",
with the log-loss; ``eta = 1`` is Bayesian model averaging). So the score follows whichever expert predicts
*this* data best: on a customer base where "days since last activity" is what tells churners apart, the
recency expert takes over, and the mixture cannot do much worse than the best of its experts (at most
``log(number of experts) / eta`` nats of cumulative log-loss behind it, before the decay).

Since issue 14 :class:`~detectors.risk.RiskModel` scores with weights from how well each expert *ranks*
recent outcomes (:class:`~detectors.ranking.RankWeights`); :class:`ExpertWeights` is still kept, and scores
with ``weigh_by="loss"``. On ChurnSim the ``learned`` regression had the lowest log-loss and ranked at chance,
and a handful of skewed outcomes could hand it (or the prior) almost all the weight.

The single-signal experts exist because one online logistic regression over ~23 correlated inputs does not
recover what its best single inputs know: on real purchase data (CDNOW) ``lapsed``, ``recency`` and
``inactive_ahead`` alone ranked better than the full model (see ``docs/detection.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from river import linear_model, optim

# name -> the features the expert reads. Each is a quantity one of the backtest's simple baselines ranks by
# (streams/offline/baselines.py): days since last activity, BG/NBD P(alive) and expected activity, activity
# in the last 28 days, the 8-week trend; plus recency-frequency-tenure (RFM) and the event signals' prior.
SIGNAL_EXPERTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("recency", ("recency",)),
    ("btyd", ("lapsed", "inactive_ahead")),
    ("level", ("low_activity",)),
    ("trend", ("trend_4w", "trend_8w")),
    ("rfm", ("recency", "infrequent", "new_account")),
    ("prior_lift", ("prior",)),
)


def log_loss(p: float, y: bool) -> float:
    """Log-loss (nats) of predicting ``p`` for outcome ``y``; ``p`` clipped to [1e-6, 1 - 1e-6].

    >>> round(log_loss(0.5, True), 4), round(log_loss(0.9, False), 4)
    (0.6931, 2.3026)
    """
    p = min(1.0 - 1e-6, max(1e-6, p))
    return -math.log(p if y else 1.0 - p)


class SignalExpert:
    """A calibrated single-signal risk: a River logistic regression over one or two features.

    Parameters
    ----------
    name
        The expert's name (as in :data:`SIGNAL_EXPERTS`).
    features
        The inputs it reads; every other key of ``x`` is ignored.
    intercept
        Starting log-odds (the base rate); weights start at 0, so it learns from outcomes only.
    learning_rate
        Constant SGD step of the weights and the intercept.

    Examples
    --------
    >>> expert = SignalExpert("recency", ("recency",), intercept=-4.0)
    >>> round(expert.predict_proba_one({"recency": 1.0}), 3)  # no outcome yet: the base rate
    0.018
    >>> for _ in range(200):
    ...     expert.learn_one({"recency": 1.5, "silence": 3.0}, True)
    ...     expert.learn_one({"recency": 0.1}, False)
    >>> expert.predict_proba_one({"recency": 1.5}) > 0.5 > expert.predict_proba_one({"recency": 0.1})
    True
    >>> sorted(expert.contributions({"recency": 1.5, "silence": 3.0}))  # only what it reads
    ['recency']
    >>> SignalExpert.from_state(expert.to_state()).to_state() == expert.to_state()
    True
    """

    __slots__ = ("_lr", "_terms", "features", "learning_rate", "name")

    def __init__(
        self, name: str, features: Sequence[str], *, intercept: float, learning_rate: float = 0.05
    ) -> None:
        self.name = name
        self.features = tuple(features)
        self.learning_rate = learning_rate
        self._lr = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), l2=0.0, intercept_init=intercept, intercept_lr=learning_rate
        )
        for feature in self.features:
            self._lr._weights[feature] = 0.0
        self._terms: tuple[float, tuple[tuple[str, float], ...]] | None = None  # see coefficients

    def coefficients(self) -> tuple[float, tuple[tuple[str, float], ...]]:
        """The intercept and ``(feature, weight)`` of :attr:`features`, read from the regression once
        between two :meth:`learn_one` (a sweep scores every account with the same ones; issue 15)."""
        if self._terms is None:
            weights = self._lr._weights
            self._terms = (float(self._lr.intercept), tuple((f, weights[f]) for f in self.features))
        return self._terms

    def _inputs(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: x.get(f, 0.0) for f in self.features}

    def logodds(self, x: Mapping[str, float]) -> float:
        intercept, terms = self.coefficients()
        return intercept + sum([w * x.get(f, 0.0) for f, w in terms])

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        z = self.logodds(x)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def learn_one(self, x: Mapping[str, float], y: bool, weight: float = 1.0) -> None:
        self._lr.learn_one(self._inputs(x), bool(y), w=weight)
        self._terms = None

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Log-odds each of its features adds to its intercept."""
        weights = self._lr._weights
        return {f: weights[f] * v for f in self.features if (v := x.get(f, 0.0))}

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "lr": self.learning_rate,
            "w": [float(self._lr._weights[f]) for f in self.features],
            "b": float(self._lr.intercept),
            "n": int(self._lr.optimizer.n_iterations),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SignalExpert:
        expert = cls(state["name"], state["features"], intercept=state["b"], learning_rate=state["lr"])
        for feature, weight in zip(expert.features, state["w"], strict=True):
            expert._lr._weights[feature] = float(weight)
        expert._lr.optimizer.n_iterations = int(state["n"])
        expert._terms = None
        return expert


class ExpertWeights:
    """Mixture weights of experts from their exponentially decayed prequential log-loss.

    Parameters
    ----------
    names
        The experts, in a fixed order.
    eta
        Learning rate of the weights: ``weight_k ∝ exp(-eta * loss_k)`` (1 = Bayesian model averaging).
    half_life
        Outcomes after which a loss counts half (the mixture can move to another expert when the data
        changes); 0 = never forget.
    handicap
        Starting loss of each expert (nats; default 0): a prior over the experts, ``∝ exp(-eta * handicap)``.

    Examples
    --------
    >>> mix = ExpertWeights(("good", "bad"), eta=1.0, half_life=0)
    >>> mix.weights()
    [0.5, 0.5]
    >>> for y in [True, False] * 3:
    ...     mix.update([0.8 if y else 0.2, 0.5], y)
    >>> [round(w, 3) for w in mix.weights()]
    [0.944, 0.056]
    """

    __slots__ = ("_decay", "eta", "half_life", "losses", "names")

    def __init__(
        self,
        names: Sequence[str],
        *,
        eta: float = 1.0,
        half_life: float = 0.0,
        handicap: Sequence[float] | None = None,
    ) -> None:
        self.names = tuple(names)
        self.eta = eta
        self.half_life = half_life
        self._decay = 0.5 ** (1.0 / half_life) if half_life > 0 else 1.0
        self.losses = [0.0] * len(self.names) if handicap is None else [float(h) for h in handicap]
        if len(self.losses) != len(self.names):
            raise ValueError(f"{len(self.names)} experts but {len(self.losses)} handicaps")

    def update(self, predictions: Sequence[float], y: bool, weight: float = 1.0) -> None:
        """Charge each expert the log-loss of its prediction (made before it learned ``y``); a label of
        weight ``k`` counts as ``k`` outcomes (in the decay too: weight 0 changes nothing)."""
        decay = self._decay**weight
        self.losses = [
            decay * loss + weight * log_loss(p, y) for loss, p in zip(self.losses, predictions, strict=True)
        ]

    def weights(self, scale: float = 1.0, caps: Sequence[float] | None = None) -> list[float]:
        """The weights, with ``eta`` multiplied by ``scale`` (< 1: closer to uniform); with ``caps``, expert
        ``k`` keeps at least ``exp(-caps[k])`` times the best one's weight (before normalising).

        >>> mix = ExpertWeights(("good", "bad"), eta=1.0)
        >>> mix.update([0.99, 0.01], True)
        >>> [round(w, 3) for w in mix.weights()], [round(w, 3) for w in mix.weights(caps=[1.0, 1.0])]
        ([0.99, 0.01], [0.731, 0.269])
        """
        best = min(self.losses)
        caps = caps if caps is not None else [math.inf] * len(self.losses)
        raw = [
            math.exp(-min(cap, scale * self.eta * (loss - best)))
            for loss, cap in zip(self.losses, caps, strict=True)
        ]
        total = sum(raw)
        return [r / total for r in raw]

    def to_state(self) -> dict[str, Any]:
        return {"names": list(self.names), "loss": list(self.losses)}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take the losses of a saved state (experts it does not know keep their own)."""
        saved = {name: float(loss) for name, loss in zip(state["names"], state["loss"], strict=True)}
        worst = max(saved.values(), default=0.0)  # an expert added since starts as the worst one known
        self.losses = [saved.get(name, worst) for name in self.names]
