"""Work in steps: a generator that yields between units of work and returns its result at the end.

The detectors' long passes over accounts (the census of a whole base) are written as generators, so that a
driver with other work to do can run them a step at a time (the live worker: ``streams/engine/steps.py``);
:func:`drain` runs one to the end in a single call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

T = TypeVar("T")

Steps = Generator[None, None, T]


def drain(steps: Generator[Any, None, T]) -> T:
    """Run ``steps`` to the end in one call; what it returns.

    >>> def count_to(n):
    ...     for _ in range(n):
    ...         yield
    ...     return n
    >>> drain(count_to(3))
    3
    """
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
