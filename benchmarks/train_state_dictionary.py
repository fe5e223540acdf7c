"""Train the zstd dictionary stored account states are compressed with (``streams/engine/state.zdict``).

Stored rows are small JSON documents that repeat the same keys and shapes; zstd on its own cannot learn
those from a single row, a dictionary trained on many rows can. The training rows are the final states of
replays of our own generators only: the simulator (seed 11) and the *tuning* mix of the customer-base
shapes (seed 111). The figures are then measured on files not trained on: the simulator with seed 12 and
the shapes' *held-out* mix (seed 212), with and without the dictionary.

    .venv/bin/python benchmarks/train_state_dictionary.py            # measure only
    .venv/bin/python benchmarks/train_state_dictionary.py --write    # and replace streams/engine/state.zdict

Replacing the shipped dictionary would make rows written with it unreadable: zstd frames name the dictionary
they need (rows written before any dictionary need none and stay readable). So ``--write`` is for a new
deployment's first start, or together with a state-version change that keeps the old dictionary too.
Figures: docs/performance.md, "State size and memory".
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import zstandard

from streams.dev.shapes import ShapedBase, ShapesConfig
from streams.dev.simulator import Simulation, SimulationConfig
from streams.engine.state import DICTIONARY_PATH
from streams.offline.replay import run_replay

START = datetime(2026, 3, 2, tzinfo=UTC)
SIZE = 32 * 1024


def bodies(events: Iterable[dict[str, object]]) -> list[bytes]:
    """The JSON bodies of every account's final state after replaying ``events``."""
    result = run_replay([orjson.dumps(event) for event in events])
    states = result.account_states.values()
    return [body for state in states for body in (state.closed_body(), state.open_body())]


def simulated(seed: int, accounts: int, days: int) -> list[bytes]:
    config = SimulationConfig(seed=seed, accounts=accounts, days=days, start=START)
    return bodies(Simulation(config).events())


def shaped(mix: str, seed: int, accounts: int, days: int) -> list[bytes]:
    base = ShapedBase(ShapesConfig(mix=mix, seed=seed, accounts=accounts, days=days, start=START))
    return bodies(base.events())


def sizes(rows: list[bytes], compressor: zstandard.ZstdCompressor) -> str:
    lengths = sorted(len(compressor.compress(row)) + 2 for row in rows)  # + the 2-byte partition prefix
    p90 = lengths[int(0.9 * (len(lengths) - 1))]
    median, mean = lengths[len(lengths) // 2], statistics.fmean(lengths)
    return f"mean {mean:.0f} B, median {median}, p90 {p90}, max {lengths[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--write", action="store_true", help=f"replace {DICTIONARY_PATH}")
    args = parser.parse_args()
    training = simulated(11, args.accounts, args.days) + shaped("tuning", 111, args.accounts, args.days)
    trained = zstandard.train_dictionary(SIZE, list[bytes | bytearray | memoryview](training), level=1)
    print(
        f"trained a {len(trained.as_bytes()):,}-byte dictionary (id {trained.dict_id()})",
        f"on {len(training):,} states",
    )
    current = (
        zstandard.ZstdCompressionDict(DICTIONARY_PATH.read_bytes()) if DICTIONARY_PATH.exists() else None
    )
    for label, rows in (
        ("simulator seed 12", simulated(12, args.accounts, args.days)),
        ("shapes held-out mix seed 212", shaped("heldout", 212, args.accounts, args.days)),
    ):
        print(f"{label}, {len(rows):,} accounts after {args.days} days:")
        print(f"  no dictionary:        {sizes(rows, zstandard.ZstdCompressor(level=1))}")
        print(f"  trained now:          {sizes(rows, zstandard.ZstdCompressor(level=1, dict_data=trained))}")
        if current is not None:
            print(
                f"  shipped dictionary:   {sizes(rows, zstandard.ZstdCompressor(level=1, dict_data=current))}"
            )
    if args.write:
        Path(DICTIONARY_PATH).write_bytes(trained.as_bytes())
        print(f"wrote {DICTIONARY_PATH}")


if __name__ == "__main__":
    main()
