"""Read an event file as the live path reads Kafka, in event-time order, and hand replay lines it can trust.

A file is read in two passes (:class:`SortedInput`):

1. **Read and validate.** Each line (numbered from 1; blank lines are skipped, a UTF-8 BOM before the first
   is dropped) goes through :func:`streams.events.decode` with the live worker's size limit: the same
   dead-letter reasons as live, except ``wrong_topic`` and ``key_mismatch`` (a file has neither topics nor
   keys). Valid lines are buffered with their event time; when the buffer exceeds the memory budget it is
   sorted and spilled to a temporary file.
2. **Merge in event-time order** (``heapq.merge`` over the spilled runs), so the order of the file does not
   matter. Lines further ahead than ``max_future_skew`` of the clock are rejected as ``future_ts``: the clock
   is ``--now`` when given, else the file's own clock (:func:`file_clock`). Duplicate events (same
   ``event_id``, or same canonical fields when there is none) are dropped and counted.

Every rejected or dropped line is reported to a :data:`~streams.offline.replay_input.RejectSink` with its
line number and reason. Lines are decoded once: :meth:`SortedInput.events` hands replay the events pass 1
decoded (a spilled run's lines are decoded again when read back, the price of not holding them in memory:
:func:`~streams.events.decode_again`, which skips the checks they passed).

Spilled runs are this module's own format (a packed header, then the line): :func:`read_run` and
:func:`read_headers` read them back.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from streams.dedup import Deduplicator, event_key
from streams.events import (
    DeadLetterReason,
    Event,
    InvalidEventError,
    UsageEvent,
    decode,
    decode_again,
    plain_text,
)
from streams.offline.replay import rfc3339
from streams.offline.replay_input import (
    DUPLICATE,
    InputError,
    InputRules,
    InputStats,
    RejectSink,
    open_events,
)

UTF8_BOM = b"\xef\xbb\xbf"
BATCH_LINES = 4_096  # lines read at a time (their text checked at once: streams.events.plain_text)
CLOCK_SAMPLE = 4_096  # the latest event times kept to find the file's clock
CLOCK_SUPPORT = 10  # other events within the skew before a time that make it the file's clock
# Bytes a buffered line costs beyond its own length: the tuple, ints and key, and the decoded event with its
# strings (451 measured by benchmarks/replay_input.py on simulator lines).
RECORD_OVERHEAD = 450
# ts_ms, line number, raw length, event key, whether it is a usage event; then the raw line.
_HEADER = struct.Struct("<qqIq?")

# Which lines of a batch (as read, with their line ends; joined: the same bytes as one) an input takes.
Selector = Callable[[list[bytes], bytes], Sequence[bool]]

# (ts_ms, raw line, line number, event key, event): sorts by time, then text (line numbers are unique, so
# events are never compared).
Record = tuple[int, bytes, int, int, Event]


def file_clock(latest: list[int], skew_ms: int, support: int = CLOCK_SUPPORT) -> int:
    """The file's clock: the latest event time with ``support`` other events within the skew before it.

    A few stray timestamps far ahead (a line dated 2030) have no such support and do not move the clock; a
    file too small or too sparse to tell falls back to its latest event time.

    >>> day = 86_400_000
    >>> file_clock([1, 2, 3, 4, 5, 9 * day], skew_ms=day, support=3)
    5
    >>> file_clock([1, 2 * day], skew_ms=day, support=3)
    172800000
    """
    ordered = sorted(latest)
    needed = min(support, (len(ordered) - 1) // 2)
    for index in range(len(ordered) - 1, -1, -1):
        if index - bisect.bisect_left(ordered, ordered[index] - skew_ms) >= needed:
            return ordered[index]
    return ordered[-1]


class SortedInput:
    """Validated, time-sorted, deduplicated lines of one event file (a context manager: spill files)."""

    def __init__(
        self, rules: InputRules, on_reject: RejectSink | None = None, spill_dir: Path | None = None
    ) -> None:
        self.rules = rules
        self._spill_root = spill_dir  # where runs go (left there) instead of a temporary directory of its own
        self.stats = InputStats()
        self._on_reject = on_reject
        self._buffer: list[Record] = []
        self._buffered_bytes = 0
        self._latest: list[int] = []  # min-heap of the CLOCK_SAMPLE latest event times
        self._spill_dir: tempfile.TemporaryDirectory[str] | None = None
        self._runs: list[Path] = []
        self._frozen = False

    def __enter__(self) -> SortedInput:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._spill_dir is not None:
            self._spill_dir.cleanup()
        if self._frozen:
            gc.unfreeze()  # what read() froze is the collector's again (the buffer is garbage by now)
            self._frozen = False

    def reject(self, line_no: int, reason: str, detail: str, raw: bytes) -> None:
        self.stats.rejected[reason] += 1
        if self._on_reject is not None:
            self._on_reject(line_no, reason, detail, raw)

    def read(
        self,
        lines: Iterator[bytes] | BinaryIO,
        on_line: Callable[[int], None] | None = None,
        owned: Selector | None = None,
    ) -> None:
        """Pass 1: validate every line and buffer (or spill) the valid ones; ``on_line(n)`` every 65,536.

        ``owned``, when given, picks the lines this input takes (one shard of a parallel replay), a batch at
        a time; the others are skipped, though still numbered.

        The buffered events are container objects the cyclic garbage collector tracks: collecting while
        hundreds of thousands of them pile up, and scanning them at every full collection during the replay,
        cost about 40 % more CPU than the whole pass (measured in docs/detection.md). So the collector is
        paused while reading, and what was read is frozen (``gc.freeze``) until this object's context exits.
        """
        paused = gc.isenabled()
        gc.disable()
        line_no = 0
        stream = iter(lines)
        try:
            while batch := list(islice(stream, BATCH_LINES)):
                if not line_no and batch[0].startswith(UTF8_BOM):
                    batch[0] = batch[0][len(UTF8_BOM) :]
                joined = b"".join(batch)
                plain = plain_text(joined)  # the typed decoder's first checks, once per batch
                taken = owned(batch, joined) if owned is not None else None
                for index, line in enumerate(batch):
                    line_no += 1
                    if taken is None or taken[index]:
                        self._read_line(line_no, line.rstrip(b"\r\n"), plain)
                    if on_line is not None and not line_no & 0xFFFF:
                        on_line(line_no)
        except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError; a truncated stream, EOFError
            raise InputError(f"cannot read the input: {error}") from None
        finally:
            if paused:
                gc.freeze()
                self._frozen = True
                gc.enable()

    def _read_line(self, line_no: int, raw: bytes, plain: bool) -> None:
        if not raw or raw.isspace():
            return
        self.stats.lines += 1
        try:
            # No lower bound on event times: historical data is data (live: CHURNWATCH_MIN_EVENT_TS).
            event = decode(raw, max_bytes=self.rules.max_event_bytes, min_ts_ms=None, plain=plain)
        except InvalidEventError as error:
            self.reject(line_no, error.reason.value, error.detail, raw)
            return
        self.stats.valid += 1
        ts = event.ts_ms
        if len(self._latest) < CLOCK_SAMPLE:
            heapq.heappush(self._latest, ts)
        elif ts > self._latest[0]:
            heapq.heapreplace(self._latest, ts)
        self._buffer.append((ts, raw, line_no, event_key(event), event))
        self._buffered_bytes += len(raw) + RECORD_OVERHEAD
        if self._buffered_bytes > self.rules.sort_memory_bytes:
            self._spill()

    def clock_sample(self) -> list[int]:
        """The latest event times pass 1 kept (up to ``CLOCK_SAMPLE``): what :func:`file_clock` judges."""
        return list(self._latest)

    def spill_rest(self) -> list[Path]:
        """Spill what is still buffered: every valid line is then in the runs, which are returned."""
        if self._buffer:
            self._spill()
        return list(self._runs)

    def adopt(self, runs: list[Path], latest: list[int], stats: InputStats) -> None:
        """Take another input's pass 1 (its runs, latest event times and figures): pass 2 then merges them
        with this input's own, as if this input had read and spilled those lines itself."""
        self._runs.extend(runs)
        for ts in latest:
            if len(self._latest) < CLOCK_SAMPLE:
                heapq.heappush(self._latest, ts)
            elif ts > self._latest[0]:
                heapq.heapreplace(self._latest, ts)
        self.stats.lines += stats.lines
        self.stats.valid += stats.valid
        self.stats.rejected += stats.rejected
        self.stats.spilled_runs += stats.spilled_runs

    def _spill(self, *, keep: bool = False) -> None:
        if self._spill_root is not None:
            directory = self._spill_root
        else:
            if self._spill_dir is None:
                self._spill_dir = tempfile.TemporaryDirectory(prefix="churnwatch-replay-")
            directory = Path(self._spill_dir.name)
        self._buffer.sort()
        path = directory / f"run-{len(self._runs):05d}"
        with path.open("wb") as handle:
            pack = _HEADER.pack
            for ts, raw, line_no, key, event in self._buffer:
                handle.write(pack(ts, line_no, len(raw), key, type(event) is UsageEvent))
                handle.write(raw)
        self._runs.append(path)
        self.stats.spilled_runs += 1
        if keep:
            return
        self._buffer = []
        self._buffered_bytes = 0

    def share(self) -> tuple[list[Path], Iterator[Record]]:
        """For a replay sharded over processes: every valid line in runs another process can merge (what is
        still buffered written as one more run, and kept), and this input's own records in time order, the
        buffered ones not decoded again."""
        spilled = list(self._runs)
        if self._buffer:
            self._spill(keep=True)
        runs = (read_run(path, self.rules.max_event_bytes) for path in spilled)
        return list(self._runs), heapq.merge(*runs, self._buffer)

    def __iter__(self) -> Iterator[bytes]:
        """Pass 2: the accepted lines in event-time order (ties by their text: file order never matters)."""
        for _, raw in self.accepted():
            yield raw

    def events(self) -> Iterator[Event]:
        """Pass 2 as decoded events (what replay folds)."""
        return map(itemgetter(0), self.accepted())

    def accepted(self) -> Iterator[tuple[Event, bytes]]:
        """Pass 2: (event, line) in event-time order, future and duplicate lines rejected on the way."""
        if not self.stats.valid:
            return
        clock, max_ts, dedup = self._judge()
        self._buffer.sort()
        merged = heapq.merge(
            *(read_run(path, self.rules.max_event_bytes) for path in self._runs), self._buffer
        )
        is_duplicate = dedup.is_duplicate
        stats = self.stats
        for ts, raw, line_no, key, event in merged:
            if ts <= max_ts and not is_duplicate(key, ts, origin=line_no):
                stats.accepted += 1
                yield event, raw
            else:
                self._rejected(ts, raw, line_no, key, clock, max_ts, dedup)

    def judged(self) -> Iterator[tuple[int, bytes, int, bool]]:
        """Pass 2 without decoding a line (a lock-step replay's coordinator, over the runs of inputs it
        adopted): ``(ts, line, line number, is usage)`` of each accepted line, the others rejected."""
        if self._buffer:
            raise ValueError("judged() reads adopted runs only")
        if not self.stats.valid:
            return
        clock, max_ts, dedup = self._judge()
        is_duplicate = dedup.is_duplicate
        stats = self.stats
        for ts, raw, line_no, key, usage in heapq.merge(*(read_headers(path) for path in self._runs)):
            if ts <= max_ts and not is_duplicate(key, ts, origin=line_no):  # as accepted() judges
                stats.accepted += 1
                yield ts, raw, line_no, usage
            else:
                self._rejected(ts, raw, line_no, key, clock, max_ts, dedup)

    def _rejected(
        self, ts: int, raw: bytes, line_no: int, key: int, clock: int, max_ts: int, dedup: Deduplicator
    ) -> None:
        """Report a line pass 2 rejected: beyond the clock skew, else a duplicate (``dedup`` said so)."""
        if ts > max_ts:
            detail = f"'ts' {rfc3339(ts)} is beyond the allowed clock skew of the clock {rfc3339(clock)}"
            self.reject(line_no, DeadLetterReason.FUTURE_TS.value, detail, raw)
        else:
            self.reject(line_no, DUPLICATE, f"the same event as line {dedup.first_origin(key)}", raw)

    def _judge(self) -> tuple[int, int, Deduplicator]:
        """Pass 2's clock, the latest event time it accepts, and its duplicate detector."""
        rules = self.rules
        clock = (
            rules.now_ms if rules.now_ms is not None else file_clock(self._latest, rules.max_future_skew_ms)
        )
        self.stats.clock_ms = clock
        dedup = Deduplicator(horizon_ms=rules.dedup_horizon_ms, max_keys=rules.dedup_max_keys)
        return clock, clock + rules.max_future_skew_ms, dedup


def read_run(path: Path, max_event_bytes: int) -> Iterator[Record]:
    """The records of a spilled run, in its (sorted) order."""
    size = _HEADER.size
    unpack = _HEADER.unpack
    with path.open("rb") as handle:
        while header := handle.read(size):
            ts, line_no, length, key, _ = unpack(header)
            raw = handle.read(length)
            yield ts, raw, line_no, key, decode_again(raw, ts, max_bytes=max_event_bytes)


def read_headers(path: Path) -> Iterator[tuple[int, bytes, int, int, bool]]:
    """A spilled run's records, not decoded: ``(ts, line, line number, event key, is usage)``."""
    size = _HEADER.size
    unpack = _HEADER.unpack
    with path.open("rb") as handle:
        while header := handle.read(size):
            ts, line_no, length, key, usage = unpack(header)
            yield ts, handle.read(length), line_no, key, usage


def read_source(
    source: str | Path,
    sorted_input: SortedInput,
    on_line: Callable[[int], None] | None = None,
    owned: Selector | None = None,
) -> None:
    """Pass 1 over a file name or ``-``; :class:`InputError` when it cannot be read."""
    with open_events(source) as stream:
        sorted_input.read(stream, on_line, owned)
