"""Read and validate a large file on N cores (``replay --jobs N``); the same results as one process.

Pass 1 (decode, validate, sort: :class:`~streams.offline.sorted_input.SortedInput`) runs in N processes, one
per shard of the accounts (an account's shard is the CRC-32 of its id modulo N). Each reads the whole file,
takes the lines of its accounts (numbered as in the file), and leaves them sorted in run files. The parent
then does what one process does after pass 1: it merges the runs in event-time order, judges ``future_ts`` by
the file's clock (from every shard's latest event times), drops duplicates and replays through the engine.
Rejected lines are reported in one process's order (pass 1 by line number, then pass 2 by event time).

The lock-step replay (:mod:`streams.offline.replay_lockstep`, what ``--jobs N`` runs unless answers to alerts
are replayed) shards the engine too and reuses this pass 1 (:func:`read_shard_input`); this module's
:func:`replay_file_parallel` (pass 1 here, the replay in one process) is what ``--jobs N`` runs with
``--feedback``.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from streams.events import InvalidEventError, decode
from streams.offline.replay import ReplayResult, run_replay
from streams.offline.replay_input import InputRules, InputStats, RejectSink
from streams.offline.sorted_input import SortedInput, read_source

T = TypeVar("T")
_KEY = b'"account_id"'
_KEY_VALUE = b'"account_id":"'
# line_shard's fast path (a plain account id), with the rest of its line: shard_lines
_PLAIN_ACCOUNT = re.compile(rb'"account_id":"([^"\\\n]*)"[^\n]*\n?')


def shard_of(account_id: str, shards: int) -> int:
    """The shard (0 .. shards-1) of an account: stable across processes and runs (CRC-32, not ``hash``)."""
    return zlib.crc32(account_id.encode()) % shards


def line_shard(raw: bytes, shards: int, max_bytes: int) -> int:
    """The shard of a line's account; a line without a valid account (an invalid line) belongs to shard 0.

    The account id is read off the bytes when the line names ``"account_id"`` once, written plainly
    (``"account_id":"..."``, no escapes); otherwise the line is decoded to find it. Either way all lines of an
    account go to one shard, which duplicate detection needs (a duplicate is always of the same account).

    >>> line_shard(b'{"type":"usage","account_id":"acme","ts":1,"event":"x"}', 4, 1000) == shard_of("acme", 4)
    True
    """
    start = raw.find(_KEY_VALUE)
    if start >= 0 and raw.count(_KEY) == 1 and b"\\u" not in raw:
        start += len(_KEY_VALUE)
        end = raw.find(b'"', start)
        if end > start and b"\\" not in raw[start:end]:
            return zlib.crc32(raw[start:end]) % shards
    try:
        return shard_of(decode(raw, max_bytes=max_bytes, min_ts_ms=None).account_id, shards)
    except InvalidEventError:
        return 0


def shard_lines(lines: list[bytes], joined: bytes, shard: int, shards: int, max_bytes: int) -> list[bool]:
    """Which of a batch of lines (with their line ends; ``joined``: the same bytes as one) belong to
    ``shard``: :func:`line_shard` of each, found for the whole batch at once when every line names
    ``"account_id"`` once, written plainly, and none has a ``\\u`` escape (else line by line).

    >>> batch = [b'{"account_id":"acme","ts":1}\\n', b'{"account_id":"beta","ts":2}']
    >>> shard_lines(batch, b"".join(batch), 1, 3, 1000) == [line_shard(line, 3, 1000) == 1 for line in batch]
    True
    """
    if b"\\u" not in joined and joined.count(_KEY) == len(lines):
        # A match runs to the end of its line, so no two are in one line: as many as lines, one in each.
        accounts = _PLAIN_ACCOUNT.findall(joined)
        if len(accounts) == len(lines):
            return [zlib.crc32(account) % shards == shard for account in accounts]
    return [line_shard(line.rstrip(b"\r\n"), shards, max_bytes) == shard for line in lines]


@dataclass(frozen=True, slots=True)
class ShardRead:
    """One shard's pass 1: its sorted runs, latest event times, figures and rejected lines."""

    runs: list[Path]
    latest: list[int]
    stats: InputStats
    rejects: list[tuple[int, str, str, bytes]]  # (line number, reason, detail, line), when asked for
    first_lines: dict[str, int]  # the first line rejected for each reason


