"""A worker stops within a bound, and an error it cannot handle ends the process.

Faust (through mode) stops a worker on SIGINT/SIGTERM or when a task crashes by stopping every service in
turn: the readers checkpoint, the producer flushes, the consumer leaves its group. Any of those steps can wait
on something that never comes (a broker that is gone, a sink retried for minutes), and mode ignores every
signal after the first. :class:`BoundedWorker` adds, on top of Faust's worker:

* **a deadline**: once a stop begins (signal or crash), a watchdog thread ends the process with code 1 if it
  is still running ``shutdown_timeout_seconds`` later, whatever it waits for;
* **a second signal** ends the process at once (code 128 + signal), without a final checkpoint;
* **fatal means exit**: a crash logs one ``worker.fatal`` line naming the error, then the graceful stop (with
  its final checkpoint) runs under the deadline and the process exits non-zero.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import faust
import structlog

log = structlog.get_logger(__name__)

EXIT_STOP_OVERDUE = 1


def flush_and_exit(code: int) -> None:
    """``os._exit`` without losing what is buffered on stdout/stderr (the last log lines matter most)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


class ExitDeadline:
    """Once armed, ends the process if it has not exited ``seconds`` later: the last resort against a hang."""

    def __init__(
        self,
        seconds: float,
        *,
        exit: Callable[[int], None] = flush_and_exit,
        write: Callable[[str], object] = sys.stderr.write,
    ) -> None:
        self.seconds = seconds
        self.exit = exit
        self.write = write
        self.armed = threading.Event()
        self._lock = threading.Lock()
        self._never = threading.Event()  # waited on with a timeout: a sleep that tests can observe

    def arm(self, what: str) -> None:
        with self._lock:
            if self.armed.is_set():
                return
            self.armed.set()
        watchdog = threading.Thread(
            target=self._expire, args=(what,), name="churnwatch-deadline", daemon=True
        )
        watchdog.start()

    def _expire(self, what: str) -> None:
        self._never.wait(self.seconds)
        self.write(
            f"churnwatch: {what} did not finish within {self.seconds:g} s "
            f"(CHURNWATCH_SHUTDOWN_TIMEOUT_SECONDS): exiting with code {EXIT_STOP_OVERDUE}\n"
        )
        self.exit(EXIT_STOP_OVERDUE)


class BoundedWorker(faust.Worker):
    """faust's Worker whose stop is bounded by an :class:`ExitDeadline` and cut short by a second signal."""

    def __init__(
        self,
        app: faust.App,
        *args: Any,
        deadline: ExitDeadline,
        exit_now: Callable[[int], None] = flush_and_exit,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, *args, **kwargs)
        self.deadline = deadline
        self.exit_now = exit_now
        self.stop_signal: signal.Signals | None = None

    def _on_sigint(self) -> None:
        if self._stop_on(signal.SIGINT):
            super()._on_sigint()

    def _on_sigterm(self) -> None:
        if self._stop_on(signal.SIGTERM):
            super()._on_sigterm()

    def _stop_on(self, signum: signal.Signals) -> bool:
        """True on the first signal (stop gracefully, under the deadline); the second one exits now."""
        if self.stop_signal is not None:
            log.error("worker.exit_now", signal=signum.name, note="second signal: no final checkpoint")
            self.exit_now(128 + signum.value)
            return False
        self.stop_signal = signum
        log.info("worker.stopping", signal=signum.name, within_s=self.deadline.seconds)
        self.deadline.arm(f"the stop after {signum.name}")
        return True

    def _crash(self, reason: BaseException) -> None:
        """mode marks every service of the worker crashed: the worker stops, and must exit non-zero, soon."""
        if not self.deadline.armed.is_set():
            log.error(
                "worker.fatal",
                error=f"{type(reason).__name__}: {reason}",
                note="stopping with a final checkpoint where possible, then exiting non-zero",
                within_s=self.deadline.seconds,
            )
            self.deadline.arm("the stop after a fatal error")
        super()._crash(reason)

    def stop_and_shutdown(self) -> None:
        self.deadline.arm("the worker's shutdown")
        super().stop_and_shutdown()
