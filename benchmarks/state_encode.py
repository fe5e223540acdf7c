"""What writing one account's state costs (issue 15): ``AccountState.to_bytes`` and its parts, in CPU µs.

Usage::

    .venv/bin/python benchmarks/state_encode.py --accounts 1000 --days 90 --seed 5
    .venv/bin/python benchmarks/state_encode.py --events existing.jsonl

A checkpoint encodes every account that changed since the last one (at 1 M accounts, about one per event
folded) and the checkpoint after a sweep every account swept, so this is a per-event cost of a large worker
and most of a post-sweep checkpoint. The file is replayed (``replay_file``), then every final state is
encoded five times with the collector off; the best pass, per state, is printed for the whole encoding, the
JSON body, the window's part (``AccountWindow.to_state``, then with its ``orjson.dumps``), and the zstd
compression of the body, and what a row written in parts would re-encode instead (``open_part_us``: the
offsets and the window without its closed days, compressed the same way; the closed days and the detector's
stored form change once a day). The row digest (SHA-256 of every key and row, in key order) shows whether two
commits write the same bytes.

To compare two commits, run this file against each, with ``PYTHONPATH`` naming a checkout of the other
commit's ``detectors/`` and ``streams/`` (``git archive COMMIT detectors streams | tar -x -C DIR``).
Figures: docs/performance.md, "With detectors on". Timings depend on the machine: never assert on them.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from simulated_file import add_file_arguments, events_file  # benchmarks/simulated_file.py

from detectors.open_users import users_by_day
from detectors.shared import trimmed
from streams.engine import AccountState
from streams.engine.state import _COMPRESSOR as COMPRESSOR  # the rows' compressor, timed alone
from streams.offline.replay import replay_file


def best_us(states: list[AccountState], encode: Callable[[AccountState], object], passes: int = 5) -> float:
    """The fastest of ``passes`` passes over ``states``, in CPU µs per state."""
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for state in states:
            encode(state)
        best = min(best, time.process_time() - started)
    return round(best / len(states) * 1e6, 2)


def open_part(state: AccountState) -> bytes:
    """The offsets and the window's open days, users, names, totals and marks, compressed: what a checkpoint
    of a row kept in parts would write for an account one event reached (not a format churnwatch has)."""
    window = state.window
    days, open_from = window.days, window._open_from()
    first = max(days.first, open_from)
    tail = days.slots[first - days.first :]
    users = window.open_users
    lateness = window.config.allowed_lateness_ms
    body = {
        "o": state.applied_offsets,
        "d": [[day, *trimmed(bucket)] for day, bucket in enumerate(tail, first) if bucket is not None],
        "e": [[day, names] for day, names in sorted(window.day_events.items()) if names],
        "u": users_by_day(users, window._user_days(), lateness) if users else [],
        "t": window.event_totals,
        "w": window.watermarks,
    }
    return COMPRESSOR.compress(orjson.dumps(body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_file_arguments(parser, accounts=1000, days=90, seed=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))
        result = replay_file(path)
    keyed = sorted(result.account_states.items())
    states = [state for _, state in keyed]
    digest = hashlib.sha256()
    for key, state in keyed:
        digest.update(key)
        digest.update(state.to_bytes())
    bodies = {id(state): state.json_body() for state in states}
    gc.disable()
    figures = {
        "accounts": len(states),
        "mean_body_bytes": round(sum(map(len, bodies.values())) / len(states)),
        "mean_row_bytes": round(sum(len(state.to_bytes()) for state in states) / len(states)),
        "to_bytes_us": best_us(states, AccountState.to_bytes),
        "json_body_us": best_us(states, AccountState.json_body),
        "window_to_state_us": best_us(states, lambda state: state.window.to_state()),
        "window_json_us": best_us(states, lambda state: orjson.dumps(state.window.to_state())),
        "compress_us": best_us(states, lambda state: COMPRESSOR.compress(bodies[id(state)])),
        "open_part_us": best_us(states, open_part),
        "mean_open_part_bytes": round(sum(len(open_part(state)) for state in states) / len(states)),
        "row_digest": digest.hexdigest()[:16],
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
