"""Checks of command-line values made before any work starts: one line naming the flag, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from streams.errors import ChurnwatchError


class UsageError(ChurnwatchError):
    """A command-line value cannot be used; the message names the flag."""


def output_file(path: Path | None, flag: str) -> None:
    """Fail unless ``path`` can be created or overwritten as a file (its directory exists)."""
    if path is None or str(path) == "-":
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: directory {parent} does not exist")


def parse_day(text: str, flag: str) -> datetime:
    """A date or RFC 3339 time (UTC when no offset is given) for ``flag``.

    >>> parse_day("2026-03-01", "--start").isoformat()
    '2026-03-01T00:00:00+00:00'
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        problem = (
            str(exc) if "must be in" in str(exc) else "not a date like 2026-03-01 or 2026-03-01T00:00:00Z"
        )
        raise UsageError(f"{flag} {text!r}: {problem}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def plural(n: int | float, word: str, many: str | None = None) -> str:
    """``1 day``, ``2 days``, ``1 ticket``.

    >>> plural(1, "day"), plural(3, "ticket"), plural(2, "key event")
    ('1 day', '3 tickets', '2 key events')
    """
    number = str(int(n)) if float(n).is_integer() else f"{n:g}"
    return f"{number} {word if n == 1 else (many or word + 's')}"
