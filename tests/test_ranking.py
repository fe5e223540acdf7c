"""Rank weights of the risk mixture: experts weighed by how they order outcomes, steady with few outcomes."""

from __future__ import annotations

import math
import random
import statistics
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
    assert len(model.ranking.pos) == 64 and model.ranking.neg.count() == 128
    state = orjson.dumps(model.to_state())
    assert len(state) < RiskModel.STATE_BUDGET_BYTES
    restored = RiskModel.from_state(orjson.loads(state))
    assert restored.expert_weights() == model.expert_weights()
    probe = {"recency": 1.2, "silence": 2.0}
    assert restored.predict_proba_one(probe) == model.predict_proba_one(probe)


def test_a_reservoir_saved_with_other_inputs_still_loads() -> None:
    mix = RankWeights(("a",), ("x", "y"), positives=4, per_week=4)
    saved = {"keys": ["x", "z"], "pos": [[3, 1.0, 5.0]], "waiting": [[5, 2.0, 0]], "neg": [[3, 0.5, 0]]}
    mix.restore({**saved, "waiting_seen": [[5, 1]], "neg_seen": [[3, 7]]})
    assert list(mix.pos) == [(3, (1.0, 0.0))] and mix.waiting.rows == {5: [(5, (2.0, 0.0))]}
    assert mix.neg.rows == {3: [(3, (0.5, 0.0))]} and mix.neg.seen == {3: 7}
    assert mix.aucs(lambda x: [x["x"]]) == [1.0]
    mix.restore({"keys": ["x"], "pos": [[1.0]], "neg": [[0.5]]})  # saved before outcomes had a week: dropped
    assert not mix.pos and not mix.neg.rows and mix.aucs(lambda x: [x["x"]]) == [0.5]


def drifting_stream(seed: int) -> list[tuple[dict[str, float], bool, int]]:
    """Outcomes in the order they are labelled: a positive when its account cancels (0-30 days after the
    snapshot), a negative 30 days after. ``age`` drifts with the calendar for every account (tenure as a
    base ages) and says nothing about churn; ``level`` does."""
    rng = random.Random(seed)
    labelled: list[tuple[int, dict[str, float], bool, int]] = []
    for day in range(140):
        for _ in range(20):
            level = rng.random()
            y = rng.random() < 0.04 + 0.25 * level
            x = {"age": day / 100.0, "level": level}
            labelled.append((day + (rng.randint(0, 30) if y else 30), x, y, day))
    labelled.sort(key=lambda row: row[0])
    return [(x, y, day) for known, x, y, day in labelled if known < 140]  # what is known on day 140


def test_outcomes_are_matched_by_snapshot_week_so_calendar_drift_does_not_rank() -> None:
    """Compared as they are labelled, the newer snapshots of positives make a calendar-drifting input look
    like a ranker; matched by snapshot week it ranks at chance and the expert that ranks gets the weight
    (averaged over five streams: one matched reservoir holds 64 positives, AUCs within ~0.1 of the truth)."""
    names = ("calendar", "level")

    def scores(x: Mapping[str, float]) -> list[float]:
        return [x["age"], x["level"]]

    fooled, calendar, level, weight = [], [], [], []
    for seed in range(4, 9):
        undated, matched = RankWeights(names, ("age", "level")), RankWeights(names, ("age", "level"))
        for x, y, day in drifting_stream(seed):
            undated.update(x, y)
            matched.update(x, y, day=day)
        fooled.append(undated.weights(scores)[0])
        calendar.append(matched.aucs(scores)[0])
        level.append(matched.aucs(scores)[1])
        weight.append(matched.weights(scores)[1])
        assert len(matched.pos) == 64 and [len(n) for n in matched.neg.rows.values()] == [16] * 8
        assert len(matched.waiting.rows) <= 8 and matched.waiting.count() <= 8 * 16
    assert statistics.fmean(fooled) > 0.8  # the calendar expert takes the undated reservoir
    assert abs(statistics.fmean(calendar) - 0.5) < 0.06 and statistics.fmean(level) > 0.6, (calendar, level)
    assert statistics.fmean(weight) > 0.8, weight


def test_the_log_loss_cannot_outvote_a_clear_ranking_lead_but_chooses_between_equal_rankers() -> None:
    """ChurnSim: the regression led the log-loss by ~6 nats and ranked at chance. Capped, the expert that
    ranks clearly better keeps the mixture; among experts that rank alike, the log-loss still chooses."""
    names = RiskModel().mixture.names
    learned, level = names.index("learned"), names.index("level")

    def weights(level_auc: float, loss_cap: float | None = 3.0) -> dict[str, float]:
        model = RiskModel(loss_cap=loss_cap)
        model.n_positives = model.min_positives  # handed over: eta at its full value
        losses = [10.0] * len(names)
        losses[learned], losses[level] = 0.0, 7.0  # the regression predicts best by 7 nats (~1,100x)
        model.mixture.losses = losses
        aucs = [0.5] * len(names)
        aucs[learned], aucs[level] = 0.56, level_auc
        model.ranking._cache = (aucs, 0.045)  # matched AUCs and their SE
        return model.expert_weights()

    assert weights(0.66)["level"] > 0.75  # level ranks 2.2 SE better: the capped log-loss cannot outvote it
    assert weights(0.66, loss_cap=None)["learned"] > 0.9  # before: the log-loss lead outvoted the ranking
    assert weights(0.60)["learned"] > 0.9  # ranks alike (within 2 SE of the regression): the log-loss chooses


def test_a_full_matched_reservoir_fits_the_state_budget() -> None:
    model = RiskModel()
    rng = random.Random(12)
    for day in range(200):  # every reservoir full: 8 weeks of negatives, positives of 8 weeks waiting
        for _ in range(40):
            x = {
                name: round(rng.random(), 3) for name in ("recency", "silence", "usage_drop", "low_activity")
            }
            model.learn_one(x, False, day=day)  # as at the horizon (90 days, as CDNOW's)
            model.learn_one(x, True, day=day + 80)  # as at the cancellation
    ranking = model.ranking
    assert (len(ranking.pos), ranking.waiting.count(), ranking.neg.count()) == (64, 128, 128)
    assert len(orjson.dumps(model.to_state())) < RiskModel.STATE_BUDGET_BYTES
