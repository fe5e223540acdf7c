"""Where the engine keeps account states: the :class:`StateStore` protocol and its two implementations.

The engine asks a store for four things: an account's state (``get``), to keep a new or changed one
(``put``), the keys of the accounts it owns (``owned``, what a sweep evaluates) and the engine's own state
(risk model, outage guard, event clock) saved with them. What is durable, when, and in which form is the
store's business, so a compact store (columnar arrays, a due-time index; issue 15) can replace these
without touching the engine: it may keep states in any form as long as ``get`` hands out an object that a
following ``put`` writes back.

- :class:`MemoryStore`: decoded states in a dict (replay, tests).
- :class:`CachedStore`: decoded states cached over a mapping of stored rows (the live worker's Faust table;
  a dict in tests). Changed states are written at :meth:`CachedStore.commit`; a restart reads the rows.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, MutableMapping
from typing import Protocol

import orjson

from detectors.windows import WindowConfig
from streams.engine.state import AccountState, RowForm
from streams.engine.steps import Steps, drain

# Keys of stored rows that are no account: engine state and driver bookkeeping, one per partition.
RESERVED_PREFIX = b"\x00"
ENGINE_KEY = RESERVED_PREFIX + b"engine/%d"
# A risk model alone, as versions before the engine saved it and ``churnwatch backfill`` writes it: adopted
# at restore when it learned from more outcomes than the engine's own.
LEGACY_RISK_MODEL_KEY = RESERVED_PREFIX + b"risk-model/%d"

# States a commit encodes and writes between two steps (~20 µs each; a step costs ~1 µs).
WRITES_PER_STEP = 16

RowWriter = Callable[[int, bytes, bytes], None]  # (partition, key, row): e.g. a changelog record


class StateStore(Protocol):
    """The engine's view of account state (see the module docstring)."""

    def get(self, key: bytes) -> AccountState | None:
        """The account's state, or None when the store has never seen it."""
        ...

    def put(self, key: bytes, state: AccountState) -> None:
        """Keep a new or changed state (it counts among :meth:`changed` until the store commits)."""
        ...

    def changed(self) -> Collection[bytes]:
        """Keys put since the last commit."""
        ...

    def owned(self) -> Iterator[bytes]:
        """Keys of the accounts this engine owns (live: of the partitions it is active for)."""
        ...

    def owned_among(self, keys: Iterable[bytes]) -> Iterator[bytes]:
        """Those of ``keys`` whose accounts this engine owns, in the order given."""
        ...

    def engine_states(self) -> list[bytes]:
        """Saved engine states of the owned partitions (empty when none)."""
        ...

    def put_engine_state(self, raw: bytes) -> None:
        """Keep the engine's state, made durable with the account states."""
        ...


class MemoryStore:
    """Decoded states in memory, nothing durable: replay's store."""

    def __init__(self) -> None:
        self.states: dict[bytes, AccountState] = {}
        self._changed: set[bytes] = set()
        self.engine_state: bytes | None = None

    def get(self, key: bytes) -> AccountState | None:
        return self.states.get(key)

    def put(self, key: bytes, state: AccountState) -> None:
        self.states[key] = state
        self._changed.add(key)

    def changed(self) -> Collection[bytes]:
        return self._changed

    def owned(self) -> Iterator[bytes]:
        return iter(self.states)

    def owned_among(self, keys: Iterable[bytes]) -> Iterator[bytes]:
        states = self.states
        return (key for key in keys if key in states)

    def engine_states(self) -> list[bytes]:
        return [self.engine_state] if self.engine_state is not None else []

    def put_engine_state(self, raw: bytes) -> None:
        self.engine_state = raw

    def commit(self) -> None:
        self._changed.clear()


