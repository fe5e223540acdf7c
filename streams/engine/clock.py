"""The engine's clocks: the event-time clock that drives sweeps, and the wall clock it is given."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from detectors.windows import DAY_MS

WallClock = Callable[[], int]  # epoch milliseconds
# A gap in the events is swept day by day, up to this many days; earlier midnights of the gap are skipped.
MAX_SWEPT_GAP_DAYS = 62
SPARSE_TYPES = ("support", "billing")  # the topics that may hold the clock (usage moves it)
SparseKey = tuple[int, str]  # (partition, event type)


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class SparseHolds:
    """Which sparse topic partitions hold the event clock back, and for how long (live only).

    The driver reports the sparse topic partitions it reads and whether each has a backlog (records past
    what it handed over). Each holds the clock at the day of its newest folded event (at the clock's own day
    before its first): midnights up to that day can be swept, later ones wait for it, as Kafka Streams' tasks
    wait for an input partition (``max.task.idle.ms``). A topic partition with a backlog holds for
    ``bound_ms`` of wall time from when it first stopped a midnight; an event folded from it starts the hold
    again, so a backlog being read holds the clock as long as it makes progress, and a stuck one delays a
    midnight by ``bound_ms`` at most, once, until it moves again. A caught-up one holds the same way for
    ``idle_ms`` (0: not at all): it may only be waiting for events still to be produced. A change between
    the two, reported, starts the hold again.

    >>> now = [0]
    >>> holds = SparseHolds(30_000, 0, lambda: now[0])
    >>> holds.report({(0, "support"): True, (1, "support"): False})
    >>> holds.limit(12, 10, {(0, "support"): 11})  # the clock may go to day 11, not 12
    11
    >>> now[0] = 30_000
    >>> holds.limit(12, 10, {(0, "support"): 11})  # stuck for the bound: no longer holds
    12
    """

    __slots__ = ("bound_ms", "deadlines", "idle_ms", "monotonic", "read")

    def __init__(self, bound_ms: int, idle_ms: int = 0, monotonic: WallClock = monotonic_ms) -> None:
        self.bound_ms = bound_ms
        self.idle_ms = idle_ms
        self.monotonic = monotonic
        self.read: dict[SparseKey, bool] = {}  # reported sparse topic partitions -> has a backlog
        self.deadlines: dict[SparseKey, int] = {}

    def report(self, backlogs: Mapping[SparseKey, bool]) -> None:
        """The sparse topic partitions the driver reads now, each with whether it has a backlog."""
        for key, backlog in backlogs.items():
            if self.read.get(key) is not backlog:
                self.deadlines.pop(key, None)  # a backlog to read, or caught up: a hold of its own
        self.read = dict(backlogs)

    def progress(self, key: SparseKey) -> None:
        self.deadlines.pop(key, None)

    def limit(self, low: int, day: int, sparse_days: Mapping[SparseKey, int]) -> int:
        """The day the clock may reach: ``low`` (the usage partitions'), or less while a hold lasts."""
        limit = low
        now: int | None = None
        for key, backlog in self.read.items():
            held = sparse_days.get(key, day)
            bound = self.bound_ms if backlog else self.idle_ms
            if held >= low or bound <= 0:
                continue
            if now is None:
                now = self.monotonic()
            deadline = self.deadlines.setdefault(key, now + bound)
            if now < deadline:
                limit = min(limit, held)
        return limit

    def forget(self) -> None:
        """After a rebalance: the driver reports again what it reads."""
        self.read = {}
        self.deadlines = {}


class EventClock:
    """The event-time clock: the UTC day every usage partition the engine reads has reached.

    Each partition's watermark is the day of its newest usage event; the clock is the smallest of them over
    the partitions that delivered usage. A partition read ahead of another (a backlog, a lagging fetch, a
    slower broker) must not sweep days whose usage the other has not delivered yet: its accounts would look
    silent all at once, which is what an ingestion outage looks like. Usage moves the clock. The sparse
    support and billing topics, when the driver reports them (:meth:`report`, the live worker), hold it back
    while they have not delivered the days it would sweep (:class:`SparseHolds`); read *ahead* of usage they
    change nothing, as a sweep hides the days after it. Replay reads one "partition" (the file) in event-time
    order and reports no sparse topic.

    >>> clock = EventClock()
    >>> list(clock.advance(0, 10 * DAY_MS)), list(clock.advance(1, 10 * DAY_MS))
    ([], [])
    >>> list(clock.advance(0, 13 * DAY_MS))  # partition 1 is still on day 10: nothing is complete yet
    []
    >>> [midnight // DAY_MS for midnight in clock.advance(1, 12 * DAY_MS + 5)]
    [11, 12]
    """

    __slots__ = ("day", "holds", "partition_days", "sparse_days")

    def __init__(self, holds: SparseHolds | None = None) -> None:
        self.day: int | None = None
        self.partition_days: dict[int, int] = {}
        self.sparse_days: dict[SparseKey, int] = {}
        self.holds = holds

    def advance(self, partition: int, ts_ms: int) -> list[int]:
        """Take one usage event; returns the midnights (epoch ms) the clock crossed, oldest first."""
        day = ts_ms // DAY_MS
        known = self.partition_days.get(partition)
        if known is not None and day <= known:
            return []
        self.partition_days[partition] = day
        return self.catch_up()

    def sparse(self, partition: int, event_type: str, ts_ms: int) -> list[int]:
        """Take one support or billing event (before it is folded); returns the midnights a hold let go."""
        key = (partition, event_type)
        day = ts_ms // DAY_MS
        known = self.sparse_days.get(key)
        if known is None or day > known:
            self.sparse_days[key] = day
        holds = self.holds
        if holds is None or key not in holds.read:
            return []
        holds.progress(key)
        return self.catch_up() if known is None or day > known else []

    def report(self, backlogs: Mapping[SparseKey, bool]) -> list[int]:
        """The driver's sparse topic partitions and their backlogs; returns the midnights now crossed (a hold
        that ended)."""
        if self.holds is None:
            return []
        self.holds.report(backlogs)
        return self.catch_up()

    def catch_up(self) -> list[int]:
        """The midnights the clock crosses now, oldest first."""
        if not self.partition_days:
            return []
        low = min(self.partition_days.values())
        if self.day is None:
            self.day = low
            return []
        if low <= self.day:
            return []
        if self.holds is not None:
            low = self.holds.limit(low, self.day, self.sparse_days)
            if low <= self.day:
                return []
        crossed = range(max(self.day + 1, low - MAX_SWEPT_GAP_DAYS), low + 1)
        self.day = low
        return [midnight * DAY_MS for midnight in crossed]

    def held_days(self) -> int:
        """Days the usage partitions are ahead of the clock (a hold, or a partition ahead of another)."""
        if self.day is None or not self.partition_days:
            return 0
        return max(0, min(self.partition_days.values()) - self.day)

    def retain(self, partitions: Iterable[int]) -> None:
        """After a rebalance: forget partitions handed to another worker (they no longer hold the clock)."""
        kept = set(partitions)
        self.partition_days = {p: day for p, day in self.partition_days.items() if p in kept}
        self.sparse_days = {key: day for key, day in self.sparse_days.items() if key[0] in kept}
        if self.holds is not None:
            self.holds.forget()

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "day": self.day,
            "partitions": {str(p): day for p, day in self.partition_days.items()},
        }
        if self.sparse_days:
            state["sparse"] = {f"{p}/{event_type}": day for (p, event_type), day in self.sparse_days.items()}
        return state

    def restore(self, state: dict[str, Any], partitions: Iterable[int]) -> None:
        """Take a saved clock's days for ``partitions`` this clock does not know yet.

        The clock's own day becomes the saved one when it had none: the midnights the saved clock already
        swept are not swept again, and none after it is skipped (a restart between two days loses no sweep).

        >>> clock = EventClock()
        >>> clock.restore({"day": 9, "partitions": {"0": 10, "1": 9}, "sparse": {"0/billing": 8}}, [0])
        >>> clock.day, clock.partition_days, clock.sparse_days
        (9, {0: 10}, {(0, 'billing'): 8})
        """
        owned = set(partitions)
        saved = state.get("partitions", {})
        for partition in owned:
            day = saved.get(str(partition))
            if day is not None and partition not in self.partition_days:
                self.partition_days[partition] = day
        for name, day in state.get("sparse", {}).items():
            number, event_type = name.split("/", 1)  # not `partition`: an int above (mypyc enforces it)
            key = (int(number), event_type)
            if key[0] in owned and key not in self.sparse_days:
                self.sparse_days[key] = day
        if self.day is None and state.get("day") is not None:
            self.day = state["day"]
