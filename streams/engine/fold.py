"""The fold: validated events into per-account window state, once per event, exactly once per source offset.

Exactly-once effect on state: an account's state remembers the highest source offset it has applied per
event type. After a crash the records after the last checkpoint are read again; those at or below the
remembered offset are skipped, so nothing is counted twice even though Kafka delivers at least once. A
:class:`~streams.dedup.Deduplicator`, when given, also drops the same event under another offset (a
producer's retry).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors.windows import AccountWindow, WindowConfig
from streams.dedup import Deduplicator, event_key
from streams.engine.state import AccountState
from streams.engine.steps import drain
from streams.events import BillingEvent, Event, SupportEvent, UsageEvent

TOPIC_INDEX: dict[type, int] = {UsageEvent: 0, SupportEvent: 1, BillingEvent: 2}  # as EVENT_TYPES


@dataclass(slots=True)
class Arrival:
    """One valid event and where it came from (``source``: the driver's record, handed back if late)."""

    event: Event
    partition: int
    offset: int
    source: Any = None


# The UTC midnights (ms) an arrival moves the event clock past, in order (usually none).
Midnights = Callable[[Arrival], list[int]]
# Arrivals folded between two steps of :func:`folding`.
ARRIVALS_PER_STEP = 64


class States(Protocol):
    """What the fold needs of a store."""

    def get(self, key: bytes) -> AccountState | None: ...

    def put(self, key: bytes, state: AccountState) -> None: ...


@dataclass(slots=True)
class FoldResult:
    """What one fold did; ``late`` holds the sources of events older than their account's allowance."""

    folded: int = 0
    late: list[Any] = field(default_factory=list)
    skipped_duplicates: int = 0  # offsets at or below the account's applied offset (read again)
    duplicate_events: int = 0  # the same event again under another offset (a producer's retry)
    max_event_ts_ms: int | None = None


def origin_of(arrival: Arrival, topic_index: int) -> int:
    """One integer per (topic, partition, offset): where the deduplicator first saw an event."""
    return (arrival.offset << 16 | arrival.partition) << 2 | topic_index


def remember_arrivals(arrivals: Iterable[Arrival], deduplicator: Deduplicator) -> None:
    """Let ``deduplicator`` learn ``arrivals`` without folding them (records folded before a restart)."""
    for arrival in arrivals:
        event = arrival.event
        deduplicator.remember(
            event_key(event), event.ts_ms, origin=origin_of(arrival, TOPIC_INDEX[type(event)])
        )


def fold_arrivals(
    arrivals: Iterable[Arrival],
    states: States,
    window_config: WindowConfig,
    *,
    deduplicator: Deduplicator | None = None,
    on_folded: Callable[[Event], None] | None = None,
) -> FoldResult:
    """Fold ``arrivals`` in order into ``states``, with no clock (:func:`folding` without midnights)."""
    return drain(folding(arrivals, states, window_config, deduplicator=deduplicator, on_folded=on_folded))


def folding(
    arrivals: Iterable[Arrival],
    states: States,
    window_config: WindowConfig,
    *,
    deduplicator: Deduplicator | None = None,
    usage_midnights: Midnights | None = None,
    sparse_midnights: Midnights | None = None,
    on_folded: Callable[[Event], None] | None = None,
) -> Generator[int | None, None, FoldResult]:
    """Fold ``arrivals`` in order into ``states``; yields each UTC midnight the event clock crosses, before
    the arrival that moved it is folded (the engine sweeps it there), and ``None`` every
    :data:`ARRIVALS_PER_STEP` arrivals (a step: a state not cached is decoded, ~0.1 ms), and returns what the
    fold did.

    ``usage_midnights`` tells the midnights a usage event moves the clock past (usage moves it),
    ``sparse_midnights`` those a support or billing event lets it pass (one may let a held clock go:
    :class:`~streams.engine.clock.SparseHolds`). Each state an arrival reaches is ``put`` back once per
    arrival (a new state is created in the arrival's partition). ``on_folded`` sees every event that was
    folded (not the late or duplicate ones).
    """
    result = FoldResult()
    get, put = states.get, states.put
    for seen, arrival in enumerate(arrivals, 1):
        if not seen % ARRIVALS_PER_STEP:
            yield None
        event = arrival.event
        kind = type(event)
        if kind is UsageEvent:
            if usage_midnights is not None:
                yield from usage_midnights(arrival)
        elif sparse_midnights is not None:
            yield from sparse_midnights(arrival)
        key = event.account_id.encode()
        state = get(key)
        if state is None:
            state = AccountState(AccountWindow(window_config), arrival.partition)
        topic_index = TOPIC_INDEX[kind]
        if arrival.offset <= state.applied_offsets[topic_index]:
            result.skipped_duplicates += 1
            if deduplicator is not None:  # a retry of it under another offset is still a duplicate
                deduplicator.remember(event_key(event), event.ts_ms, origin=origin_of(arrival, topic_index))
            continue
        state.applied_offsets[topic_index] = arrival.offset
        put(key, state)
        if deduplicator is not None and deduplicator.is_duplicate(
            event_key(event), event.ts_ms, origin=origin_of(arrival, topic_index)
        ):
            result.duplicate_events += 1
            continue
        if not _fold_event(state.window, event):
            result.late.append(arrival.source)
            continue
        result.folded += 1
        if on_folded is not None:
            on_folded(event)
        if result.max_event_ts_ms is None or event.ts_ms > result.max_event_ts_ms:
            result.max_event_ts_ms = event.ts_ms
    return result


def _fold_event(window: AccountWindow, event: Event) -> bool:
    if type(event) is UsageEvent:
        return window.add_usage(event.ts_ms, event.event, event.user_id, event.count)
    if type(event) is SupportEvent:
        return window.add_support(event.ts_ms, event.kind, event.priority, event.score)
    assert type(event) is BillingEvent
    return window.add_billing(event.ts_ms, event.kind, event.mrr, event.plan)
