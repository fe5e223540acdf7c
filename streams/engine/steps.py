"""Long engine work in steps: run to the end at once (replay), or with the event loop turning between steps.

A sweep evaluates every account a worker owns: ~0.1-0.3 ms each, so 22 s for 100 k accounts and minutes for
a million. Run as one call on the live worker's event loop, it stopped everything else on it for that long:
the health and metrics endpoints (a probe or a scrape timed out), the outbox's deliveries to Slack and
webhooks, the timers. (Not the Kafka group's heartbeats: Faust runs its group consumer in a thread of its
own.) So the engine's sweeps and folds are generators
that yield between accounts (:meth:`~streams.engine.Engine.fold_steps`,
:meth:`~streams.engine.detection.Detection.sweep_steps`); :func:`drain` runs one to the end in a single call
(replay, tests), :func:`run_steps` lets the event loop turn every ``slice_s`` while it runs. The steps are
the same operations in the same order either way, so both give the same results.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import Lock
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from detectors.steps import Steps, drain

__all__ = ["PAUSE_SECONDS", "SLICE_SECONDS", "Pacer", "Steps", "drain", "run_steps", "run_steps_sharing"]

T = TypeVar("T")

# The event loop turns at least this often during long engine work (seconds of work between two turns).
SLICE_SECONDS = 0.05
# How long it then has for itself: long enough for a chain of callbacks (a timer's task, a request's
# handler) to run to its end, not only its first link (a bare sleep(0) lets one loop iteration run).
PAUSE_SECONDS = 0.001


class Pacer:
    """Lets the event loop run other tasks for ``pause_s`` whenever ``slice_s`` has passed since it last did:
    ``await pacer.step()`` between the units of a long loop (``on_turn`` is called each time: the work is
    progressing).

    >>> import asyncio
    >>> turns = []
    >>> async def main():
    ...     pacer = Pacer(slice_s=0.0, on_turn=lambda: turns.append("turn"))
    ...     for _ in range(2):
    ...         await pacer.step()
    >>> asyncio.run(main())
    >>> turns
    ['turn', 'turn']
    """

    __slots__ = ("clock", "on_turn", "pause_s", "slice_s", "turned")

    def __init__(
        self,
        *,
        slice_s: float = SLICE_SECONDS,
        pause_s: float = PAUSE_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
        on_turn: Callable[[], None] = lambda: None,
    ) -> None:
        self.slice_s = slice_s
        self.pause_s = pause_s
        self.clock = clock
        self.on_turn = on_turn
        self.turned = clock()

    async def step(self) -> None:
        if self.clock() - self.turned >= self.slice_s:
            self.on_turn()
            await asyncio.sleep(self.pause_s)
            self.turned = self.clock()


async def run_steps(
    steps: Generator[Any, None, T],
    *,
    slice_s: float = SLICE_SECONDS,
    pause_s: float = PAUSE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
    on_turn: Callable[[], None] = lambda: None,
) -> T:
    """Run ``steps`` to the end, letting the event loop run other tasks for ``pause_s`` whenever ``slice_s``
    has passed since it last did (``on_turn`` is called each time: the work is progressing); what it
    returns.

    The caller holds whatever keeps other writers out (the worker's state lock): what runs between two
    steps only reads, or waits for that lock.

    >>> import asyncio
    >>> order = []
    >>> def work():
    ...     for step in range(2):
    ...         order.append(f"step {step}")
    ...         yield
    ...     return "done"
    >>> async def other_task():
    ...     order.append("other task")
    >>> async def main():
    ...     other = asyncio.ensure_future(other_task())
    ...     result = await run_steps(work(), slice_s=0.0)
    ...     await other
    ...     return result
    >>> asyncio.run(main())
    'done'
    >>> order
    ['step 0', 'other task', 'step 1']
    """
    pacer = Pacer(slice_s=slice_s, pause_s=pause_s, clock=clock, on_turn=on_turn)
    try:
        while True:
            next(steps)
            await pacer.step()
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_steps_sharing(
    steps: Generator[Any, None, T],
    lock: Lock,
    *,
    slice_s: float = SLICE_SECONDS,
    pause_s: float = PAUSE_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
    on_turn: Callable[[], None] = lambda: None,
    on_slice: Callable[[float], None] = lambda seconds: None,
) -> T:
    """:func:`run_steps`, holding ``lock`` only while steps run: it lets go of it at every turn, so a task
    waiting for it (the next batch's fold) runs between two slices of ``slice_s``; what it returns.
    ``on_slice`` is told how long each slice held the lock (the work's own time, without the waits).

    For work that lets others change things between its steps: a checkpoint's writes, which write a state
    first when a batch asks for it (``CachedStore.get``). ``asyncio.Lock`` hands itself to its waiters in
    turn, so neither side starves the other.

    >>> import asyncio
    >>> seen = []
    >>> def writes():
    ...     yield seen.append("slice 1")
    ...     seen.append("slice 2")
    ...     return 2
    >>> async def fold(lock):
    ...     async with lock:
    ...         seen.append("batch")
    >>> async def main():
    ...     lock = asyncio.Lock()
    ...     batch = asyncio.ensure_future(fold(lock))  # its turn at the lock comes between two slices
    ...     slices = await run_steps_sharing(writes(), lock, slice_s=0.0)
    ...     await batch
    ...     return slices
    >>> asyncio.run(main())
    2
    >>> seen
    ['slice 1', 'batch', 'slice 2']
    """
    while True:
        async with lock:
            started = clock()
            try:
                while True:
                    next(steps)
                    if clock() - started >= slice_s:
                        break
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            finally:
                on_slice(clock() - started)
        on_turn()
        await asyncio.sleep(pause_s)
