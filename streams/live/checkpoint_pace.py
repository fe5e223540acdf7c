"""When the event reader checkpoints: often while it keeps up, less often while it folds a backlog.

A checkpoint writes every account state changed since the last one (encoding each: ~12-35 µs) and holds the
state lock meanwhile. While the worker keeps up with its topics, a short interval keeps a crash's re-read and
each checkpoint's pause short. While it folds a backlog (a restart after downtime, a burst, a first start on
a long history), nearly every event reaches an account not yet written in a short interval, so each event
pays a whole state's encoding; a longer interval writes an account once for several of its events, and an
alert raised from a backlog is already late by more than the interval (docs/performance.md, "The checkpoint
interval while behind"). The longer interval is cut short when the changed states would take longer than a
bound to write (half the shutdown timeout, in the worker): a stop or a revocation writes them before it lets
go, and must not run out of time doing so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from aiokafka import TopicPartition

__all__ = ["CheckpointPace", "records_waiting"]

# Seconds to encode and write one changed state before a checkpoint measured it: months-old states (the
# slowest seen, docs/performance.md).
FIRST_STATE_WRITE_S = 35e-6


class Highwaters(Protocol):
    def highwater(self, partition: TopicPartition) -> int | None: ...


def records_waiting(consumer: Highwaters, positions: Mapping[TopicPartition, int]) -> int | None:
    """Records past ``positions`` (the next offsets to fold) up to each partition's high watermark as last
    fetched; None while one is unknown (no fetch answered for it yet)."""
    waiting = 0
    for tp, offset in positions.items():
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None
        waiting += max(0, highwater - offset)
    return waiting


class CheckpointPace:
    """Decides whether the reader checkpoints after a batch.

    A checkpoint is due when nothing was fetched (the reader caught up), or ``interval_s`` after the last
    one, unless the reader is **behind** and the state has room: then ``backlog_interval_s`` after it.
    Behind means more records wait past those read than were read since the last checkpoint, that is more
    than one interval's work. ``has_room`` says whether the state may hold more changed accounts (the cache
    within its limit); ``changed`` counts the changed states, which a checkpoint would write: while behind, it
    comes as soon as their writing would take ``max_write_s`` at the cost per state :meth:`wrote` last
    measured. ``clock`` gives monotonic seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> pace = CheckpointPace(5.0, 30.0, clock=lambda: now[0])
    >>> pace.read(10_000)
    >>> now[0] = 6.0
    >>> pace.due(fetched=True, waiting=1_000), pace.due(fetched=True, waiting=50_000)
    (True, False)
    >>> now[0] = 30.0
    >>> pace.due(fetched=True, waiting=50_000)
    True
    >>> pace.checkpointed()
    >>> pace.due(fetched=True, waiting=50_000), pace.due(fetched=False, waiting=0)
    (False, True)
    """

    __slots__ = (
        "_clock",
        "_last",
        "_read",
        "backlog_interval_s",
        "changed",
        "has_room",
        "interval_s",
        "max_write_s",
        "state_write_s",
    )

    def __init__(
        self,
        interval_s: float,
        backlog_interval_s: float,
        *,
        has_room: Callable[[], bool] = lambda: True,
        changed: Callable[[], int] = lambda: 0,
        max_write_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.backlog_interval_s = max(interval_s, backlog_interval_s)
        self.has_room = has_room
        self.changed = changed
        self.max_write_s = max_write_s
        self.state_write_s = FIRST_STATE_WRITE_S
        self._clock = clock
        self._last = clock()
        self._read = 0

    def read(self, records: int) -> None:
        """``records`` more were handed to the fold since the last checkpoint."""
        self._read += records

    def due(self, *, fetched: bool, waiting: int | None) -> bool:
        """Whether to checkpoint now; ``waiting``: records past those read (None: not known yet)."""
        if not fetched:
            return True
        elapsed = self._clock() - self._last
        if elapsed < self.interval_s:
            return False
        if elapsed >= self.backlog_interval_s:
            return True
        behind = waiting is not None and waiting > self._read
        return not (behind and self.has_room() and self.changed() * self.state_write_s < self.max_write_s)

    def wrote(self, states: int, seconds: float) -> None:
        """A checkpoint wrote ``states`` changed states in ``seconds``: the cost per state from now on."""
        if states > 0:
            self.state_write_s = seconds / states

    def checkpointed(self) -> None:
        self._last = self._clock()
        self._read = 0
