"""The detectors' numpy fits run on one BLAS thread.

OpenBLAS's worker threads spin on for a while after each call. A worker has few cores and one event loop, so
that CPU is taken from the loop: the risk model's batch refit made sweeps 10-19 % dearer with two threads, and
the population's BG/NBD fit (:mod:`detectors.btyd`) doubled its own CPU and burned ~0.1 s of a core after each
fit (``docs/performance.md``). The matrices are small; a second thread buys nothing.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@functools.cache
def _controller() -> ThreadpoolController:
    """The process's BLAS thread pools (looked up once)."""
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread inside a ``with`` block; the previous limits come back after it.

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float((np.ones((200, 200)) @ np.ones(200))[0])
    200.0
    """
    return _controller().limit(limits=1, user_api="blas")
