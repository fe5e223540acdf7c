"""The transport-free engine that live and replay both drive (it imports neither Faust nor Kafka).

- :mod:`~streams.engine.core`: :class:`Engine` (fold, clocks, sweeps, model learning, saved state).
- :mod:`~streams.engine.fold`: the fold of validated events into account windows, exactly once per offset.
- :mod:`~streams.engine.clock`: the event-time clock.
- :mod:`~streams.engine.detection`: sweeps through the detectors, the outage guard and the at-risk view.
- :mod:`~streams.engine.store`: the :class:`StateStore` protocol, an in-memory and a cached row store.
- :mod:`~streams.engine.state`: one account's state and its stored form.
"""

from streams.engine.core import Engine
from streams.engine.detection import AtRisk, SweepOutcome
from streams.engine.fold import Arrival, FoldResult
from streams.engine.state import AccountState
from streams.engine.store import CachedStore, MemoryStore, StateStore

__all__ = [
    "AccountState",
    "Arrival",
    "AtRisk",
    "CachedStore",
    "Engine",
    "FoldResult",
    "MemoryStore",
    "StateStore",
    "SweepOutcome",
]
