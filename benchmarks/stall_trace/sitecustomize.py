"""Where a process's event loop stalls: how long each stretch between two turns lasted, and what ran then
(benchmarks only).

Put this directory first on ``PYTHONPATH`` and name an output file in ``STALL_TRACE_FILE``; Python imports
``sitecustomize`` at start. The main thread's event loop turns in the selector's ``select`` (wrapped here):
the time from leaving one ``select`` to entering the next is a stretch in which the loop answered nothing.
Each stretch longer than ``STALL_TRACE_MIN_MS`` (default 100) is written as one JSON line: when it began
(``time.time()``), how long it lasted, and the main thread's stacks a thread saw during it (one look every
``STALL_TRACE_EVERY_MS``, default 2; innermost frame first, frames of churnwatch, Faust, mode and aiokafka
only), the most frequent first. A look waits for the GIL, so a stretch spent in one C call is measured in full
but seen by few looks.

``benchmarks/health_during_sweeps.py --stalls FILE`` starts its worker with it. Figures depend on the
machine; this is a tracer, not a test.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

KEEP = ("/streams/", "/detectors/", "/faust/", "/mode/", "/aiokafka/")
DEPTH = 8


def _stack(frame: FrameType | None) -> tuple[str, ...]:
    kept: list[str] = []
    while frame is not None and len(kept) < DEPTH:
        code = frame.f_code
        where = code.co_filename
        for marker in KEEP:
            at = where.rfind(marker)
            if at >= 0:
                kept.append(f"{code.co_name} {where[at + 1 :]}:{frame.f_lineno}")
                break
        frame = frame.f_back
    return tuple(kept)


class Tracer:
    def __init__(self, path: str, every_s: float, min_s: float) -> None:
        main_id = threading.main_thread().ident
        assert main_id is not None
        self.main_id = main_id
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
        self.every_s = every_s
        self.min_s = min_s
        self.left_select = time.monotonic()
        self.in_select = False
        self.looks: collections.deque[tuple[float, tuple[str, ...]]] = collections.deque(maxlen=100_000)

    def wrap(self, select: Callable[..., Any]) -> Callable[..., Any]:
        def traced(selector: Any, timeout: float | None = None) -> Any:
            if threading.get_ident() != self.main_id:
                return select(selector, timeout)
            self.entered(time.monotonic())
            try:
                return select(selector, timeout)
            finally:
                self.in_select = False
                self.left_select = time.monotonic()

        return traced

    def entered(self, now: float) -> None:
        self.in_select = True
        began = self.left_select
        if now - began < self.min_s:
            return
        stacks = collections.Counter(stack for at, stack in list(self.looks) if at >= began)
        top = [{"samples": count, "stack": list(stack)} for stack, count in stacks.most_common(3)]
        line = {
            "began": round(time.time() - (now - began), 3),
            "seconds": round(now - began, 3),
            "samples": sum(stacks.values()),
            "top": top,
        }
        self.out.write(json.dumps(line) + "\n")

    def look(self) -> None:
        while True:
            time.sleep(self.every_s)
            frame = sys._current_frames().get(self.main_id)
            if frame is None:
                return  # the main thread has ended
            if not self.in_select:
                self.looks.append((time.monotonic(), _stack(frame)))


def start() -> None:
    path = os.environ.get("STALL_TRACE_FILE")
    if not path:
        return
    every_s = float(os.environ.get("STALL_TRACE_EVERY_MS", "2")) / 1000
    min_s = float(os.environ.get("STALL_TRACE_MIN_MS", "100")) / 1000
    tracer = Tracer(path, every_s, min_s)
    for name in ("EpollSelector", "PollSelector", "SelectSelector"):
        kind = getattr(selectors, name, None)
        if kind is not None:
            kind.select = tracer.wrap(kind.select)  # type: ignore[method-assign]
    threading.Thread(target=tracer.look, name="stall-trace", daemon=True).start()


start()
