"""The live worker's state store: the engine's :class:`~streams.engine.CachedStore` over the Faust table.

Account states are rows of the changelog-backed ``accounts`` table (key: account id; value:
:meth:`~streams.engine.AccountState.to_bytes`); every row written also goes to the partition's changelog.
The same table holds, under reserved keys, the engine's saved state and the event reader's checkpoint
(the partition's next offset per event topic), so a new owner recovers both with the states.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson

from detectors.windows import WindowConfig
from streams.engine import AccountState, CachedStore
from streams.engine.store import RESERVED_PREFIX
from streams.live.event_reader import Positions

ACCOUNTS_TABLE = "accounts"
POSITIONS_KEY = RESERVED_PREFIX + b"positions/%d"
# Every checkpoint rewrites each changed account: roll segments often and compact eagerly, so a recovery
# reads about one record per account rather than the whole history of checkpoints.
CHANGELOG_COMPACTION = {
    "segment.bytes": 16 * 2**20,
    "segment.ms": 10 * 60 * 1000,
    "min.cleanable.dirty.ratio": 0.1,
}


class TableStore(CachedStore):
    """Account states cached over the ``accounts`` table; rows written to its changelog too."""

    def __init__(
        self,
        table: Any,
        window_config: WindowConfig,
        owned_partitions: Callable[[], Collection[int]],
        *,
        cache_limit: int,
    ) -> None:
        super().__init__(
            table.data, window_config, owned_partitions, on_write=self._changelog, cache_limit=cache_limit
        )
        self.table = table

    def _changelog(self, partition: int, key: bytes, raw: bytes) -> None:
        self.table.send_changelog(partition, key, raw)

    def stored_positions(self, partition: int) -> dict[str, int]:
        """The event reader's checkpoint of ``partition`` (empty before the first)."""
        raw = self.rows.get(POSITIONS_KEY % partition)
        return orjson.loads(raw) if raw is not None else {}

    def write_positions(self, positions: Positions) -> None:
        for partition, offsets in positions.items():
            raw = orjson.dumps({**self.stored_positions(partition), **offsets})
            self.write(partition, POSITIONS_KEY % partition, raw)

    def account(self, key: bytes) -> AccountState | None:
        """An account's state for the API: the cached one, else decoded from its row (not cached)."""
        state = self.cache.get(key)
        if state is not None:
            return state
        raw = self.rows.get(key)
        return AccountState.from_bytes(raw, self.window_config) if raw is not None else None

    def accounts_known(self, active: Collection[int]) -> int:
        """Accounts of ``active`` partitions, including those not yet checkpointed."""
        return self.census(active)[0]

    def census(self, active: Collection[int]) -> tuple[int, int]:
        """(accounts known, bytes stored) of ``active`` partitions, in one pass over the rows (at 1 M
        accounts each pass takes about half a second of the event loop)."""
        stored = size = 0
        for _, raw in self.rows_of(active):
            stored += 1
            size += len(raw)
        return stored + sum(key not in self.rows for key in self.dirty), size
