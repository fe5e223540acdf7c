"""Readiness and liveness of a worker, judged from its event reader's progress and its event loop.

* **Ready** (``/churnwatch/ready/``): the worker owns its partitions with their tables recovered (no
  rebalance in progress) *and* the event reader is actually reading: the broker answered one of its fetches
  (with records or an empty poll), or it had nothing assigned to read, within ``ready_read_within_seconds``.
  A broker that is gone, or a reader that stopped turning, makes the worker not ready, with a reason.
* **Live** (``/churnwatch/live/``): the event loop keeps turning (a heartbeat task a second apart) and the
  event reader's loop completed a turn (a fetch returned, even empty, or an idle wait ended) within
  ``liveness_timeout_seconds``. Waiting for a broker is not being stuck: the reader keeps turning on empty
  fetches while the broker is away, so liveness fails only on a hang (the class of bug where a consumer
  silently stops), and a restart is the cure.

Long engine work (a sweep of every account, run in steps: ``streams/engine/steps.py``) counts as reading and
as turning while its steps progress (``working``): the reader waits for it and fetches nothing meanwhile,
but the worker is doing what the records it read asked for. A step that stops progressing stops counting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from streams.metrics import Metrics

Clock = Callable[[], float]
HEARTBEAT_SECONDS = 1.0


class NotReady(StrEnum):
    """Why a worker is not ready (the ``reason`` label of ``churnwatch_not_ready``)."""

    REBALANCING = "rebalancing"  # partitions changing hands, tables recovering (also the first assignment)
    STARTING = "starting"  # the event reader has not taken up an assignment yet
    NOT_READING = "not_reading"  # no fetch answered lately: the broker is unreachable or the reader stalled


class NotLive(StrEnum):
    EVENT_LOOP = "event_loop"  # the event loop's heartbeat is late
    READER = "reader"  # the event reader's loop has not turned


class ReaderProgress(Protocol):
    """What health needs of an :class:`~streams.live.event_reader.EventReader`."""

    generation: int | None
    last_read: float  # monotonic time of the last fetch the broker answered (or idle turn, nothing assigned)
    last_turn: float  # monotonic time of the last completed turn of the reader's loop


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str | None
    reader_read_age_s: float
    reader_turn_age_s: float
    event_loop_lag_s: float

    def body(self, key: str) -> dict[str, object]:
        return {
            key: self.ok,
            "reason": self.reason,
            "reader_read_age_seconds": round(self.reader_read_age_s, 3),
            "reader_turn_age_seconds": round(self.reader_turn_age_s, 3),
            "event_loop_lag_seconds": round(self.event_loop_lag_s, 3),
        }


class LoopHeartbeat:
    """A task that wakes every second: how late it wakes is the event loop's lag."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.last_beat = clock()
        self.lag = 0.0

    async def run(self) -> None:
        while True:
            before = self.clock()
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.last_beat = self.clock()
            self.lag = max(0.0, self.last_beat - before - HEARTBEAT_SECONDS)

    def current_lag(self) -> float:
        """The last beat's lag, or how overdue the next beat is when that is more (a loop blocked now)."""
        overdue = self.clock() - self.last_beat - HEARTBEAT_SECONDS
        return max(self.lag, overdue, 0.0)


class Health:
    def __init__(
        self,
        reader: ReaderProgress,
        *,
        rebalancing: Callable[[], bool],
        heartbeat: LoopHeartbeat,
        ready_read_within_s: float,
        liveness_timeout_s: float,
        working: Clock = lambda: float("-inf"),
        clock: Clock = time.monotonic,
    ) -> None:
        self.reader = reader
        self.working = working  # when long engine work (a sweep) last progressed: not stuck, not idle
        self.rebalancing = rebalancing
        self.heartbeat = heartbeat
        self.ready_read_within_s = ready_read_within_s
        self.liveness_timeout_s = liveness_timeout_s
        self.clock = clock

    def settled(self) -> bool:
        """Partitions owned and tables recovered: the reader follows a finished assignment."""
        return self.reader.generation is not None and not self.rebalancing()

    def readiness(self) -> Verdict:
        # A sweep of many accounts reads nothing for its length, and does what the records read asked for.
        read_age = self.clock() - max(self.reader.last_read, self.working())
        reason: NotReady | None = None
        if self.rebalancing():
            reason = NotReady.REBALANCING
        elif self.reader.generation is None:
            reason = NotReady.STARTING
        elif read_age > self.ready_read_within_s:
            reason = NotReady.NOT_READING
        return self._verdict(reason)

    def liveness(self) -> Verdict:
        reason: NotLive | None = None
        if self.heartbeat.current_lag() > self.liveness_timeout_s:
            reason = NotLive.EVENT_LOOP
        elif self.clock() - max(self.reader.last_turn, self.working()) > self.liveness_timeout_s:
            reason = NotLive.READER
        return self._verdict(reason)

    def _verdict(self, reason: StrEnum | None) -> Verdict:
        now = self.clock()
        return Verdict(
            ok=reason is None,
            reason=None if reason is None else reason.value,
            reader_read_age_s=max(0.0, now - self.reader.last_read),
            reader_turn_age_s=max(0.0, now - self.reader.last_turn),
            event_loop_lag_s=self.heartbeat.current_lag(),
        )

    def export(self, metrics: Metrics) -> Verdict:
        """Set the health gauges (at each scrape and probe) and return the readiness verdict."""
        ready = self.readiness()
        metrics.ready.set(1 if ready.ok else 0)
        for reason in NotReady:
            metrics.not_ready.labels(reason=reason.value).set(1 if ready.reason == reason.value else 0)
        metrics.reader_progress_age.set(ready.reader_read_age_s)
        metrics.event_loop_lag.set(ready.event_loop_lag_s)
        return ready
