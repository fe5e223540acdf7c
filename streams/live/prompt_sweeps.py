"""Sweeps right after a batch on the wall clock, for what can raise an alert within the day.

The wall-clock timer sweeps every ``CHURNWATCH_SWEEP_INTERVAL_SECONDS`` (60 s): an urgent support burst
folded just after a sweep waited up to a minute for its alert. Later sweeps of a day evaluate only the
accounts that changed (``Engine``'s ``incremental``), so one that follows a support or billing event or an
answer costs the few accounts it reached. After each batch, and every ``spacing_s`` on a timer of its own
(for what a batch brought too soon after the last sweep, when no batch follows), the worker asks
:class:`PromptSweeps` whether to sweep now:

* something that can raise an alert within the day reached an account since the last sweep
  (``Engine.urgent``: a support or billing event, an answer; today's usage counts only once the day is
  complete);
* at least ``spacing_s`` (``CHURNWATCH_SWEEP_PROMPT_SECONDS``, 1 s) since the last sweep of any kind;
* at most :data:`MAX_ACCOUNTS` accounts wait to be evaluated (``Engine.touched``): more means a backlog is
  being folded (late usage reaches most accounts), whose accounts would be judged again at every prompt
  sweep; they wait for the timer, as before.

A day's first sweep evaluates every account whichever way it is started: the first prompt sweep of a day (or
after a start) is that one, once per day as the timer's was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["MAX_ACCOUNTS", "PromptSweeps"]

# Accounts waiting to be evaluated above which a prompt sweep waits for the timer (~0.15 s of sweep at most).
MAX_ACCOUNTS = 1_000


class Sweepable(Protocol):
    """What :class:`PromptSweeps` reads of an engine (``streams.engine.Engine``)."""

    urgent: bool
    touched: set[str]


class PromptSweeps:
    """Whether to sweep right after a batch (see the module); ``clock`` gives monotonic seconds.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> now = [100.0]
    >>> prompt = PromptSweeps(1.0, clock=lambda: now[0])
    >>> engine = SimpleNamespace(urgent=True, touched={"acme"})
    >>> prompt.due(engine)
    True
    >>> prompt.swept()
    >>> now[0] += 0.5
    >>> prompt.due(engine)  # too soon after the last sweep
    False
    >>> now[0] += 0.5
    >>> prompt.due(engine), prompt.due(SimpleNamespace(urgent=False, touched={"acme"}))
    (True, False)
    >>> prompt.due(SimpleNamespace(urgent=True, touched={str(n) for n in range(MAX_ACCOUNTS + 1)}))
    False
    >>> PromptSweeps(0.0).due(engine)  # off
    False
    """

    __slots__ = ("_clock", "_last", "spacing_s")

    def __init__(self, spacing_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.spacing_s = spacing_s
        self._clock = clock
        self._last = float("-inf")

    def due(self, engine: Sweepable) -> bool:
        """Whether to sweep now, after a batch the engine folded."""
        return (
            self.spacing_s > 0
            and engine.urgent
            and len(engine.touched) <= MAX_ACCOUNTS
            and self._clock() - self._last >= self.spacing_s
        )

    def swept(self) -> None:
        """A sweep ran (prompted or on the timer)."""
        self._last = self._clock()
