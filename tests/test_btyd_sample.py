"""The BTYD model's sample: a census of a young population does not rebuild the sample's array per account,
and the model learns exactly what it learned when the mean span was taken from the rows at every offer."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from detectors import btyd
from detectors.btyd import BtydModel, _rank, fit_params

PARAMS: dict[str, Any] = {"sample_size": 40, "refit_every_days": 7, "min_accounts": 20, "min_span_days": 28.0}


class Reference:
    """``BtydModel.learn_one`` and ``forget`` as they were before the running sum of spans: the worst rank
    looked up at every offer, the mean span taken from the sample's rows whenever a fit is due."""

    def __init__(self) -> None:
        self.model = BtydModel(**PARAMS)  # holds the sample and parameters; its own methods are not called

    def learn_one(self, account_id: str, x: float, t_x: float, T: float, day: int) -> None:
        m, sample = self.model, self.model.sample
        if account_id in sample or len(sample) < m.sample_size:
            sample[account_id] = [x, t_x, T]
        else:
            worst = max(sample, key=_rank)
            if _rank(account_id) < _rank(worst):
                del sample[worst]
                sample[account_id] = [x, t_x, T]
        due = m.fitted_day is None or day - m.fitted_day >= m.refit_every_days
        if len(sample) >= m.min_accounts and due:
            rows = np.array(list(sample.values()), dtype=float)
            if rows[:, 2].mean() >= m.min_span_days:
                m.params = fit_params(rows[:, 0], rows[:, 1], rows[:, 2], m.params)
                m.fitted_day = day

    def forget(self, account_id: str) -> None:
        self.model.sample.pop(account_id, None)


@pytest.mark.parametrize(("seed", "fractional"), [(1, False), (2, False), (3, True)])
def test_learns_as_the_mean_taken_from_the_rows_at_every_offer(seed: int, fractional: bool) -> None:
    rng = random.Random(seed)
    first = {f"acct-{i}": rng.randrange(0, 30) for i in range(150)}
    model, reference = BtydModel(**PARAMS), Reference()
    fits = 0
    for day in range(90):
        for account_id, start in rng.sample(sorted(first.items()), 60):
            if start > day:
                continue
            T = day - start + (rng.random() if fractional else 0)
            t_x = rng.randrange(0, int(T) + 1)
            x = rng.randrange(0, t_x + 1)
            model.learn_one(account_id, x=x, t_x=t_x, T=T, day=day)
            reference.learn_one(account_id, x, t_x, T, day)
        if rng.random() < 0.2:
            gone = rng.choice(sorted(first))
            model.forget(gone)
            reference.forget(gone)
        if rng.random() < 0.1:  # a restart: the running sum is taken again from the stored sample
            model = BtydModel.from_state(model.to_state(), **PARAMS)
        expected = reference.model
        fits += model.fitted_day == day
        assert list(model.sample.items()) == list(expected.sample.items())
        assert (model.params, model.fitted_day) == (expected.params, expected.fitted_day)
        assert model._spans == pytest.approx(sum(row[2] for row in model.sample.values()))
    assert fits >= 3  # the threshold was crossed and the model refitted since


class CountingNumpy:
    """``numpy`` for :mod:`detectors.btyd`, counting the arrays it builds."""

    def __init__(self) -> None:
        self.arrays = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    def array(self, *args: Any, **kwargs: Any) -> Any:
        self.arrays += 1
        return np.array(*args, **kwargs)


def test_a_young_population_does_not_build_the_sample_array_per_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counting = CountingNumpy()
    monkeypatch.setattr(btyd, "np", counting)
    model = BtydModel(**PARAMS)
    for day in range(5):  # spans of at most four days: far below the 28 a fit needs
        for i in range(2_000):
            model.learn_one(f"acct-{i}", x=1, t_x=day, T=day, day=day)
    assert not model.fitted and len(model.sample) == PARAMS["sample_size"]
    assert counting.arrays == 0
    for i in range(2_000):  # old enough now: the first offer fits, the next ones wait for the refit
        model.learn_one(f"acct-{i}", x=10, t_x=30, T=40, day=40)
    assert model.fitted_day == 40 and counting.arrays == 1
