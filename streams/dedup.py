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

import heapq
from hashlib import blake2b

import orjson

from streams.events import BillingEvent, Event, SupportEvent, UsageEvent

KEY_BYTES = 16


def event_key(event: Event) -> bytes:
    """A 16-byte key: of (type, account, ``event_id``) when the event has an id, else of its canonical fields.

    >>> a = UsageEvent("acme", 1795687200000, "login", "u1", 1)
    >>> event_key(a) == event_key(UsageEvent("acme", 1795687200000, "login", "u1", 1))
    True
    >>> event_key(a) == event_key(UsageEvent("acme", 1795687200000, "login", "u1", 2))
    False
    >>> with_id = [UsageEvent("acme", ts, "login", None, 1, "e-1") for ts in (1, 2)]
    >>> event_key(with_id[0]) == event_key(with_id[1])
    True
    """
    fields: tuple[object, ...]
    if event.event_id is not None:
        fields = (type(event).__name__, event.account_id, event.event_id)
    elif type(event) is UsageEvent:
        fields = ("u", event.account_id, event.ts_ms, event.event, event.user_id, event.count)
    elif type(event) is SupportEvent:
        fields = ("s", event.account_id, event.ts_ms, event.kind, event.priority, event.score)
    else:
        assert type(event) is BillingEvent
        fields = ("b", event.account_id, event.ts_ms, event.kind, event.mrr, event.plan)
    return blake2b(orjson.dumps(fields), digest_size=KEY_BYTES).digest()


class Deduplicator:
    """Remembers event keys for ``horizon_ms`` of event time and at most ``max_keys`` of them.

    >>> dedup = Deduplicator(horizon_ms=10, max_keys=100)
    >>> dedup.is_duplicate(b"k", 100, origin=1), dedup.is_duplicate(b"k", 100, origin=2)
    (False, True)
    >>> dedup.is_duplicate(b"k", 100, origin=1)  # the first copy read again: not a duplicate
    False
    >>> dedup.first_origin(b"k"), dedup.duplicates
    (1, 1)
    >>> dedup.is_duplicate(b"other", 200, origin=3), dedup.is_duplicate(b"k", 100, origin=4)  # k expired
    (False, False)
    """

    def __init__(self, *, horizon_ms: int, max_keys: int) -> None:
        self.horizon_ms = horizon_ms
        self.max_keys = max_keys
        self.duplicates = 0
        self._origins: dict[bytes, tuple[int, int]] = {}  # key -> (ts_ms, origin)
        self._expiry: list[tuple[int, bytes]] = []  # (ts_ms, key), a min-heap
        self._newest = -1

    def __len__(self) -> int:
        return len(self._origins)

    def first_origin(self, key: bytes) -> int | None:
        """Where ``key`` was first seen, while it is remembered."""
        known = self._origins.get(key)
        return None if known is None else known[1]

    def is_duplicate(self, key: bytes, ts_ms: int, *, origin: int) -> bool:
        """True (and counted) when ``key`` was seen before from another origin; else remember it."""
        known = self._origins.get(key)
        if known is not None:
            if known[1] == origin:
                return False
            self.duplicates += 1
            return True
        if self.max_keys <= 0:
            return False
        self._origins[key] = (ts_ms, origin)
        heapq.heappush(self._expiry, (ts_ms, key))
        if ts_ms > self._newest:
            self._newest = ts_ms
        self._expire()
        return False

    def _expire(self) -> None:
        horizon = self._newest - self.horizon_ms
        expiry = self._expiry
        origins = self._origins
        while expiry and (expiry[0][0] < horizon or len(origins) > self.max_keys):
            ts_ms, key = heapq.heappop(expiry)
            known = origins.get(key)
            if known is not None and known[0] == ts_ms:
                del origins[key]
