"""Seeded, deterministic simulator of a SaaS customer base's event streams.

The simulator produces the three canonical event types (``usage``, ``support`` and ``billing``) for a
population of accounts, together with a ground-truth table saying which accounts churn, when and why. It
exists to exercise the detectors end to end and to benchmark the pipeline, so it aims for *plausible*
behaviour rather than fidelity: plans with correlated seat counts, a few power users and many occasional
ones per account, weekday/weekend and holiday seasonality, a diurnal spread of timestamps, skewed event
names, background support load, monthly renewals and a handful of churn archetypes.

One module per job: :mod:`~streams.dev.simulator.config` (parameters, plans, archetypes, rates),
:mod:`~streams.dev.simulator.base` (the accounts and their usual behaviour),
:mod:`~streams.dev.simulator.stories` (churn stories and the ground truth),
:mod:`~streams.dev.simulator.traffic` (day-to-day events) and :mod:`~streams.dev.simulator.days`
(timestamps and holidays). :class:`Simulation` ties them together; ``churnwatch simulate`` is its CLI
(``streams/cli/main.py``). Other customer-base shapes live in ``streams/dev/shapes.py``.

Events are generated day by day (all accounts, sorted by timestamp, then yielded), so memory stays bounded
by one day of traffic whatever the horizon. The same config always yields the same events and truth (tests
and documented figures rely on every seed's output).

Examples
--------
>>> cfg = SimulationConfig(seed=3, accounts=20, days=14)
>>> sim = Simulation(cfg)
>>> events = list(sim.events())
>>> events[0]["type"], events[0]["kind"]
('billing', 'subscription_created')
>>> all(a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
True
>>> events == list(Simulation(cfg).events())
True
>>> truth = sim.truth()
>>> len(truth), truth[0]["account_id"]
(20, 'acct-000000')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from streams.dev.simulator.base import CustomerBase
from streams.dev.simulator.config import ARCHETYPES, PLANS, USAGE_EVENTS, SimulationConfig
from streams.dev.simulator.stories import Stories
from streams.dev.simulator.traffic import Traffic

__all__ = [
    "ARCHETYPES",
    "PLANS",
    "USAGE_EVENTS",
    "EventSource",
    "Simulation",
    "SimulationConfig",
    "write_jsonl",
]


class Simulation:
    """A simulated customer base; see the module docstring for an example.

    Parameters
    ----------
    config : SimulationConfig
        What to simulate. Accounts, archetypes and all churn-related events are drawn here; day-to-day
        traffic is drawn lazily by :meth:`events`, from its own seeded stream, so every call yields the same
        sequence.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        rng = np.random.default_rng([config.seed, 0])
        self.base = CustomerBase(config, rng)
        self.stories = Stories(self.base, rng)  # drawn after the base, from the same stream
        self.account_ids = self.base.account_ids

    def truth(self) -> list[dict[str, Any]]:
        """One row per account: archetype, starting plan/mrr/seats and whether/when/why it churned.

        ``plan`` and ``mrr`` are the values at the start of the horizon; plan changes are listed in
        ``notes``. Churn planned beyond the horizon is reported as not churned (with a note).
        """
        return self.stories.truth()

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield every event in timestamp order (non-decreasing ``ts``); identical for identical configs.

        Starts with each account's ``subscription_created`` (dated at or before ``start``), then walks the
        horizon a day at a time.
        """
        return Traffic(self.base, self.stories).events(np.random.default_rng([self.config.seed, 1]))


class EventSource(Protocol):
    """What :func:`write_jsonl` needs: a :class:`Simulation` or a :class:`streams.dev.shapes.ShapedBase`."""

    def events(self) -> Iterator[dict[str, Any]]: ...

    def truth(self) -> list[dict[str, Any]]: ...


def write_jsonl(sim: EventSource, events_path: Path, truth_path: Path | None = None) -> int:
    """Write ``sim``'s events (and optionally its truth table) as JSON lines.

    Parameters
    ----------
    sim : EventSource
        The simulation to serialise.
    events_path : Path
        Destination of the events, one orjson-encoded object per line.
    truth_path : Path, optional
        Destination of the truth rows, same format.

    Returns
    -------
    int
        Number of events written.
    """
    n = 0
    with Path(events_path).open("wb") as fh:
        batch: list[bytes] = []
        for ev in sim.events():
            batch.append(orjson.dumps(ev))
            if len(batch) >= 8192:
                fh.write(b"\n".join(batch) + b"\n")
                n += len(batch)
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch) + b"\n")
            n += len(batch)
    if truth_path is not None:
        with Path(truth_path).open("wb") as fh:
            for row in sim.truth():
                fh.write(orjson.dumps(row) + b"\n")
    return n
