"""Keep Python's cyclic garbage collector off the worker's long-lived state.

A worker holds up to ``CHURNWATCH_STATE_CACHE_ACCOUNTS`` decoded account states: about a hundred tracked
objects each, a million objects at 10 k accounts. CPython's full (generation 2) collection walks all of them
each time the objects that survived younger collections grow by a quarter, which a sweep of every account
does: measured in-process on the engine's live mode (``benchmarks/gc_pauses.py``: 10 k simulated accounts,
1 M events in batches of 2,000, a checkpoint every 10 batches), 23 full collections took 7.2 s of 40 s, the
longest 0.5 s, on a loaded machine.

:class:`GcFreezer` moves everything alive after each checkpoint into the permanent generation
(:func:`gc.freeze`), so later collections only walk what is new; reference counting still frees frozen
objects as usual. Only garbage *cycles* among frozen objects would wait: the engine's states make none (the
same run found 0 unreachable objects at the end), and for anything else (asyncio, Faust) a full collection
over everything runs every ``full_every_s`` (``CHURNWATCH_GC_FULL_COLLECTION_SECONDS``; 0: never).

That full walk cannot run in steps: it stops the worker's event loop, ~0.5 s with 100 k accounts (50 k of
them cached) on a quiet machine and 1-4 s on a busy one (docs/performance.md, "What still stood still");
its cost grows with the rows and states the worker holds. Each one is reported to ``on_full`` (the worker
logs how long it took and how much garbage it found: a few hundred objects a minute), so a user can see what
it costs and what it frees, and set the period accordingly.

Long work (a sweep, a checkpoint's writes) freezes as it goes (:meth:`GcFreezer.freeze_new`, at each turn of
the event loop): its new states would otherwise make the collector walk everything decoded since the last
freeze, several times per sweep.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # replay uses this module and no metrics: no import of the client for a type
    from prometheus_client import Counter


@dataclass(frozen=True, slots=True)
class FullCollection:
    """One walk over everything: how long it took, what it found unreachable, how much was frozen before."""

    seconds: float
    unreachable: int
    frozen: int


class GcFreezer:
    """Freeze what survives each checkpoint; now and then, collect over everything first.

    >>> now = [0.0]
    >>> freezer = GcFreezer(full_every_s=600, monotonic=lambda: now[0])
    >>> freezer.freeze_survivors(); gc.get_freeze_count() > 0, freezer.full_collections
    (True, 0)
    >>> now[0] = 601.0
    >>> freezer.freeze_survivors(); freezer.full_collections
    1
    >>> gc.unfreeze()
    """

    def __init__(
        self,
        *,
        full_every_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        on_full: Callable[[FullCollection], None] = lambda _: None,
    ) -> None:
        self.full_every_s = full_every_s if full_every_s > 0 else math.inf
        self.monotonic = monotonic
        self.on_full = on_full
        self.last_full = monotonic()
        self.full_collections = 0

    def __enter__(self) -> GcFreezer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Thaw everything (the permanent generation is process-wide): for a scope such as one replay."""
        gc.unfreeze()

    def freeze_new(self) -> None:
        """Freeze what long work has made so far, without the periodic full walk: called between the steps
        of a sweep, whose decoded states would otherwise make the collector walk everything decoded since
        the last checkpoint several times over (1-2 s each at 100 k accounts; the threshold of its oldest
        generation is a quarter of what it held after its last walk, a few objects once all is frozen).

        The young generations are collected first (what the last ~50 ms made: well under a millisecond), so
        the garbage cycles among them are not frozen."""
        gc.collect(1)
        gc.freeze()

    def freeze_survivors(self) -> None:
        now = self.monotonic()
        if now - self.last_full >= self.full_every_s:
            frozen = gc.get_freeze_count()
            started = time.perf_counter()
            gc.unfreeze()
            unreachable = gc.collect()
            self.on_full(FullCollection(time.perf_counter() - started, unreachable, frozen))
            self.last_full = now
            self.full_collections += 1
        else:
            gc.collect()  # what is not frozen yet (made since the last freeze): no dead cycle gets frozen
        gc.freeze()


class CollectionTimes:
    """Seconds the cyclic collector has run, per generation, counted by a :data:`gc.callbacks` entry.

    Every collection stops the worker's event loop while it runs; a full one (generation 2) walks every
    object not frozen. :meth:`publish` adds what was counted since its last call to a Prometheus counter (the
    callback itself only adds two floats: it runs thousands of times a second while events are folded).

    >>> times = CollectionTimes()
    >>> times.install(); _ = gc.collect(0); times.remove()
    >>> times.collections[0] >= 1 and times.seconds[0] >= 0.0
    True
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._published = [0.0, 0.0, 0.0]
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self.clock()
        else:
            generation = info["generation"]
            self.seconds[generation] += self.clock() - self._started
            self.collections[generation] += 1

    def publish(self, counter: Counter) -> None:
        """Add the seconds counted since the last call to ``counter`` (labelled by ``generation``)."""
        for generation, seconds in enumerate(self.seconds):
            if seconds > self._published[generation]:
                counter.labels(generation=str(generation)).inc(seconds - self._published[generation])
                self._published[generation] = seconds
