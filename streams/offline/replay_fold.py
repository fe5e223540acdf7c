"""Replay's fold loop: time-ordered events straight into the engine's in-memory states, with no per-event
objects and replay's bookkeeping inline.

The engine's general fold (:func:`streams.engine.fold.fold_arrivals`) takes
:class:`~streams.engine.fold.Arrival` objects in batches, calls back per event and checks offsets a file never
repeats. For a replay without answers
to alerts, this loop does the same work in the same order (the same clock ticks and sweeps before the same
usage events, the same folds, activity and cancellation records) for about half the cost per event;
``tests/test_replay_fast.py`` checks that both give the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from detectors.vocabulary import BillingKind
from detectors.windows import DAY_MS, AccountWindow, WindowConfig
from streams.engine import AccountState, Engine, MemoryStore
from streams.engine.fold import TOPIC_INDEX
from streams.events import LATEST_TS_MS, BillingEvent, Event, SupportEvent, UsageEvent

ProgressCallback = Callable[[int, int], None]  # (events read, event-time watermark in ms)


@dataclass(slots=True)
class OrderedFold:
    """What :func:`fold_in_order` counted (the caller adds it to its result)."""

    accepted: int = 0  # events read
    after_as_of: int = 0
    folded: int = 0
    late: int = 0
    first_ts_ms: int | None = None
    watermark: int = -1


def fold_in_order(
    engine: Engine,
    store: MemoryStore,
    events: Iterable[Event],
    *,
    as_of_ms: int | None,
    activity: dict[str, dict[int, int]] | None,
    cancellations: dict[str, int],
    on_progress: ProgressCallback | None = None,
    progress_every: int = 1 << 16,
    sweeps: bool = True,
) -> OrderedFold:
    """Fold ``events`` (one source, offsets 1, 2, ...; partition 0) as ``engine.fold`` would, one by one.

    Without ``sweeps`` the engine's clock is left alone (a shard of a lock-step replay: the coordinator
    decides when to sweep, ``streams/offline/replay_lockstep.py``).

    Over ~60 lines on purpose: it is the per-event loop of replay, and every call taken out of it costs a
    measurable share of the whole replay.
    """
    done = OrderedFold()
    config, clock, sweep = engine.window_config, engine.clock, engine.sweep
    as_of = as_of_ms if as_of_ms is not None else LATEST_TS_MS
    # Usage at or after it may move the event clock (it is the next UTC midnight).
    next_midnight = -(2**63) if sweeps else LATEST_TS_MS + 1
    next_progress = progress_every if on_progress is not None else LATEST_TS_MS  # more than any count
    by_account: dict[str, AccountState] = {}  # the states of ``states`` by account id (no key to encode)
    accepted = after = late = 0
    watermark = -1
    first_ts: int | None = None
    for event in events:
        accepted += 1
        ts = event.ts_ms
        if ts > as_of:
            after += 1
            continue
        if ts > watermark:
            watermark = ts
        if first_ts is None:
            first_ts = ts
        kind = type(event)
        if kind is UsageEvent and ts >= next_midnight:
            for midnight_ms in clock.advance(0, ts):  # as the engine's fold: sweep each midnight crossed
                sweep(midnight_ms)
            next_midnight = (ts // DAY_MS + 1) * DAY_MS
        account = event.account_id
        state = by_account.get(account)
        if state is None:
            state = by_account[account] = _state_of(store, account.encode(), config)
        if kind is UsageEvent:
            state.applied_offsets[0] = accepted  # TOPIC_INDEX
            if state.window.add_usage(ts, event.event, event.user_id, event.count):  # type: ignore[union-attr]
                if activity is not None:
                    per_day = activity.setdefault(account, {})
                    per_day[ts // DAY_MS] = per_day.get(ts // DAY_MS, 0) + event.count  # type: ignore[union-attr]
            else:
                late += 1
        else:
            state.applied_offsets[TOPIC_INDEX[kind]] = accepted
            late += not _fold_sparse(state, event, cancellations)
        if accepted >= next_progress:
            on_progress(accepted, watermark)  # type: ignore[misc]
            next_progress += progress_every
    done.accepted, done.after_as_of, done.late, done.watermark = accepted, after, late, watermark
    done.folded, done.first_ts_ms = accepted - after - late, first_ts
    return done


def _state_of(store: MemoryStore, key: bytes, config: WindowConfig) -> AccountState:
    """The account's state in ``store``, a new one (put there) for an account not seen before."""
    state = store.states.get(key)
    if state is None:
        state = AccountState(AccountWindow(config), 0)
        store.put(key, state)
    return state


def _fold_sparse(state: AccountState, event: Event, cancellations: dict[str, int]) -> bool:
    """Fold a support or billing event (rarer than usage: a call of its own); False when it is too late."""
    if type(event) is SupportEvent:
        return state.window.add_support(event.ts_ms, event.kind, event.priority, event.score)
    assert type(event) is BillingEvent
    ok = state.window.add_billing(event.ts_ms, event.kind, event.mrr, event.plan)
    if ok and event.kind is BillingKind.SUBSCRIPTION_CANCELED:
        cancellations.setdefault(event.account_id, event.ts_ms)
    return ok
