"""``DetectorConfig.refit_every``: the risk model's learned regression refitted in batch (issue 14, eleventh
pass; on by default).

The figures (AUC and alerts on tuning and held-out data) are in ``docs/detection.md``; these tests hold the
mechanism: the regression takes the batch fit, learns what one SGD pass does not, and survives a restore.
"""

from __future__ import annotations

import random

import orjson
import pytest

from detectors.monitor import AccountMonitor, DetectorConfig
from detectors.outcomes import Outcome
from detectors.refit import RefitSample
from detectors.risk import FEATURES, RiskModel
from detectors.windows import WindowConfig
from streams.engine.detection import Detection


def _outcomes(n: int, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    """Churn driven by a low level on most days (``low_activity`` high, ``infrequent`` low); sparse but
    healthy accounts are low on both counts."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.1:  # barely engaged, daily: churns often
            x, y = (
                {"low_activity": rng.uniform(0.8, 1.0), "infrequent": rng.uniform(0.0, 0.2)},
                rng.random() < 0.5,
            )
        elif kind < 0.4:  # sparse and healthy
            x, y = (
                {"low_activity": rng.uniform(0.7, 1.0), "infrequent": rng.uniform(0.6, 0.9)},
                rng.random() < 0.03,
            )
        else:
            x, y = (
                {"low_activity": rng.uniform(0.0, 0.7), "infrequent": rng.uniform(0.0, 0.3)},
                rng.random() < 0.03,
            )
        out.append((x, y))
    return out


def test_the_learned_regression_takes_the_batch_fit_of_its_sample() -> None:
    model = RiskModel(refit_every=100)
    outcomes = _outcomes(1600)
    for x, y in outcomes[:1500]:
        model.learn_one(x, y)
    assert not model.refitted, "learning alone does not refit: the caller says when a batch ends"
    assert model.refit_if_due() and model.refitted and model.sample is not None
    fitted = model.sample.fit()
    assert fitted is not None
    intercept, weights = fitted
    assert model._lr.intercept == intercept
    assert model._lr._weights["infrequent"] == weights["infrequent"] < -1.0  # sparse is not churn
    assert model._lr._weights["low_activity"] == weights["low_activity"] > 1.0
    for x, y in outcomes[1500:1599]:  # 99 more: not due yet, and no SGD step moves the fitted weights
        model.learn_one(x, y)
    assert not model.refit_if_due() and model._lr._weights["low_activity"] == weights["low_activity"]
    model.learn_one(*outcomes[1599])
    assert model.refit_if_due() and model._lr._weights["low_activity"] != weights["low_activity"]


def test_the_monitor_refits_once_per_batch_of_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = AccountMonitor(DetectorConfig(refit_every=100), WindowConfig())
    asked: list[int] = []
    original = RiskModel.refit_if_due

    def refit_if_due(model: RiskModel) -> bool:
        asked.append(model.since_refit)
        return original(model)

    monkeypatch.setattr(RiskModel, "refit_if_due", refit_if_due)
    learned = [Outcome(f"a{i}", 20_000, 0.1, x, y) for i, (x, y) in enumerate(_outcomes(1000))]
    assert monitor.learn(learned[:700]) == 700 and monitor.learn(learned[700:]) == 300
    assert asked == [700, 300] and monitor.risk_model.refitted and monitor.risk_model.since_refit == 0


def test_refitted_it_ranks_the_barely_engaged_above_the_sparse() -> None:
    barely, sparse = {"low_activity": 0.9, "infrequent": 0.1}, {"low_activity": 0.9, "infrequent": 0.8}
    refit, sgd = RiskModel(refit_every=100), RiskModel()
    for x, y in _outcomes(1500):
        refit.learn_one(x, y)
        sgd.learn_one(x, y)
    assert refit.refit_if_due()
    refit_gap = refit._lr._weights["infrequent"] * (sparse["infrequent"] - barely["infrequent"])
    sgd_gap = sgd._lr._weights["infrequent"] * (sparse["infrequent"] - barely["infrequent"])
    assert refit_gap < sgd_gap < 0.0  # both learn it; the batch fit learns it fully


def test_the_sample_and_the_fit_survive_a_restore() -> None:
    model = RiskModel(refit_every=100)
    for x, y in _outcomes(700):
        model.learn_one(x, y)
    assert model.refit_if_due()
    state = orjson.loads(orjson.dumps(model.to_state()))
    again = RiskModel.from_state(state)
    assert again.refit_every == 100 and again.to_state() == model.to_state()
    for x, y in _outcomes(300, seed=4):  # and both go on alike
        model.learn_one(x, y)
        again.learn_one(x, y)
    assert model.refit_if_due() and again.refit_if_due()
    assert again.to_state() == model.to_state()
    assert again.predict_proba_one({"low_activity": 0.9}) == model.predict_proba_one({"low_activity": 0.9})


def test_on_by_default_and_off_at_zero() -> None:
    monitor = AccountMonitor(DetectorConfig(), WindowConfig())
    assert monitor.risk_model.refit_every == 200 and "refit" in monitor.risk_model.to_state()
    off = AccountMonitor(DetectorConfig(refit_every=0), WindowConfig())
    assert off.risk_model.sample is None and "refit" not in off.risk_model.to_state()


def test_a_restored_model_takes_the_configured_cadence() -> None:
    """A model saved before refits (or with another cadence) refits as the worker's settings say."""
    saved = RiskModel()  # saved by a worker without refits
    for x, y in _outcomes(500):
        saved.learn_one(x, y)
    detection = Detection(AccountMonitor(DetectorConfig(refit_every=200), WindowConfig()))
    detection.adopt_learning(orjson.loads(orjson.dumps(saved.to_state())), [])
    model = detection.risk_model
    assert model.n_positives + model.n_negatives == 500, "the saved model was taken"
    assert model.refit_every == 200 and model.sample is not None
    for x, y in _outcomes(800, seed=5):  # the new sample needs 30 positives
        model.learn_one(x, y)
    assert model.refit_if_due() and model.refitted
    off = Detection(AccountMonitor(DetectorConfig(refit_every=0), WindowConfig()))
    off.adopt_learning(orjson.loads(orjson.dumps(model.to_state())), [])
    assert off.risk_model.refit_every == 0 and off.risk_model.sample is None
    assert off.risk_model.n_positives == model.n_positives


def test_a_full_sample_fits_its_state_budget() -> None:
    """The worst case: every input of every kept row non-zero, with four decimals."""
    sample = RefitSample(("prior", *FEATURES))
    rng = random.Random(8)
    for _ in range(6000):
        sample.add({k: rng.uniform(0.1, 9.9) for k in sample.keys}, rng.random() < 0.3)
    assert [len(rows) for rows in sample.kept] == [1500, 500]
    assert len(orjson.dumps(sample.to_state())) < RefitSample.STATE_BUDGET_BYTES


def _shifting(n: int, rate: float, seed: int) -> list[tuple[dict[str, float], bool]]:
    """One signal that ranks alike throughout; only the base rate is ``rate``."""
    rng = random.Random(seed)
    return [({"recency": (x := rng.random())}, rng.random() < rate * 2 * x) for _ in range(n)]


def test_with_keeps_sgd_the_mixture_follows_sgd_where_the_base_rate_falls() -> None:
    """ChurnSim's case (fourteenth and fifteenth passes): the fit's intercept comes from the class shares of
    every outcome its sample holds, so when the base rate falls it over-predicts; SGD follows."""
    model = RiskModel(refit_every=100, keeps_sgd=True)
    for x, y in _shifting(400, 0.25, seed=1):
        model.learn_one(x, y)
    assert model.expert_weights()["sgd"] == 0.0, "before the first fit it repeats the learned regression"
    assert model.refit_if_due()
    for k, (x, y) in enumerate(_shifting(4000, 0.02, seed=2)):
        model.learn_one(x, y, day=k // 50)
        model.refit_if_due()
    weights = model.expert_weights()
    assert weights["sgd"] > 0.25 and weights["learned"] < 0.01  # sgd shares with the one-signal experts
    assert (
        model.experts[-1].predict_proba_one({"recency": 0.5})
        < model._predictions(model._inputs({"recency": 0.5}))[0]
    ), "the refitted regression over-predicts the new base rate; sgd does not"
    again = RiskModel.from_state(orjson.loads(orjson.dumps(model.to_state())))
    assert again.to_state() == model.to_state() and again.expert_weights() == weights


def test_keeps_sgd_is_on_by_default_with_its_gate_and_needs_refits() -> None:
    def model(config: DetectorConfig) -> RiskModel:
        return AccountMonitor(config, WindowConfig()).risk_model

    default = model(DetectorConfig())
    assert "sgd" in default.mixture.names and default.gate is not None and default.gate.factor == 1.5
    assert "sgd" not in model(DetectorConfig(refit_keeps_sgd=False)).mixture.names
    assert "sgd" not in model(DetectorConfig(refit_every=0)).mixture.names
    assert model(DetectorConfig(refit_sgd_gate=None)).gate is None


def test_a_restored_model_keeps_sgd_as_the_worker_says() -> None:
    """A model saved without the sgd expert gets one (fresh) on a worker that keeps it, and the reverse."""
    saved = RiskModel(refit_every=100)
    for x, y in _outcomes(700):
        saved.learn_one(x, y)
    assert saved.refit_if_due()
    keeping = Detection(AccountMonitor(DetectorConfig(refit_every=100), WindowConfig()))
    keeping.adopt_learning(orjson.loads(orjson.dumps(saved.to_state())), [])
    restored = keeping.risk_model
    assert "sgd" in restored.mixture.names and restored.refitted and restored.gate is not None
    assert restored.expert_weights()["sgd"] == 0.0, "closed: no outcome since the fit has been judged"
    dropping = Detection(
        AccountMonitor(DetectorConfig(refit_every=100, refit_keeps_sgd=False), WindowConfig())
    )
    dropping.adopt_learning(orjson.loads(orjson.dumps(restored.to_state())), [])
    assert "sgd" not in dropping.risk_model.mixture.names
    assert dropping.risk_model._lr._weights == saved._lr._weights


def test_the_gate_opens_for_sgd_only_where_the_refit_is_off_its_base_rate() -> None:
    """Sixteenth pass: with ``sgd_gate``, sgd has no say while the refit predicts the outcome rate."""
    steady = RiskModel(refit_every=100, keeps_sgd=True, sgd_gate=1.5)
    for k, (x, y) in enumerate(_shifting(4000, 0.1, seed=3)):
        steady.learn_one(x, y, day=k // 50)
        steady.refit_if_due()
    assert steady.refitted and steady.expert_weights()["sgd"] == 0.0
    gate = steady.gate
    assert gate is not None and gate.observed >= gate.MIN_POSITIVES and not gate.open
    falling = RiskModel(refit_every=100, keeps_sgd=True, sgd_gate=1.5)
    for x, y in _shifting(400, 0.25, seed=1):
        falling.learn_one(x, y)
    assert falling.refit_if_due()
    for k, (x, y) in enumerate(_shifting(4000, 0.02, seed=2)):
        falling.learn_one(x, y, day=k // 50)
        falling.refit_if_due()
    assert falling.gate is not None and falling.gate.predicted / falling.gate.observed > 1.5
    assert falling.gate.open and falling.expert_weights()["sgd"] > 0.25
    again = RiskModel.from_state(orjson.loads(orjson.dumps(falling.to_state())))
    assert again.to_state() == falling.to_state() and again.expert_weights() == falling.expert_weights()