def read_shard(
    source: str, shard: int, shards: int, rules: InputRules, spill_dir: str, keep_rejects: bool
) -> ShardRead:
    """Pass 1 over the lines of one shard's accounts (run in a worker process)."""
    read, _ = read_shard_input(
        source, shard, shards, rules, spill_dir, keep_rejects, lambda taken: (taken.spill_rest(), None)
    )
    return read


def read_shard_input(
    source: str,
    shard: int,
    shards: int,
    rules: InputRules,
    spill_dir: str,
    keep_rejects: bool,
    spill: Callable[[SortedInput], tuple[list[Path], T]],
) -> tuple[ShardRead, T]:
    """:func:`read_shard` with its last step given: ``spill`` leaves every line in runs and returns them with
    anything else the caller wants back (the lock-step shard's own records)."""
    rejects: list[tuple[int, str, str, bytes]] = []
    first_lines: dict[str, int] = {}

    def on_reject(line_no: int, reason: str, detail: str, raw: bytes) -> None:
        first_lines.setdefault(reason, line_no)
        if keep_rejects:
            rejects.append((line_no, reason, detail, raw))

    directory = Path(spill_dir) / f"shard-{shard:03d}"
    directory.mkdir()
    budget = replace(rules, sort_memory_bytes=max(1, rules.sort_memory_bytes // shards))
    shard_input = SortedInput(budget, on_reject, spill_dir=directory)
    max_bytes = rules.max_event_bytes
    read_source(
        source, shard_input, owned=partial(shard_lines, shard=shard, shards=shards, max_bytes=max_bytes)
    )
    overflow = shard_input.stats.spilled_runs  # runs spilled for want of memory (as one process would)
    runs, other = spill(shard_input)
    shard_input.stats.spilled_runs = overflow
    return ShardRead(runs, shard_input.clock_sample(), shard_input.stats, rejects, first_lines), other


_PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with(parent_pid: int) -> None:
    """In a shard process: it is killed when the replay that started it dies (even by SIGKILL,
    which runs no clean-up), instead of reading a large file on for nobody. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def pool_reader(parent_pid: int) -> None:
    """Pool initializer: :func:`die_with` the replay, and end quietly on a Ctrl-C (the replay, which gets it
    too, says it stopped) instead of printing a traceback of the pool's internals."""
    die_with(parent_pid)
    signal.signal(signal.SIGINT, _exit_quietly)


def _exit_quietly(number: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + number)


def replay_file_parallel(
    source: str | Path, *, jobs: int, rules: InputRules, on_reject: RejectSink | None = None, **kwargs: Any
) -> tuple[ReplayResult, InputStats]:
    """What :func:`~streams.offline.replay.replay_file` returns (and the input's figures), pass 1 on ``jobs``
    processes. ``source`` must be a file (gzip or not), not stdin: every process reads it. ``kwargs`` go to
    :func:`~streams.offline.replay.run_replay`."""
    context = multiprocessing.get_context("spawn")  # a fork of a parent with threads (progress bars) can hang
    with tempfile.TemporaryDirectory(prefix="churnwatch-replay-") as spill_dir:
        keep = on_reject is not None
        # The readers end with pass 1: none idles beside the replay (where a Ctrl-C made each print the
        # pool's internals).
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=context, initializer=pool_reader, initargs=(os.getpid(),)
        ) as pool:
            futures = [
                pool.submit(read_shard, str(source), n, jobs, rules, spill_dir, keep) for n in range(jobs)
            ]
            reads = [future.result() for future in futures]
        with SortedInput(rules, on_reject) as merged:
            for read in reads:
                merged.adopt(read.runs, read.latest, read.stats)
            order_reasons(merged.stats, reads)
            if on_reject is not None:
                pass_1 = sorted((reject for read in reads for reject in read.rejects), key=lambda r: r[0])
                for reject in pass_1:
                    on_reject(*reject)
            result = run_replay(merged, **kwargs)
    stats = merged.stats
    result.lines = stats.lines
    result.bad_reasons = stats.bad_reasons()
    result.bad_lines = sum(result.bad_reasons.values())
    return result, stats


def order_reasons(stats: InputStats, reads: list[ShardRead]) -> None:
    """Rejection reasons in the order one process meets them (by their first line), as reports list them."""
    first = {reason: line for read in reads for reason, line in read.first_lines.items()}
    for read in reads:
        for reason, line in read.first_lines.items():
            first[reason] = min(first[reason], line)
    counts = stats.rejected
    stats.rejected = Counter({reason: counts[reason] for reason in sorted(counts, key=lambda r: first[r])})