class CachedStore:
    """Decoded states cached over stored rows; changed ones are written at :meth:`commit`.

    Parameters
    ----------
    rows
        Stored rows by key: account states (:meth:`AccountState.to_bytes`) and reserved keys.
    window_config
        To decode stored windows.
    owned_partitions
        The partitions this store's engine is active for (a rebalance changes them).
    on_write
        Called with (partition, key, row) after each row written (the live worker sends a changelog record).
    cache_limit
        Decoded states kept after a commit, at most (oldest dropped first; all are clean then).
    rows_in_parts
        Whether an old account's row may be written in two frames (:meth:`AccountState.to_bytes`).
    """

    def __init__(
        self,
        rows: MutableMapping[bytes, bytes],
        window_config: WindowConfig,
        owned_partitions: Callable[[], Collection[int]],
        *,
        on_write: RowWriter | None = None,
        cache_limit: int | None = None,
        rows_in_parts: bool = True,
    ) -> None:
        self.rows = rows
        self.rows_in_parts = rows_in_parts
        self.window_config = window_config
        self.owned_partitions = owned_partitions
        self.on_write = on_write
        self.cache_limit = cache_limit
        self.cache: dict[bytes, AccountState] = {}
        self.dirty: set[bytes] = set()
        # Of the states the running commit writes, those not written yet, and the partitions it writes.
        self.unwritten: set[bytes] = set()
        self.writing_partitions: set[int] = set()
        self.engine_state: bytes | None = None
        self.rows_written: Counter[RowForm] = Counter()  # account rows by form, since the last take

    def take_rows_written(self) -> Counter[RowForm]:
        """The account rows written by form since the last call (``churnwatch_state_rows_written_total``)."""
        written, self.rows_written = self.rows_written, Counter()
        return written

    def get(self, key: bytes) -> AccountState | None:
        state = self.cache.get(key)
        if state is None:
            raw = self.rows.get(key)
            if raw is None:
                return None
            state = self.cache[key] = AccountState.from_bytes(raw, self.window_config)
        elif key in self.unwritten:  # the running commit writes it before the caller may change it
            self._write(key, state)
        return state

    def put(self, key: bytes, state: AccountState) -> None:
        self.cache[key] = state
        self.dirty.add(key)

    def changed(self) -> Collection[bytes]:
        return self.dirty

    def has_room(self) -> bool:
        """Whether the cache holds fewer decoded states than its limit (it is trimmed only at a commit)."""
        return self.cache_limit is None or len(self.cache) < self.cache_limit

    def owned(self) -> Iterator[bytes]:
        active = set(self.owned_partitions())
        stored: set[bytes] = set()  # the rows' keys (faster to ask than Faust's rows, a Python mapping)
        for key, _ in self.rows_of(active):
            stored.add(key)
            yield key
        for key, state in list(self.cache.items()):  # a copy: the caller may decode (cache) as it goes
            if state.partition in active and key not in stored:
                yield key

    def owned_among(self, keys: Iterable[bytes]) -> Iterator[bytes]:
        active = set(self.owned_partitions())
        for key in keys:
            state = self.cache.get(key)
            if state is not None:
                partition = state.partition
            elif (raw := self.rows.get(key)) is not None:
                partition = AccountState.partition_of(raw)
            else:
                continue
            if partition in active:
                yield key

    def rows_of(self, partitions: Collection[int]) -> Iterator[tuple[bytes, bytes]]:
        """Stored account rows of ``partitions`` (no reserved keys)."""
        partition_of = AccountState.partition_of
        for key, raw in list(self.rows.items()):
            if not key.startswith(RESERVED_PREFIX) and partition_of(raw) in partitions:
                yield key, raw

    def engine_states(self) -> list[bytes]:
        found = []
        for partition in self.owned_partitions():
            raw = self.rows.get(ENGINE_KEY % partition)
            legacy = self.rows.get(LEGACY_RISK_MODEL_KEY % partition)
            if raw is not None:
                found.append(raw)
            if legacy is not None:
                found.append(orjson.dumps({"model": orjson.loads(legacy)}))
        return found

    def put_engine_state(self, raw: bytes) -> None:
        self.engine_state = raw

    def write(self, partition: int, key: bytes, raw: bytes) -> None:
        """Store one row (and tell ``on_write``)."""
        self.rows[key] = raw
        if self.on_write is not None:
            self.on_write(partition, key, raw)

    def commit(self) -> None:
        """Write changed states of owned partitions and the engine's state; trim the cache.

        A changed state of a partition no longer owned is not written: its new owner writes it now.
        """
        drain(self.commit_steps())

    def commit_steps(self) -> Steps[None]:
        """:meth:`commit` in steps: it yields after every :data:`WRITES_PER_STEP` states written and after
        each one dropped from the cache (:mod:`streams.engine.steps`).

        What it writes is what there is when it is called: the states changed by then, as they are then, and
        the engine's state. The live worker folds batches between its steps: a state one of them asks for
        (:meth:`get`, before changing it) is written first, so the rows stay one point in time, the one the
        checkpoint records the offsets of; its change is the next commit's. The cache is trimmed of states
        not changed since."""
        self.unwritten, self.dirty = self.dirty, set()
        self.writing_partitions = set(self.owned_partitions())
        engine_state, self.engine_state = self.engine_state, None
        return self._write_steps(list(self.unwritten), engine_state)

    def _write_steps(self, taken: list[bytes], engine_state: bytes | None) -> Steps[None]:
        owned = self.writing_partitions
        for index, key in enumerate(taken, 1):
            state = self.cache.get(key)
            if state is not None and key in self.unwritten:
                self._write(key, state)
            if index % WRITES_PER_STEP == 0:
                yield
        self.unwritten.clear()
        if engine_state is not None:
            for partition in owned:
                key = ENGINE_KEY % partition
                if self.rows.get(key) != engine_state:  # it changes with sweeps, not with every batch
                    self.write(partition, key, engine_state)
        overflow = len(self.cache) - self.cache_limit if self.cache_limit is not None else 0
        if overflow > 0:
            oldest = itertools.islice(self.cache, overflow + len(self.dirty))
            for key in [key for key in oldest if key not in self.dirty][:overflow]:
                if key not in self.dirty:  # a batch between two steps may have changed it
                    del self.cache[key]  # frees the state's objects: ~20 µs
                yield

    def _write(self, key: bytes, state: AccountState) -> None:
        """Write one state of the running commit (unless its partition is no longer owned)."""
        self.unwritten.discard(key)
        if state.partition in self.writing_partitions:
            previous = self.rows.get(key) if state.closed_unchanged() else None
            copied = state.copies_closed(previous, self.rows_in_parts)
            row = state.to_bytes(previous, parts=self.rows_in_parts)
            self.rows_written[RowForm.CLOSED_COPIED if copied else RowForm.of(row)] += 1
            self.write(state.partition, key, row)
            state.mark_written(row)

    def forget(self) -> None:
        """Drop what is not committed (partitions change hands: the rows are the truth from here on)."""
        self.cache.clear()
        self.dirty.clear()
        self.unwritten.clear()
        self.engine_state = None

    def drop_rows_except(self, kept: Collection[int]) -> None:
        """Forget stored account rows of partitions outside ``kept`` (after a rebalance)."""
        partition_of = AccountState.partition_of
        foreign = [
            key
            for key, raw in self.rows.items()
            if not key.startswith(RESERVED_PREFIX) and partition_of(raw) not in kept
        ]
        for key in foreign:
            del self.rows[key]
