"""Churn risk: the features, the outcome-free prior and the global online model.

Risk is the probability that an account cancels (or, when ``DetectorConfig.inactivity_is_churn``, stops all
activity) within the horizon (30 days by default). One global :class:`RiskModel` (a River logistic
regression) learns it online from outcomes as they arrive: a scored snapshot of an account becomes a
positive when the outcome follows within the horizon, and a negative once the account has survived it.

Before there are outcomes, risk comes from :class:`PriorScorer`, which combines three independent pieces of
evidence as a noisy-OR (the account churns if any of them plays out):

* the event signals (drops, silence, support, billing; :data:`EVENT_FEATURES`) through a logistic whose
  weights say what each signal means (set by hand, unchanged from earlier releases);
* ``lapsed``: 1 - P(alive) of the buy-till-you-die model (:mod:`detectors.btyd`), whose population
  parameters are fitted on the data itself;
* ``low_engagement``: the account's engagement percentile within its plan (:mod:`detectors.engagement`),
  as ``2 * base rate * (1 - percentile)``: the base rate spread over accounts by rank, no weight involved.

The regression takes the prior's log-odds lift over its base rate as one input plus every feature, all
starting at weight 0 (intercept: the prior's base rate), so what it learns comes from outcomes only: on
data unlike the one the prior's event weights were set on, the prior is not a starting point it has to
unlearn (anchored at the prior, it ranked the tuning shapes and simulator no better: 0.827 / 0.817 vs
0.832 / 0.818 AUC). It may still learn to use the prior's lift where that predicts outcomes. Scoring hands
over gradually: the log-odds are ``(1 - w) * prior + w * learned`` with ``w = positives / min_positives``
(capped at 1).

Drop, silence, support and billing features are normalised per account (ratios against the account's own
baseline, silence in units of its own usual gap); level features are percentiles among accounts of the
same plan. All are >= 0 and 0 means "nothing unusual".

Size: ~520 lines: the model, its mixture of experts and its state round-trip are one object; the sweep
scores every account through it, so the coefficients it reads per account are cached here (issue 15). The
batch refit's sample and fit, and the gate that says when the refit is off its base rate, are
:mod:`detectors.refit`; only when to refit, and the ``sgd`` expert's say, are decided here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from river import linear_model, optim

from detectors.experts import SIGNAL_EXPERTS, ExpertWeights, SignalExpert
from detectors.prior import PriorScorer, _logit, _sigmoid
from detectors.ranking import RankWeights
from detectors.refit import CalibrationGate, RefitSample

FEATURES: tuple[str, ...] = (
    "usage_drop",  # 1 - recent usage / expected usage, in [0, 1]
    "users_drop",  # the same for daily active users
    "key_drop",  # the same for key events (tracked events other than the day's most common name)
    "drop_weeks",  # weeks since a sustained drop was flagged (capped at 8)
    "abrupt",  # how deep the flagged drop was in its first 3 days, in [0, 1]: vacations start abruptly
    "decline",  # 1 - usage of the last 2 weeks / usage 4-8 weeks ago, in [0, 1]
    "silence",  # how far the current silence exceeds the account's usual gap, in spreads (capped at 10)
    "ticket_burst",  # log1p(tickets in 14 days beyond twice the account's usual rate)
    "urgent",  # urgent/high tickets + escalations in 14 days (capped at 8)
    "low_csat",  # (3.5 - mean CSAT over 30 days) weighted by how many ratings back it, in [0, 2.5]
    "payment_failed",  # failed payments in 30 days (capped at 4)
    "payment_unresolved",  # weeks since a failed payment with no success after it (capped at 2)
    "mrr_drop",  # 1 - MRR / recent peak MRR, in [0, 1] (downgrades)
    # Level, recency and trend features (detectors.population); appended: snapshots store feature indices.
    "lapsed",  # 1 - P(alive) of the MBG/NBD model fitted on the population, in [0, 1]
    "low_engagement",  # 1 - percentile of EW usage per day among accounts of the same plan, in [0, 1]
    "low_depth",  # 1 - percentile of EW usage per active user and day within the plan, in [0, 1]
    "infrequent",  # 1 - EW share of active days, in [0, 1]
    "recency",  # log1p(days since the last active day) / log(31), capped at 2
    "new_account",  # 1 - tenure / 90 days (0 from 90 on) less the base's mean of it that day, in [0, 1]
    "trend_4w",  # share of the weekly level lost over 4 weeks (least-squares slope * 4), in [0, 1]
    "trend_8w",  # the same over 8 weeks, in [0, 1]
    "low_activity",  # 1 - percentile of EW usage per day among all accounts, in [0, 1]
    "inactive_ahead",  # MBG/NBD P(no activity in the next horizon), irregular accounts, in [0, 1]
)
EVENT_FEATURES = FEATURES[:13]
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}


def _refit_sample() -> RefitSample:
    """The refit's sample of what the ``learned`` regression reads: the prior's lift and every feature."""
    return RefitSample(("prior", *FEATURES))


class RiskModel:
    """The global online risk model: a mixture of experts weighed by how well each ranks recent outcomes.

    The experts (:mod:`detectors.experts`): ``learned``, a River logistic regression over the prior's lift and
    every feature; ``prior``, the outcome-free :class:`PriorScorer`; and the small calibrated
    :class:`~detectors.experts.SignalExpert` s of :data:`~detectors.experts.SIGNAL_EXPERTS` (recency, BTYD,
    level, trend, RFM, the prior's lift) and, with refits, ``sgd``: an SGD regression over the same inputs as
    ``learned``, with a say only where the refitted one is off its base's outcome rate. The mixture is the
    average of their probabilities weighed by how well each ranks recent labelled outcomes (AUC over
    positives and negatives of the same snapshot week,
    :class:`~detectors.ranking.RankWeights`) times how well each predicts them (Hedge on the log-loss, capped
    for an expert that clearly out-ranks the log-loss leader): an expert must both rank and predict, and a
    well calibrated expert that ranks at chance (ChurnSim's ``learned``) cannot outvote a clear ranking lead.
    Scoring hands over from the prior to the mixture as positives arrive: the log-odds are
    ``(1 - w) * prior + w * mixture`` with ``w = positives / min_positives`` (capped at 1); with a handful of
    positives, calibrated experts that barely rank yet would otherwise outweigh the prior.

    Parameters
    ----------
    min_positives
        Positive outcomes after which the mixture alone scores.
    learning_rate
        Constant SGD step for the weights and the intercepts (every expert's).
    l2
        L2 penalty of the ``learned`` regression (keeps weights of rarely-seen features from running away).
    prior
        The outcome-free scorer; its log-odds lift is an input of the regressions (starting weight 0).
    weigh_by
        ``"both"`` (default): the product of the rank weights (each expert's AUC on recent outcomes, positives
        against negatives of the same snapshot week, :class:`~detectors.ranking.RankWeights`) and the log-loss
        weights (decayed prequential log-loss, :class:`~detectors.experts.ExpertWeights`) with ``eta``
        ramped from 0 to its value over the hand-over (``eta * learned_share``); ``"rank"``: the rank
        weights alone; ``"loss"``: the log-loss weights alone (the criterion before issue 14). Both are
        always tracked; ``weigh_by`` says which scores.
    rank_temperature
        Rank weights: ``exp(-(best AUC - AUC_k) / (rank_temperature * SE))``.
    eta, half_life
        Log-loss weights: ``exp(-eta * loss)``, losses decayed to half after ``half_life`` outcomes
        (0: never).
    loss_cap
        With ``weigh_by="both"``: the log-loss factor divides the weight of an expert that ranks the
        matched outcomes clearly better than the log-loss leader (by :attr:`RANK_CLEAR` SE) by no more
        than ``exp(loss_cap)`` (default 3: 20x; None: never capped, as before the sixth pass). So a clear
        ranking lead decides, and the log-loss still decides between experts that rank alike. Uncapped,
        ChurnSim's ``learned`` regression kept the mixture on a log-loss lead worth a factor of ~500 while
        ranking at chance; capped for every expert, answers to alerts taught the regression a ranking the
        mixture then shared out (``tests/test_answer_learning.py`` lost its gain).
    refit_every
        When > 0, the ``learned`` regression keeps a sample of its labelled inputs
        (:class:`~detectors.refit.RefitSample`) and :meth:`refit_if_due` replaces its weights by a batch fit
        of the sample once this many outcomes were learned since the last; SGD stops after the first fit
        (``DetectorConfig.refit_every``, 200 there; 0 here: SGD only).
    keeps_sgd
        With refits: an SGD regression over the same inputs (a :class:`~detectors.experts.SignalExpert`
        named ``sgd``) learns every outcome and is an expert of the mixture from the first fit on (weight 0
        before: until then it repeats the ``learned`` regression; ``DetectorConfig.refit_keeps_sgd``).
    sgd_gate
        With ``keeps_sgd``: the ``sgd`` expert keeps weight 0 while the refitted regression predicts the
        outcomes' rate within this factor since the first fit (:class:`~detectors.refit.CalibrationGate`;
        ``DetectorConfig.refit_sgd_gate``; None: no gate).

    Examples
    --------
    >>> model = RiskModel(min_positives=2)
    >>> model.using_prior, model.predict_proba_one({}) == model.prior.predict_proba_one({})
    (True, True)
    >>> for _ in range(50):
    ...     model.learn_one({"recency": 1.5, "low_engagement": 0.9}, True)
    ...     model.learn_one({"low_engagement": 0.1}, False)
    >>> model.using_prior, model.n_positives, model.n_negatives
    (False, 50, 50)
    >>> model.predict_proba_one({"recency": 1.5, "low_engagement": 0.9}) > model.predict_proba_one({})
    True
    >>> weights = model.expert_weights()  # ranks perfectly and predicts best: the regression
    >>> round(sum(weights.values()), 6), sorted(k for k, v in weights.items() if v > 0.1)
    (1.0, ['learned'])
    >>> by_rank = RiskModel(min_positives=2, weigh_by="rank")  # ranking alone: every perfect ranker shares
    >>> for _ in range(50):
    ...     by_rank.learn_one({"recency": 1.5, "low_engagement": 0.9}, True)
    ...     by_rank.learn_one({"low_engagement": 0.1}, False)
    >>> sorted(k for k, v in by_rank.expert_weights().items() if v > 0.1)
    ['learned', 'prior', 'prior_lift', 'recency', 'rfm']
    >>> RiskModel.from_state(model.to_state()).to_state() == model.to_state()
    True
    """

    # One model per worker, saved with the worker's state next to the population (50 kB budget), not per
    # account: ~2.3 kB of experts and up to ~25 kB of rank reservoir (at most 64 matched and 128 waiting
    # positives and 128 negatives, zeros written as 0; 22 kB at the end of a tuning file, 24 kB at most).
    # With refits, plus the sample's own (RefitSample.STATE_BUDGET_BYTES, 400 kB; ~150 kB on a tuning file).
    STATE_BUDGET_BYTES: ClassVar[int] = 30_000
    RANK_CLEAR = 2.0  # SEs of matched AUC by which an expert must out-rank the log-loss leader to be capped
    __slots__ = (
        "_learned",
        "_lr",
        "_sgd_index",
        "_shares",
        "eta",
        "experts",
        "gate",
        "half_life",
        "l2",
        "learning_rate",
        "loss_cap",
        "min_positives",
        "mixture",
        "n_negatives",
        "n_positives",
        "prior",
        "rank_temperature",
        "ranking",
        "refit_every",
        "refitted",
        "sample",
        "since_refit",
        "weigh_by",
    )

    def __init__(
        self,
        *,
        min_positives: int = 30,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        prior: PriorScorer | None = None,
        eta: float = 1.0,
        half_life: float = 2_000.0,
        weigh_by: str = "both",
        rank_temperature: float = 0.5,
        loss_cap: float | None = 3.0,
        refit_every: int = 0,
        keeps_sgd: bool = False,
        sgd_gate: float | None = None,
    ) -> None:
        self.min_positives = min_positives
        self.refit_every = refit_every
        self.sample = _refit_sample() if refit_every > 0 else None
        self.since_refit = 0
        self.refitted = False  # the learned regression's weights come from a batch fit (no more SGD)
        self.learning_rate = learning_rate
        self.l2 = l2
        self.eta = eta
        self.half_life = half_life
        self.weigh_by = weigh_by
        self.rank_temperature = rank_temperature
        self.loss_cap = loss_cap
        self.prior = prior if prior is not None else PriorScorer()
        self.n_positives = 0
        self.n_negatives = 0
        self._lr = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate),
            l2=l2,
            intercept_init=self.prior.intercept,
            intercept_lr=learning_rate,
        )
        self._lr._weights["prior"] = 0.0
        for name in FEATURES:
            self._lr._weights[name] = 0.0
        self.experts = [
            SignalExpert(name, inputs, intercept=self.prior.intercept, learning_rate=learning_rate)
            for name, inputs in SIGNAL_EXPERTS
        ]
        self._sgd_index: int | None = None  # the sgd expert's place in the mixture (keeps_sgd)
        self.gate = CalibrationGate(sgd_gate) if keeps_sgd and sgd_gate is not None else None  # sgd's only
        if keeps_sgd:
            self.experts.append(
                SignalExpert(
                    "sgd", ("prior", *FEATURES), intercept=self.prior.intercept, learning_rate=learning_rate
                )
            )
            self._sgd_index = len(self.experts) + 1  # after learned and prior: the last expert
        names = ("learned", "prior", *(e.name for e in self.experts))
        self.mixture = ExpertWeights(names, eta=eta, half_life=half_life)
        self.ranking = RankWeights(names, ("prior", *FEATURES), temperature=rank_temperature)
        self._shares: list[float] | None = None  # _weights() until the next learn_one (a sweep's accounts)
        self._learned: tuple[float, dict[str, float]] | None = None  # see _learned_terms

    def clone(self) -> RiskModel:
        """A fresh model with the same parameters and prior (no outcomes learned)."""
        return RiskModel(
            min_positives=self.min_positives,
            learning_rate=self.learning_rate,
            l2=self.l2,
            prior=self.prior,
            eta=self.eta,
            half_life=self.half_life,
            weigh_by=self.weigh_by,
            rank_temperature=self.rank_temperature,
            loss_cap=self.loss_cap,
            refit_every=self.refit_every,
            keeps_sgd=self._sgd_index is not None,
            sgd_gate=self.gate.factor if self.gate is not None else None,
        )

    @property
    def using_prior(self) -> bool:
        """True until ``min_positives`` positives: the prior still has a say in the score."""
        return self.n_positives < self.min_positives

    @property
    def learned_share(self) -> float:
        """``w``: the mixture's share of the log-odds (0 before outcomes, 1 from ``min_positives``)."""
        return min(1.0, self.n_positives / self.min_positives) if self.min_positives > 0 else 1.0

    def expert_weights(self) -> dict[str, float]:
        """The mixture's current weight of each expert (they sum to 1)."""
        return dict(zip(self.mixture.names, self._current_weights(), strict=True))

    def _current_weights(self) -> list[float]:
        """:meth:`_weights`, computed once between two :meth:`learn_one` (they change only by learning)."""
        if self._shares is None:
            self._shares = self._weights()
        return self._shares

    def _weights(self) -> list[float]:
        weights = self._unmasked_weights()
        if self._sgd_index is None or self._sgd_open():
            return weights
        weights[self._sgd_index] = 0.0
        total = sum(weights)
        return [w / total for w in weights]

    def _sgd_open(self) -> bool:
        """Whether the sgd expert has a say: after the first fit (before, it repeats the learned regression)
        and, with ``sgd_gate``, while the refit's mean prediction is off the outcome rate by that factor."""
        return self.refitted and (self.gate is None or self.gate.open)

    def _unmasked_weights(self) -> list[float]:
        if self.weigh_by == "loss":
            return self.mixture.weights()
        if self.weigh_by == "rank":
            return self.ranking.weights(self._lifts)
        # Log-loss with eta ramped up over the hand-over: a handful of skewed outcomes cannot hand it all
        # to one expert (two orderings of the same few outcomes gave learned 0.999 vs prior 0.961).
        by_loss = self.mixture.weights(self.learned_share, self._loss_caps())
        raw = [a * b for a, b in zip(self.ranking.weights(self._lifts), by_loss, strict=True)]
        total = sum(raw)
        return [r / total for r in raw]

    def _loss_caps(self) -> list[float] | None:
        """How far the log-loss may push each expert down: ``loss_cap`` for an expert that ranks the
        matched outcomes clearly better (by ``RANK_CLEAR`` SE) than the log-loss leader, else no limit.
        So the log-loss still chooses among experts that rank alike (answers to alerts teach the
        ``learned`` regression, and it keeps the weight they earned), but cannot outvote a clear ranking
        lead (ChurnSim: the regression led the log-loss by a factor of ~500 and ranked at chance)."""
        if self.loss_cap is None:
            return None
        aucs, se = self.ranking.ranked(self._lifts)
        losses = self.mixture.losses
        leader = aucs[losses.index(min(losses))]
        return [self.loss_cap if a > leader + self.RANK_CLEAR * se else math.inf for a in aucs]

    def _lifts(self, inputs: Mapping[str, float]) -> list[float]:
        """Every expert's log-odds lift over its own intercept (what it ranks by), in the mixture's order."""
        weights = self._lr._weights
        learned = sum(weights.get(k, 0.0) * v for k, v in inputs.items())
        own = (e.logodds(inputs) - float(e._lr.intercept) for e in self.experts)
        return [learned, inputs["prior"], *own]

    def _inputs(self, x: Mapping[str, float]) -> dict[str, float]:
        # The prior enters as its lift over its own base rate (0 for an unremarkable account), so the
        # regression's intercept carries the base rate and the two are not collinear.
        inputs = dict(x)
        inputs["prior"] = _logit(self.prior.predict_proba_one(x)) - self.prior.intercept
        return inputs

    def _learned_terms(self) -> tuple[float, dict[str, float]]:
        """The ``learned`` regression's intercept and weights (a plain dict), read once between two
        :meth:`learn_one` (a sweep scores every account with the same ones; issue 15)."""
        if self._learned is None:
            self._learned = (float(self._lr.intercept), self._lr._weights.to_dict())
        return self._learned

    def _predictions(self, inputs: Mapping[str, float]) -> list[float]:
        """Every expert's probability, in the mixture's order."""
        intercept, weights = self._learned_terms()
        learned = intercept + sum([weights.get(k, 0.0) * v for k, v in inputs.items()])
        prior = inputs["prior"] + self.prior.intercept
        out = [_sigmoid(learned), _sigmoid(prior)]
        for expert in self.experts:  # expert.predict_proba_one(inputs), written out (issue 15)
            intercept, terms = expert.coefficients()
            out.append(_sigmoid(intercept + sum([w * inputs.get(f, 0.0) for f, w in terms])))
        return out

    def learn_one(self, x: Mapping[str, float], y: bool, weight: float = 1.0, day: int | None = None) -> None:
        """Learn one labelled snapshot (features as scored, outcome as observed; ``weight`` scales its step:
        answers to alerts are labels of a configurable weight; ``day``: the epoch day the features were
        scored, which the rank weights match outcomes by). Every expert is charged the log-loss of its
        prediction before it learns."""
        inputs = self._inputs(x)
        self._shares = None
        predictions = self._predictions(inputs)
        self.mixture.update(predictions, bool(y), weight)
        if self.refitted and self.gate is not None:
            self.gate.learn_one(predictions[0], bool(y), weight)
        if not self.refitted:
            self._lr.learn_one(inputs, bool(y), w=weight)
        if self.sample is not None:
            self.sample.add(inputs, bool(y), weight)
            self.since_refit += 1
        for expert in self.experts:
            expert.learn_one(inputs, bool(y), weight)
        self.ranking.update(inputs, bool(y), weight, day)
        if y:
            self.n_positives += 1
        else:
            self.n_negatives += 1
        self._learned = None  # after every part learned (_predictions above read the weights before)

    def use_refits(self, refit_every: int) -> None:
        """Refit at this cadence from now on (a restored model takes the worker's setting): a model without
        a sample starts one; 0 drops it (SGD goes on from the last fit's weights)."""
        self.refit_every = refit_every
        if refit_every <= 0:
            self.sample, self.refitted, self.since_refit = None, False, 0
        elif self.sample is None:
            self.sample = _refit_sample()

    def refit_if_due(self) -> bool:
        """Refit the learned regression on its sample when ``refit_every`` outcomes were learned since the
        last fit (the monitor asks after each batch of outcomes: one fit per sweep, however many outcomes
        the sweep learned); True when it did."""
        sample = self.sample
        if sample is None or self.since_refit < self.refit_every:
            return False
        fitted = sample.fit()
        if fitted is None:
            return False
        intercept, weights = fitted
        self._lr.intercept = intercept
        for name, weight in weights.items():
            self._lr._weights[name] = weight
        self.refitted = True
        self.since_refit = 0
        self._learned = None
        self._shares = None
        self.ranking.changed()  # the learned expert's scores of the kept outcomes moved
        return True

    def predict_proba_one(self, x: Mapping[str, float]) -> float:
        w = self.learned_share
        if w == 0.0:
            return self.prior.predict_proba_one(x)
        inputs = self._inputs(x)
        predictions = self._predictions(inputs)
        mixed = sum(share * p for share, p in zip(self._current_weights(), predictions, strict=True))
        if w == 1.0:
            return mixed
        return _sigmoid((1.0 - w) * (inputs["prior"] + self.prior.intercept) + w * _logit(mixed))

    def _expert_contributions(
        self, x: Mapping[str, float], prior: Mapping[str, float]
    ) -> list[dict[str, float]]:
        """Each expert's log-odds contributions, in the mixture's order; an expert reading the prior's lift
        passes what it gives the lift on to the prior's own contributions."""
        inputs = self._inputs(x)
        lift = inputs["prior"]
        weights = self._lr._weights
        learned = {k: weights.get(k, 0.0) * v for k, v in inputs.items() if v}
        out = []
        for own in (learned, dict(prior), *(e.contributions(inputs) for e in self.experts)):
            on_lift = own.pop("prior", None)
            if on_lift is not None and lift:
                for k, v in prior.items():
                    own[k] = own.get(k, 0.0) + on_lift / lift * v
            out.append(own)
        return out

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Log-odds each feature adds: the experts' contributions averaged with the mixture's weights,
        blended with the prior's as the score is (``(1 - w) * prior + w * mixture``)."""
        prior = self.prior.contributions(x)
        w = self.learned_share
        if w == 0.0:
            return prior
        out = {k: (1.0 - w) * v for k, v in prior.items()}
        for share, part in zip(self._current_weights(), self._expert_contributions(x, prior), strict=True):
            for k, v in part.items():
                out[k] = out.get(k, 0.0) + w * share * v
        return out

    def to_state(self) -> dict[str, Any]:
        """JSON-compatible state: counts, learned weights and intercept, the experts and their losses (the
        prior and parameters too)."""
        params: dict[str, Any] = {
            "min_positives": self.min_positives,
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "eta": self.eta,
            "half_life": self.half_life,
            "weigh_by": self.weigh_by,
            "rank_temperature": self.rank_temperature,
            "loss_cap": self.loss_cap,
        }
        state: dict[str, Any] = {
            "params": params,
            "prior": self.prior.to_state(),
            "n_pos": self.n_positives,
            "n_neg": self.n_negatives,
            "weights": {k: float(v) for k, v in self._lr._weights.items()},
            "intercept": float(self._lr.intercept),
            "n_iter": int(self._lr.optimizer.n_iterations),
            "experts": [e.to_state() for e in self.experts],
            "mixture": self.mixture.to_state(),
            "ranking": self.ranking.to_state(),
        }
        if self.sample is not None:
            params["refit_every"] = self.refit_every
            state["refit"] = [self.sample.to_state(), self.since_refit, self.refitted]
        if self._sgd_index is not None:
            params["keeps_sgd"] = True
        if self.gate is not None:
            params["sgd_gate"] = self.gate.factor
            state["gate"] = self.gate.to_state()
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RiskModel:
        """The model of :meth:`to_state` (a state saved before the mixture gets fresh experts)."""
        model = cls(**state["params"], prior=PriorScorer.from_state(state["prior"]))
        model.n_positives = int(state["n_pos"])
        model.n_negatives = int(state["n_neg"])
        for name, weight in state["weights"].items():
            model._lr._weights[name] = float(weight)
        model._lr.intercept = float(state["intercept"])
        model._lr.optimizer.n_iterations = int(state["n_iter"])
        model._learned = None
        saved = {e["name"]: e for e in state.get("experts", ())}
        model.experts = [
            SignalExpert.from_state(saved[e.name]) if e.name in saved else e for e in model.experts
        ]
        if "mixture" in state:
            model.mixture.restore(state["mixture"])
        if "ranking" in state:
            model.ranking.restore(state["ranking"])
        if model.gate is not None and "gate" in state:
            model.gate = CalibrationGate.from_state([model.gate.factor, *state["gate"][1:]])
        if model.sample is not None and "refit" in state:
            sample, model.since_refit, model.refitted = state["refit"]
            model.sample.restore(sample)
        return model
