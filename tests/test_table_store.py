"""TableStore's census: accounts and stored bytes of the active partitions, in one pass over the rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.windows import AccountWindow, WindowConfig
from streams.engine import AccountState
from streams.live.table_store import POSITIONS_KEY, TableStore

CFG = WindowConfig()


@dataclass
class FakeTable:
    """What TableStore uses of a Faust table: its rows and the changelog."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    sent: list[tuple[int, bytes, bytes]] = field(default_factory=list)

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.sent.append((partition, key, value))


def test_census_counts_active_rows_and_pending_accounts_and_their_bytes() -> None:
    table = FakeTable()
    rows = {f"a{i}".encode(): AccountState(AccountWindow(CFG), i % 2).to_bytes() for i in range(6)}
    table.data.update(rows)
    table.data[POSITIONS_KEY % 0] = b'{"usage": 7}'  # reserved keys are no accounts
    store = TableStore(table, CFG, lambda: [0, 1], cache_limit=10)
    store.put(b"new", AccountState(AccountWindow(CFG), 0))  # folded, not yet checkpointed
    store.put(b"a0", store.get(b"a0") or AccountState(AccountWindow(CFG), 0))  # stored and dirty: once
    accounts, size = store.census({0})
    assert accounts == 3 + 1
    assert size == sum(len(raw) for key, raw in rows.items() if AccountState.partition_of(raw) == 0)
    assert store.accounts_known({0, 1}) == 6 + 1
