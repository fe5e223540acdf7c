"""What replay's input side reads by and reports: its rules, its figures, where rejected lines go, and opening
the event file (``-`` for stdin; gzip or not).

The reader itself (validated, time-sorted, deduplicated lines) is
:class:`~streams.offline.sorted_input.SortedInput`; the flags replay takes for the rules' settings are in
:mod:`streams.cli.setting_flags`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from streams.offline.replay import rfc3339
from streams.settings import Settings

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
DUPLICATE = "duplicate"  # not a dead-letter reason: the event is valid, and already counted
DEFAULT_SORT_MEMORY_BYTES = 256 * 2**20

RejectSink = Callable[[int, str, str, bytes], None]  # (line number, reason, detail, raw line)


class InputError(Exception):
    """The input cannot be read at all (missing file, broken gzip stream)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRules:
    """The live path's limits (from :class:`Settings`) and replay's own options."""

    max_event_bytes: int
    max_future_skew_ms: int
    dedup_horizon_ms: int
    dedup_max_keys: int
    now_ms: int | None = None
    sort_memory_bytes: int = DEFAULT_SORT_MEMORY_BYTES

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        now_ms: int | None = None,
        sort_memory_bytes: int = DEFAULT_SORT_MEMORY_BYTES,
    ) -> InputRules:
        return cls(
            max_event_bytes=settings.windows.max_event_bytes,
            max_future_skew_ms=int(settings.windows.max_future_skew_seconds * 1000),
            dedup_horizon_ms=int(settings.windows.allowed_lateness_seconds * 1000),
            dedup_max_keys=settings.windows.event_dedup_max_keys,
            now_ms=now_ms,
            sort_memory_bytes=sort_memory_bytes,
        )


@dataclass(slots=True)
class InputStats:
    """What the input side saw; ``rejected`` counts lines per reason (``duplicate`` included)."""

    lines: int = 0  # non-blank lines read
    valid: int = 0  # lines that passed pass-1 validation
    accepted: int = 0  # lines handed to replay
    rejected: Counter[str] = field(default_factory=Counter)
    spilled_runs: int = 0
    clock_ms: int | None = None  # the clock future_ts was judged against

    @property
    def duplicates(self) -> int:
        return self.rejected[DUPLICATE]

    def bad_reasons(self) -> Counter[str]:
        """Rejections of invalid lines (duplicates are valid events, counted apart)."""
        return Counter({reason: n for reason, n in self.rejected.items() if reason != DUPLICATE})


@contextmanager
def open_events(source: str | Path) -> Iterator[BinaryIO]:
    """A binary stream of the file's lines: ``-`` is stdin; gzip is recognised by its magic bytes."""
    with contextlib.ExitStack() as stack:
        if str(source) == STDIN:
            stdin = sys.stdin.buffer  # a BufferedReader, or under test runners a BytesIO (no peek)
            buffered = stdin if isinstance(stdin, io.BufferedReader) else io.BufferedReader(cast(Any, stdin))
        else:
            try:
                buffered = stack.enter_context(Path(source).open("rb"))
            except OSError as error:
                raise InputError(f"{source}: {error.strerror}") from None
        if buffered.peek(2)[:2] == GZIP_MAGIC:
            yield stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))  # type: ignore[misc]
        else:
            yield buffered


@contextmanager
def rejects_file(path: Path) -> Iterator[RejectSink]:
    """``--rejects FILE``: one line per rejected line, ``LINE<TAB>REASON<TAB>DETAIL<TAB>ORIGINAL BYTES``."""
    with Path(path).open("wb") as handle:

        def write(line_no: int, reason: str, detail: str, raw: bytes) -> None:
            detail = detail.replace("\t", " ").replace("\n", " ")
            handle.write(f"{line_no}\t{reason}\t{detail}\t".encode() + raw + b"\n")

        yield write


def input_report(stats: InputStats) -> dict[str, object]:
    """The report's input figures (they replace replay's own line counts, which see only accepted lines)."""
    bad = stats.bad_reasons()
    return {
        "lines": stats.lines,
        "bad_lines": sum(bad.values()),
        "bad_reasons": dict(bad),
        "duplicates": stats.duplicates,
        "input_clock": rfc3339(stats.clock_ms) if stats.clock_ms is not None else None,
        "spilled_runs": stats.spilled_runs,
    }


def no_event_summary(stats: InputStats) -> str:
    """Why nothing was accepted, e.g. ``3 invalid_json, 1 future_ts`` (``empty`` for no line at all)."""
    return ", ".join(f"{n:,} {reason}" for reason, n in stats.rejected.most_common()) or "empty"
