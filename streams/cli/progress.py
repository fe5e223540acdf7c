"""Progress for long commands on any output: a rich bar on a terminal, plain periodic lines when piped.

:func:`progress_for` takes a ready :class:`rich.progress.Progress` and returns it when its console is a
terminal, else a :class:`PlainProgress` with the same small API (``add_task``, ``update``, context manager)
that writes ``LABEL: 1,234,567 events, clock 2026-03-01T00:00:00Z`` to stderr every ``every_s`` seconds and
once at the end, so logs and CI output show that work goes on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import Progress, TaskID

Clock = Callable[[], float]

#: Width of tables written to a pipe or file (rich would use 80 columns and squeeze them unreadable).
PIPED_WIDTH = 140


def report_console() -> Console:
    """The console for a command's results: the terminal's width, or :data:`PIPED_WIDTH` when piped."""
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


class ProgressLike(Protocol):
    def __enter__(self) -> ProgressLike: ...

    def __exit__(self, *exc: Any) -> Any: ...

    def add_task(
        self, description: str, start: bool = ..., total: float | None = ..., **fields: Any
    ) -> TaskID: ...

    def update(
        self, task_id: TaskID, *, completed: float | None = ..., visible: bool | None = ..., **fields: Any
    ) -> None: ...


@dataclass(slots=True)
class _Task:
    description: str
    total: float | None
    completed: float = 0
    visible: bool = True
    fields: dict[str, Any] = field(default_factory=dict)


class PlainProgress:
    """Plain progress lines (see the module docstring)."""

    def __init__(
        self, label: str, *, every_s: float = 5.0, out: TextIO | None = None, clock: Clock = time.monotonic
    ) -> None:
        self.label = label
        self.every_s = every_s
        self.out = out if out is not None else sys.stderr
        self.clock = clock
        self.tasks: list[_Task] = []
        self._next = clock() + every_s

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._print(final=True)

    def add_task(
        self, description: str, start: bool = True, total: float | None = None, **fields: Any
    ) -> TaskID:
        self.tasks.append(_Task(description, total, fields=fields))
        return TaskID(len(self.tasks) - 1)

    def update(
        self, task_id: TaskID, *, completed: float | None = None, visible: bool | None = None, **fields: Any
    ) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task.completed = completed
        if visible is not None:
            task.visible = visible
        task.fields.update(fields)
        if self.clock() >= self._next:
            self._print()

    def _print(self, *, final: bool = False) -> None:
        self._next = self.clock() + self.every_s
        task = next((t for t in reversed(self.tasks) if t.visible), None)
        if task is None:
            return
        share = f" ({task.completed / task.total:.0%} done)" if task.total else ""
        detail = " ".join(str(v) for v in task.fields.values() if v)
        text = detail or f"{task.completed:,.0f} {task.description}"
        print(f"{self.label}: {text}{share}{' - finished' if final else ''}", file=self.out, flush=True)


def progress_for(progress: Progress, label: str, every_s: float = 5.0) -> ProgressLike:
    """``progress`` on a terminal; plain lines on stderr otherwise."""
    if progress.console.is_terminal:
        return progress  # type: ignore[return-value]  # rich's update() takes more keywords than needed here
    return PlainProgress(label, every_s=every_s)


class CountedSource:
    """An event source (``events()``, ``truth()``) whose events are counted as they are drawn."""

    def __init__(self, source: Any, on_count: Callable[[int], None]) -> None:
        self.source = source
        self.on_count = on_count

    def events(self) -> Iterator[dict[str, Any]]:
        return counted(self.source.events(), self.on_count)

    def truth(self) -> list[dict[str, Any]]:
        return list(self.source.truth())


def counted(items: Iterator[Any], on_count: Callable[[int], None], every: int = 8192) -> Iterator[Any]:
    """``items`` unchanged, calling ``on_count(n)`` every ``every`` items and at the end."""
    n = 0
    for item in items:
        yield item
        n += 1
        if n % every == 0:
            on_count(n)
    on_count(n)
