"""The input most benchmarks share: ``--events FILE``, or a simulator file of ``--accounts`` x ``--days``.

Usage in a benchmark (run as ``.venv/bin/python benchmarks/NAME.py``, so this folder is on ``sys.path``)::

    from simulated_file import add_file_arguments, events_file

    add_file_arguments(parser)                   # --events, --accounts, --days, --seed
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))      # --events, or simulated into tmp
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from streams.dev.simulator import Simulation, SimulationConfig, write_jsonl

START = datetime(2026, 6, 1, tzinfo=UTC)


def add_file_arguments(
    parser: argparse.ArgumentParser, *, accounts: int = 1000, days: int = 90, seed: int = 3
) -> None:
    """``--events`` and, for the simulated file used without it, ``--accounts``, ``--days`` and ``--seed``."""
    parser.add_argument("--events", type=Path, default=None, help="Replay this file instead of simulating.")
    parser.add_argument("--accounts", type=int, default=accounts)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--seed", type=int, default=seed)


def events_file(args: argparse.Namespace, directory: Path) -> Path:
    """``args.events``, or a simulator file written to ``directory`` (starting 2026-06-01)."""
    if args.events is not None:
        return Path(args.events)
    path = directory / "events.jsonl"
    config = SimulationConfig(seed=args.seed, accounts=args.accounts, days=args.days, start=START)
    write_jsonl(Simulation(config), path)
    return path
