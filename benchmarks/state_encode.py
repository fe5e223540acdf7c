"""What writing one account's state costs (issue 15): ``AccountState.to_bytes`` and its parts, in CPU µs.

Usage::

    .venv/bin/python benchmarks/state_encode.py --accounts 1000 --days 90 --seed 5
    .venv/bin/python benchmarks/state_encode.py --events existing.jsonl

A checkpoint encodes every account that changed since the last one (at 1 M accounts, about one per event
folded) and the checkpoint after a sweep every account swept, so this is a per-event cost of a large worker
and most of a post-sweep checkpoint. The file is replayed (``replay_file``), then every final state is
encoded five times with the collector off; the best pass, per state, is printed for the whole encoding
(``to_bytes_us``: both frames, as after a day closed or a sweep changed the detector state), a rewrite that
copies the closed frame of the row before (``rewrite_us``: an account an event reached since the last
checkpoint), the two JSON bodies, the window's open part alone (``AccountWindow.open_state``) and the open
body's compression, and the decoding of a row (``from_bytes_us``, as a worker reads an account not in its
cache). Rows are two frames since 2026-12-07 (``STATE_VERSION`` 2); the script of an earlier
commit prints that commit's one-frame figures. The row digest (SHA-256 of every key and row, in key order)
shows whether two commits write the same bytes.

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

from streams.engine import AccountState
from streams.engine import state as state_module
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_file_arguments(parser, accounts=1000, days=90, seed=5)
    parser.add_argument(
        "--one-frame-below",
        type=int,
        help="streams.engine.state.ONE_FRAME_BELOW for this run (0: two frames)",
    )
    args = parser.parse_args()
    if args.one_frame_below is not None:
        state_module.ONE_FRAME_BELOW = args.one_frame_below
    with tempfile.TemporaryDirectory() as tmp:
        path = events_file(args, Path(tmp))
        result = replay_file(path)
    keyed = sorted(result.account_states.items())
    states = [state for _, state in keyed]
    digest = hashlib.sha256()
    for key, state in keyed:
        digest.update(key)
        digest.update(state.to_bytes())
    rows = [state.to_bytes() for state in states]
    index = {id(state): i for i, state in enumerate(states)}
    config = states[0].window.config
    for state, row in zip(states, rows, strict=True):
        state.mark_written(row)  # as a checkpoint leaves it: the next write may copy the closed frame
    opens = {id(state): state.open_body() for state in states}
    closed = [int.from_bytes(row[3:7], "big") for row in rows if row[2] == state_module.ROW_PARTS]
    gc.disable()
    figures = {
        "accounts": len(states),
        "mean_body_bytes": round(
            sum(len(state.closed_body()) + len(opens[id(state)]) for state in states) / len(states)
        ),
        "mean_row_bytes": round(sum(map(len, rows)) / len(states)),
        "rows_of_two_frames": len(closed),
        "mean_closed_frame_bytes": round(sum(closed) / max(1, len(closed))),
        "to_bytes_us": best_us(states, lambda state: state.to_bytes()),
        "rewrite_us": best_us(states, lambda state: state.to_bytes(rows[index[id(state)]])),
        "from_bytes_us": best_us(
            states, lambda state: AccountState.from_bytes(rows[index[id(state)]], config)
        ),
        "closed_body_us": best_us(states, AccountState.closed_body),
        "open_body_us": best_us(states, AccountState.open_body),
        "window_open_state_us": best_us(states, lambda state: state.window.open_state()),
        "compress_open_us": best_us(states, lambda state: COMPRESSOR.compress(opens[id(state)])),
        "row_digest": digest.hexdigest()[:16],
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
