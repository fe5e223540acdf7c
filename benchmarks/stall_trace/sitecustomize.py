"""Where a process's event loop stalls: a thread samples the main thread's stack (benchmarks only).

Put this directory first on ``PYTHONPATH`` and name an output file in ``STALL_TRACE_FILE``; Python imports
``sitecustomize`` at start, which starts a daemon thread that looks at the main thread's stack every
``STALL_TRACE_EVERY_MS`` (default 2). The main thread is *idle* while its event loop waits in the
selector's ``select``; any other stack is busy. A busy stretch longer than ``STALL_TRACE_MIN_MS`` (default
100) is written as one JSON line when it ends: when it began (``time.time()``), how long it lasted, how many
samples saw it, and the stacks they saw most often (innermost frame first, only frames of churnwatch, Faust,
mode and aiokafka). A sample waits for the GIL, so a stretch spent in one C call is measured (from the last
idle sample to the next) but seen by few samples.

``benchmarks/health_during_sweeps.py --stalls FILE`` starts its worker with it. Figures depend on the
machine; this is a tracer, not a test.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from types import FrameType

KEEP = ("/streams/", "/detectors/", "/faust/", "/mode/", "/aiokafka/")
DEPTH = 8


def _idle(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name == "select" and code.co_filename.endswith("selectors.py")


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


def _watch(main_id: int, path: str, every_s: float, min_s: float) -> None:
    last_idle = time.monotonic()
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    with open(path, "a", buffering=1) as out:
        while True:
            time.sleep(every_s)
            frame = sys._current_frames().get(main_id)
            now = time.monotonic()
            if frame is None:
                return  # the main thread has ended
            if not _idle(frame):
                stacks[_stack(frame)] += 1
                continue
            busy_s = now - last_idle
            if busy_s >= min_s and stacks:
                top = [{"samples": count, "stack": list(stack)} for stack, count in stacks.most_common(3)]
                line = {
                    "began": round(time.time() - busy_s, 3),
                    "seconds": round(busy_s, 3),
                    "samples": sum(stacks.values()),
                    "top": top,
                }
                out.write(json.dumps(line) + "\n")
            stacks.clear()
            last_idle = now


def start() -> None:
    path = os.environ.get("STALL_TRACE_FILE")
    if not path:
        return
    every_s = float(os.environ.get("STALL_TRACE_EVERY_MS", "2")) / 1000
    min_s = float(os.environ.get("STALL_TRACE_MIN_MS", "100")) / 1000
    main_id = threading.main_thread().ident
    assert main_id is not None
    threading.Thread(
        target=_watch, args=(main_id, path, every_s, min_s), name="stall-trace", daemon=True
    ).start()


start()
