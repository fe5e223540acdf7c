"""Drop duplicate events by id, with memory bounded by event time and by count (live ingest and replay alike).

Producers retry, so the same event can arrive twice with different Kafka offsets (or twice in a file). An
event is identified by its ``event_id`` when the producer sent one, else by a hash of its canonical fields
(:func:`event_key`). A :class:`Deduplicator` remembers each key with the *origin* it was first seen at (a
record position or a line number) for ``horizon_ms`` of event time behind the newest event it saw, and at
most ``max_keys`` keys: duplicates further apart than that are not expected (the live path's lateness
allowance rejects most of them anyway). Seeing a key again from its own origin is a re-read, not a
duplicate: a worker that re-consumes records after reloading an older state must apply them again.
"""

from __future__ import annotations

from collections import deque

from streams.events import BillingEvent, Event, SupportEvent, UsageEvent


def event_key(event: Event) -> int:
    """The event's identity: a hash of (type, account, ``event_id``), else of its canonical fields.

    Python's tuple hash (64 bits, strings salted per process: keys are compared within one process only).
    Two different events collide with probability 2**-64 per pair: with 250,000 keys remembered, about once
    in 7 * 10**13 events.

    >>> a = UsageEvent("acme", 1795687200000, "login", "u1", 1)
    >>> event_key(a) == event_key(UsageEvent("acme", 1795687200000, "login", "u1", 1))
    True
    >>> event_key(a) == event_key(UsageEvent("acme", 1795687200000, "login", "u1", 2))
    False
    >>> with_id = [UsageEvent("acme", ts, "login", None, 1, "e-1") for ts in (1, 2)]
    >>> event_key(with_id[0]) == event_key(with_id[1])
    True
    """
    if event.event_id is not None:
        return hash((type(event).__name__, event.account_id, event.event_id))
    if type(event) is UsageEvent:
        return hash(("u", event.account_id, event.ts_ms, event.event, event.user_id, event.count))
    if type(event) is SupportEvent:
        return hash(("s", event.account_id, event.ts_ms, event.kind, event.priority, event.score))
    assert type(event) is BillingEvent
    return hash(("b", event.account_id, event.ts_ms, event.kind, event.mrr, event.plan))


class Deduplicator:
    """Remembers event keys for ``horizon_ms`` of event time and at most ``max_keys`` of them.

    >>> dedup = Deduplicator(horizon_ms=10, max_keys=100)
    >>> dedup.is_duplicate(7, 100, origin=1), dedup.is_duplicate(7, 100, origin=2)
    (False, True)
    >>> dedup.is_duplicate(7, 100, origin=1)  # the first copy read again: not a duplicate
    False
    >>> dedup.first_origin(7), dedup.duplicates
    (1, 1)
    >>> dedup.is_duplicate(8, 200, origin=3), dedup.is_duplicate(7, 100, origin=4)  # 7 expired
    (False, False)
    >>> few = Deduplicator(horizon_ms=10**9, max_keys=2)  # the count bounds them too, oldest out first
    >>> [few.is_duplicate(key, 1, origin=key) for key in (1, 2, 3)], len(few), few.first_origin(1)
    ([False, False, False], 2, None)
    """

    def __init__(self, *, horizon_ms: int, max_keys: int) -> None:
        self.horizon_ms = horizon_ms
        self.max_keys = max_keys
        self.duplicates = 0
        self._origins: dict[int, int] = {}  # key -> origin; each key is in ``_order`` exactly once
        # Keys in the order first seen: events arrive nearly in time order, so the oldest are in front. One
        # far ahead of its neighbours only keeps those behind it a little longer (max_keys still bounds all).
        self._order: deque[tuple[int, int]] = deque()  # (ts_ms, key)
        self._newest = -(2**63)

    def __len__(self) -> int:
        return len(self._origins)

    def first_origin(self, key: int) -> int | None:
        """Where ``key`` was first seen, while it is remembered."""
        return self._origins.get(key)

    def is_duplicate(self, key: int, ts_ms: int, *, origin: int) -> bool:
        """True (and counted) when ``key`` was seen before from another origin; else remember it."""
        origins = self._origins
        known = origins.get(key)
        if known is not None:
            if known == origin:
                return False
            self.duplicates += 1
            return True
        max_keys = self.max_keys
        if max_keys <= 0:
            return False
        origins[key] = origin
        order = self._order
        order.append((ts_ms, key))
        newest = self._newest
        if ts_ms > newest:
            self._newest = newest = ts_ms
        # Forget what is beyond the horizon or the count, oldest first (written out, not a call: on a
        # stream in time order nearly every new key expires an old one).
        horizon = newest - self.horizon_ms
        while order[0][0] < horizon or len(origins) > max_keys:
            del origins[order.popleft()[1]]
            if not order:
                break
        return False

    def remember(self, key: int, ts_ms: int, *, origin: int) -> None:
        """Learn ``key`` as first seen at ``origin`` (if it is new), counting nothing: records read again to
        rebuild what was remembered before a restart.

        >>> dedup = Deduplicator(horizon_ms=10, max_keys=100)
        >>> dedup.remember(7, 100, origin=1); dedup.remember(7, 100, origin=2)
        >>> dedup.is_duplicate(7, 100, origin=3), dedup.first_origin(7), dedup.duplicates
        (True, 1, 1)
        """
        if key not in self._origins:
            self.is_duplicate(key, ts_ms, origin=origin)
