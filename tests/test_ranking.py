"""Rank weights of the risk mixture: experts weighed by how they order outcomes, steady with few outcomes."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import orjson

from detectors.experts import ExpertWeights
from detectors.ranking import RankWeights, auc_of
from detectors.risk import RiskModel
from streams.offline.baselines import auc
from tests.test_experts import recency_stream


def test_auc_of_agrees_with_the_backtests_auc() -> None:
    rng = random.Random(5)
    scores = [round(rng.random(), 1) for _ in range(300)]  # rounded: many ties
    labels = [rng.random() < 0.2 + 0.5 * s for s in scores]
    ours = auc_of(
        [s for s, y in zip(scores, labels, strict=True) if y],
        [s for s, y in zip(scores, labels, strict=True) if not y],
    )
    theirs = auc(scores, labels)
    assert theirs is not None and math.isclose(ours, theirs.auc, abs_tol=1e-6)


def test_a_calibrated_expert_that_cannot_rank_loses_to_one_that_ranks() -> None:
    """ChurnSim's failure: the base rate, well calibrated, beats an over-confident ranker on log-loss."""
    rng = random.Random(2)
    names = ("calibrated", "ranker")
    by_loss, by_rank = ExpertWeights(names, eta=1.0, half_life=2000), RankWeights(names, ("level",))

    def scores(x: Mapping[str, float]) -> list[float]:
        return [0.0, x["level"]]

    for _ in range(3000):
        level = rng.random()
        y = rng.random() < 0.18 * level**2  # churn rises with the level, base rate ~6 %
        ranker = 0.05 + 0.9 * level  # orders accounts right, probabilities far too high
        by_loss.update([0.06, ranker], y)
        by_rank.update({"level": level}, y)
    assert by_loss.weights()[0] > 0.99  # log-loss: the base rate wins
    assert by_rank.weights(scores)[1] > 0.9  # ranking: the ranker wins
    assert by_rank.aucs(scores)[1] > 0.7


def test_few_outcomes_in_any_order_give_the_same_spread_weights() -> None:
    """With a handful of outcomes no expert takes the mixture, and the order they came in does not matter."""
    for seed in range(4):
        stream = recency_stream(random.Random(seed), 4000)
        first = next(i for i in range(len(stream)) if sum(y for _, y in stream[: i + 1]) >= 8) + 1
        outcomes = stream[:first]
        weights = []
        for order in (outcomes, outcomes[::-1], random.Random(1).sample(outcomes, len(outcomes))):
            model = RiskModel()
            for x, y in order:
                model.learn_one(x, y)
            weights.append(model.expert_weights())
        for name in weights[0]:
            assert max(w[name] for w in weights) - min(w[name] for w in weights) < 0.1, weights
        assert max(weights[0].values()) < 0.6, weights[0]


def test_the_reservoir_is_bounded_and_survives_a_round_trip() -> None:
    model = RiskModel()
    for x, y in recency_stream(random.Random(9), 6000):
        model.learn_one(x, y)
    assert len(model.ranking.pos) == 64 and len(model.ranking.neg) == 128
    state = orjson.dumps(model.to_state())
    assert len(state) < RiskModel.STATE_BUDGET_BYTES
    restored = RiskModel.from_state(orjson.loads(state))
    assert restored.expert_weights() == model.expert_weights()
    probe = {"recency": 1.2, "silence": 2.0}
    assert restored.predict_proba_one(probe) == model.predict_proba_one(probe)


def test_a_reservoir_saved_with_other_inputs_still_loads() -> None:
    mix = RankWeights(("a",), ("x", "y"), positives=4, negatives=4)
    mix.restore({"keys": ["x", "z"], "pos": [[1.0, 5.0]], "neg": [[0.5, 0]]})
    assert list(mix.pos) == [(1.0, 0.0)] and list(mix.neg) == [(0.5, 0.0)]
    assert mix.aucs(lambda x: [x["x"]]) == [1.0]
