"""The engine's clocks: the event-time clock that drives sweeps, and the wall clock it is given."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from detectors.windows import DAY_MS

WallClock = Callable[[], int]  # epoch milliseconds
# A gap in the events is swept day by day, up to this many days; earlier midnights of the gap are skipped.
MAX_SWEPT_GAP_DAYS = 62


class EventClock:
    """The event-time clock: the UTC day every usage partition the engine reads has reached.

    Each partition's watermark is the day of its newest usage event; the clock is the smallest of them over
    the partitions that delivered usage. A partition read ahead of another (a backlog, a lagging fetch, a
    slower broker) must not sweep days whose usage the other has not delivered yet: its accounts would look
    silent all at once, which is what an ingestion outage looks like. Only usage moves the clock: the sparse
    support and billing topics are read in large chunks that can run days ahead of usage. Replay reads one
    "partition" (the file) in event-time order.

    >>> clock = EventClock()
    >>> list(clock.advance(0, 10 * DAY_MS)), list(clock.advance(1, 10 * DAY_MS))
    ([], [])
    >>> list(clock.advance(0, 13 * DAY_MS))  # partition 1 is still on day 10: nothing is complete yet
    []
    >>> [midnight // DAY_MS for midnight in clock.advance(1, 12 * DAY_MS + 5)]
    [11, 12]
    """

    __slots__ = ("day", "partition_days")

    def __init__(self) -> None:
        self.day: int | None = None
        self.partition_days: dict[int, int] = {}

    def advance(self, partition: int, ts_ms: int) -> list[int]:
        """Take one usage event; returns the midnights (epoch ms) the clock crossed, oldest first."""
        day = ts_ms // DAY_MS
        known = self.partition_days.get(partition)
        if known is not None and day <= known:
            return []
        self.partition_days[partition] = day
        low = min(self.partition_days.values())
        if self.day is None:
            self.day = low
            return []
        if low <= self.day:
            return []
        crossed = range(max(self.day + 1, low - MAX_SWEPT_GAP_DAYS), low + 1)
        self.day = low
        return [midnight * DAY_MS for midnight in crossed]

    def retain(self, partitions: Iterable[int]) -> None:
        """After a rebalance: forget partitions handed to another worker (they no longer hold the clock)."""
        kept = set(partitions)
        self.partition_days = {p: day for p, day in self.partition_days.items() if p in kept}

    def to_state(self) -> dict[str, Any]:
        return {"day": self.day, "partitions": {str(p): day for p, day in self.partition_days.items()}}

    def restore(self, state: dict[str, Any], partitions: Iterable[int]) -> None:
        """Take a saved clock's days for ``partitions`` this clock does not know yet.

        The clock's own day becomes the saved one when it had none: the midnights the saved clock already
        swept are not swept again, and none after it is skipped (a restart between two days loses no sweep).

        >>> clock = EventClock()
        >>> clock.restore({"day": 9, "partitions": {"0": 10, "1": 9}}, [0])
        >>> clock.day, clock.partition_days
        (9, {0: 10})
        """
        saved = state.get("partitions", {})
        for partition in partitions:
            day = saved.get(str(partition))
            if day is not None and partition not in self.partition_days:
                self.partition_days[partition] = day
        if self.day is None and state.get("day") is not None:
            self.day = state["day"]
