"""Resident bytes per account (issue 15): what an account's decoded state costs in memory, by part.

Usage::

    .venv/bin/python benchmarks/resident_state.py --accounts 1000 --days 90 --seed 3 --loaded 10000,100000
    .venv/bin/python benchmarks/resident_state.py --events existing.jsonl --loaded 10000

Two cases, each measured with ``tracemalloc`` (bytes Python allocated, exact, including what pymalloc hands
out for every object) and, for the second, with the process's resident set too:

1. **replayed**: the file is replayed in this process with tracing on (``replay_file``, as ``churnwatch
   replay`` does), and every account's final state stays in the replay's ``MemoryStore``, as the live
   worker's cache holds the accounts it folded and swept.
2. **loaded**: the replay's stored rows (``AccountState.to_bytes``), copied under new keys until there are
   ``N`` accounts, are decoded into a ``CachedStore`` with no cache limit, and every account's detector state
   is decoded as a sweep does (``Detection.detector_of``): the live worker with every account resident. Each
   ``N`` runs in a fresh process (so the replay's freed memory cannot hide growth); "RSS growth" is that
   process's resident set after decoding minus before (rows already in memory), per account. The RSS run
   also times the decoding in CPU µs per account (``time.process_time``): the rows (``AccountState``
   with its window), then the detector states, what a worker pays for each account not in its cache.

Parts are measured by dropping them, one after another, from every account and reading how much traced
memory that frees (objects shared between accounts are freed, and so counted, only with the last of them):
the decoded detector state (``live_detector``), the stored detector form (``detector``), the window, then
the rest (the ``AccountState`` itself, offsets, answers, key, the store's dict slot). "stored rows" is the
row bytes the live worker's table keeps for every account besides its cache (loaded case only).

To compare two commits, run this file against each, with ``PYTHONPATH`` naming a checkout of the other
commit's ``detectors/`` and ``streams/`` (``git archive COMMIT | tar -x -C DIR``), as
``benchmarks/sweep_cost.py`` explains. Figures: docs/performance.md, "Resident state (issue 15)".
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from simulated_file import add_file_arguments, events_file  # benchmarks/simulated_file.py

from detectors.config import DetectorConfig
from detectors.monitor import AccountMonitor
from detectors.windows import AccountWindow, WindowConfig
from streams.engine import AccountState, CachedStore
from streams.engine.detection import Detection
from streams.offline.replay import replay_file

PARTS = ("decoded detector", "stored detector", "window", "other")


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def dropped(states: dict[bytes, AccountState]) -> dict[str, float]:
    """Bytes per account freed by dropping each part from every state in turn (``states`` is emptied)."""
    empty = AccountWindow(WindowConfig())
    steps: list[tuple[str, Callable[[AccountState], None]]] = [
        ("decoded detector", lambda s: setattr(s, "live_detector", None)),
        ("stored detector", lambda s: setattr(s, "detector", None)),
        ("window", lambda s: setattr(s, "window", empty)),
    ]
    n = len(states)
    found: dict[str, float] = {}
    before = traced()
    for part, drop in steps:
        for state in states.values():
            drop(state)
        after = traced()
        found[part] = (before - after) / n
        before = after
    states.clear()
    found["other"] = (before - traced()) / n
    return found


def replayed(path: Path, trace: bool) -> tuple[dict[str, float], list[tuple[bytes, bytes]]]:
    """Parts of the replayed states (when ``trace``), and the stored rows (key, row) of every account."""
    if trace:
        tracemalloc.start()
    result = replay_file(path)
    rows = [(key, state.to_bytes()) for key, state in sorted(result.account_states.items())]
    if not trace:
        return {}, rows
    states = result.account_states
    result.windows.clear()
    result.states.clear()
    result.account_states = {}
    parts = dropped(states)
    tracemalloc.stop()
    return parts, rows


def copies(rows: list[tuple[bytes, bytes]], n: int) -> Iterator[tuple[bytes, bytes]]:
    """``n`` rows: ``rows`` again and again (each row a bytes object of its own), each copy's keys suffixed
    with its number."""
    for i in range(n):
        key, row = rows[i % len(rows)]
        yield key + b"#%d" % (i // len(rows)), bytes(memoryview(row))


def loaded(rows_path: Path, n: int, measure: str, keep_decoded: bool = True) -> dict[str, float]:
    """Decode ``n`` accounts from the rows file into a ``CachedStore`` and decode their detectors."""
    base = [(bytes.fromhex(k), bytes.fromhex(r)) for k, r in orjson.loads(rows_path.read_bytes())]
    if measure == "tracemalloc":
        tracemalloc.start()
    start = traced() if measure == "tracemalloc" else 0
    table = dict(copies(base, n))
    del base
    window_config = WindowConfig()
    store = CachedStore(table, window_config, lambda: range(1 << 16))
    detection = Detection(AccountMonitor(DetectorConfig(), window_config), keep_decoded=keep_decoded)
    found: dict[str, float] = {}
    if measure == "tracemalloc":
        found["stored rows"] = (traced() - start) / n
    else:
        before = rss_bytes()
    started = time.process_time()
    states = [store.get(key) for key in table]
    decoded = time.process_time()
    for state in states:
        assert state is not None
        detection.detector_of(state)
        detection.release(state)  # what a sweep does after it: nothing unless decoded detectors are dropped
    if measure == "rss":
        found["RSS growth"] = (rss_bytes() - before) / n
        found["decode µs"] = (decoded - started) / n * 1e6
        found["detector decode µs"] = (time.process_time() - decoded) / n * 1e6
        return found
    del states
    found.update(dropped(store.cache))
    return found


def show(title: str, parts: dict[str, float]) -> None:
    cells = ", ".join(f"{part} {value:,.{1 if 'µs' in part else 0}f}" for part, value in parts.items())
    if all(part in parts for part in PARTS):
        cells += f"; resident state {sum(parts[part] for part in PARTS):,.0f}"
    print(f"{title}: {cells} (bytes or CPU µs per account)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_file_arguments(parser)
    parser.add_argument("--loaded", default="10000", help="Accounts to load from rows, comma-separated.")
    parser.add_argument(
        "--loaded-rss", default="", help="Accounts to load, RSS only (tracemalloc's own tables grow large)."
    )
    parser.add_argument(
        "--loaded-only", action="store_true", help="Replay without tracing (faster); the loaded case only."
    )
    parser.add_argument(
        "--decoded-detectors",
        choices=("kept", "dropped"),
        default="kept",
        help="Loaded case: keep each decoded detector state, or drop it once decoded, as a wall-clock worker "
        "does after a sweep (CHURNWATCH_STATE_DECODED_DETECTORS).",
    )
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)  # the child process's input
    parser.add_argument("--measure", choices=("tracemalloc", "rss"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows is not None:  # a child: one loaded measurement, as JSON
        n = int(args.loaded)
        keep = args.decoded_detectors == "kept"
        sys.stdout.buffer.write(orjson.dumps(loaded(args.rows, n, args.measure, keep)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; load average {os.getloadavg()}", flush=True)
        parts, rows = replayed(path, not args.loaded_only)
        if parts:
            show(f"replayed ({len(rows):,} accounts, tracemalloc)", parts)
        row_bytes = sum(len(row) for _, row in rows) / len(rows)
        print(f"stored row: {row_bytes:,.0f} B per account (compressed)")
        rows_path = Path(tmp) / "rows.json"
        rows_path.write_bytes(orjson.dumps([[k.hex(), r.hex()] for k, r in rows]))
        runs = [(int(n), measure) for n in args.loaded.split(",") if n for measure in ("tracemalloc", "rss")]
        runs += [(int(n), "rss") for n in args.loaded_rss.split(",") if n]
        for n, measure in runs:
            child = [sys.executable, __file__, "--rows", str(rows_path), "--loaded", str(n)]
            child += ["--decoded-detectors", args.decoded_detectors]
            out = subprocess.run([*child, "--measure", measure], check=True, capture_output=True).stdout
            found: dict[str, Any] = orjson.loads(out)
            show(f"loaded {n:,} accounts ({measure})", found)
        print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
