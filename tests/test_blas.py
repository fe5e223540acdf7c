"""The detectors' numpy fits run on one BLAS thread (``detectors/blas.py``).

OpenBLAS's threads spin on after each call; on a worker's few cores that is CPU the event loop loses. Each
fit is checked from inside its numpy work, and the process's own limit must come back after it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from detectors import btyd, refit
from detectors.blas import one_blas_thread


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def _refit() -> None:
    rng = random.Random(3)
    sample = refit.RefitSample(("x",), min_rows=20)
    for _ in range(400):
        y = rng.random() < 0.3
        sample.add({"x": rng.gauss(1.0 if y else 0.0, 1.0)}, y)
    assert sample.fit() is not None


def _btyd() -> None:
    rng = np.random.default_rng(1)
    T = np.full(300, 100.0)
    x = rng.poisson(20, 300).astype(float)
    btyd.fit_params(x, T - rng.exponential(5, 300).clip(0, 99), T)


@pytest.mark.parametrize(
    ("module", "inner", "fit"),
    [(refit, "_irls", _refit), (btyd, "negative_log_likelihood", _btyd)],
    ids=["risk refit", "BG/NBD fit"],
)
def test_each_fit_runs_on_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch, module: Any, inner: str, fit: Callable[[], None]
) -> None:
    before = _blas_threads()
    seen: list[set[int]] = []
    original = getattr(module, inner)

    def spy(*args: Any) -> Any:
        seen.append(_blas_threads())
        return original(*args)

    monkeypatch.setattr(module, inner, spy)
    fit()
    assert seen and all(threads == {1} for threads in seen)
    assert _blas_threads() == before  # restored
    assert any(n > 1 for n in before) or os.cpu_count() == 1 or not before


def test_the_limit_is_lifted_after_an_error() -> None:
    before = _blas_threads()
    with pytest.raises(ValueError, match="inside"), one_blas_thread():
        assert _blas_threads() <= {1}
        raise ValueError("inside")
    assert _blas_threads() == before
