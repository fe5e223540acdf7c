"""The risk model's mixture of experts: weights follow the expert that predicts the outcomes best."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from detectors.experts import SIGNAL_EXPERTS, ExpertWeights, SignalExpert
from detectors.risk import RiskModel
from streams.offline.baselines import auc


def recency_stream(rng: random.Random, n: int) -> list[tuple[dict[str, float], bool]]:
    """Churn driven by recency alone; the prior's event signals are noise that says nothing about it."""
    out = []
    for _ in range(n):
        recency = rng.uniform(0.0, 2.0)
        x = {"recency": recency, "usage_drop": rng.random(), "silence": rng.uniform(0.0, 6.0)}
        y = rng.random() < 1.0 / (1.0 + math.exp(-(-3.5 + 3.0 * recency)))
        out.append((x, y))
    return out


def test_the_mixture_moves_its_weight_to_the_experts_that_rank_the_stream() -> None:
    rng = random.Random(7)
    model = RiskModel()
    for x, y in recency_stream(rng, 4000):
        model.learn_one(x, y)
    weights = model.expert_weights()
    # Ranked by how they order outcomes: the recency readers and the regression (which learned recency too
    # and ranks alike) share the weight; by log-loss the calibrated regression alone would take it.
    readers = {name for name, inputs in SIGNAL_EXPERTS if "recency" in inputs} | {"learned"}
    assert sum(weights[n] for n in readers) > 0.9, weights
    assert weights["prior"] < 1e-3  # it believes the noise: silence and drops
    test = recency_stream(rng, 2000)
    ranked = auc([model.predict_proba_one(x) for x, _ in test], [y for _, y in test])
    prior = auc([model.prior.predict_proba_one(x) for x, _ in test], [y for _, y in test])
    assert ranked is not None and prior is not None
    assert ranked.auc > 0.75 > prior.auc + 0.15


def test_weights_follow_the_better_expert_and_forget_with_a_half_life() -> None:
    mix = ExpertWeights(("a", "b"), eta=1.0, half_life=50)
    for y in [True, False] * 100:
        mix.update([0.7 if y else 0.3, 0.3 if y else 0.7], y)  # a predicts, b is wrong
    assert mix.weights()[0] > 0.99
    for y in [True, False] * 100:
        mix.update([0.3 if y else 0.7, 0.7 if y else 0.3], y)  # the data changed: now b predicts
    assert mix.weights()[1] > 0.99
    never = ExpertWeights(("a", "b"), eta=1.0, half_life=0)
    never.update([0.9, 0.1], True)
    assert never.losses[1] - never.losses[0] == pytest.approx(math.log(9.0))


def test_no_outcome_scores_and_explains_like_the_prior() -> None:
    model = RiskModel()
    x = {"silence": 6.0, "payment_unresolved": 1.0, "recency": 0.8}
    assert model.predict_proba_one(x) == model.prior.predict_proba_one(x)
    assert model.contributions(x) == model.prior.contributions(x)


def test_a_weight_zero_label_teaches_no_expert() -> None:
    model = RiskModel()
    model.learn_one({"recency": 1.0}, True)
    before = model.to_state()
    model.learn_one({"recency": 1.0}, False, 0.0)
    after = model.to_state()
    assert after["mixture"] == before["mixture"]
    assert after["ranking"] == before["ranking"]
    assert [(e["w"], e["b"]) for e in after["experts"]] == [(e["w"], e["b"]) for e in before["experts"]]


def test_state_round_trip_scores_the_same_and_old_states_still_load() -> None:
    rng = random.Random(3)
    model = RiskModel()
    for x, y in recency_stream(rng, 500):
        model.learn_one(x, y)
    restored = RiskModel.from_state(orjson.loads(orjson.dumps(model.to_state())))
    probe = recency_stream(rng, 50)
    assert [restored.predict_proba_one(x) for x, _ in probe] == [model.predict_proba_one(x) for x, _ in probe]
    assert restored.expert_weights() == model.expert_weights()
    old = model.to_state()
    del old["experts"], old["mixture"], old["ranking"]
    for key in ("eta", "half_life", "weigh_by", "rank_temperature"):
        del old["params"][key]
    legacy = RiskModel.from_state(old)  # saved before the mixture: the regression kept, fresh experts
    assert legacy.to_state()["weights"] == model.to_state()["weights"]
    assert 0.0 < legacy.predict_proba_one(probe[0][0]) < 1.0


def test_the_winning_experts_feature_explains_the_risk() -> None:
    rng = random.Random(11)
    model = RiskModel()
    for x, y in recency_stream(rng, 4000):
        model.learn_one(x, y)
    x = {"recency": 1.8, "usage_drop": 0.2, "silence": 0.5}
    contributions = model.contributions(x)
    assert max(contributions, key=lambda k: contributions[k]) == "recency"
    assert contributions["recency"] > 1.0


def test_a_signal_expert_reads_only_its_features() -> None:
    expert = SignalExpert("level", ("low_activity",), intercept=-4.0)
    for _ in range(300):
        expert.learn_one({"low_activity": 0.9, "silence": 5.0}, True)
        expert.learn_one({"low_activity": 0.1, "silence": 5.0}, False)
    assert expert.predict_proba_one({"low_activity": 0.9}) == expert.predict_proba_one(
        {"low_activity": 0.9, "silence": 0.0}
    )
    assert set(expert.to_state()["features"]) == {"low_activity"}
