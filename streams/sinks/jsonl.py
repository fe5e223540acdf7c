"""JSONL sink: append one ``orjson`` line per alert to a local file (an audit trail and a last resort).

Each batch is written with a single ``write`` then flushed and ``fsync``-ed before ``send`` returns, so a
delivered batch survives a crash. File I/O runs in a worker thread to keep the event loop responsive.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from detectors.alerts import Alert
from streams.sinks.base import PermanentDeliveryError, RetryableDeliveryError, alert_json

log = structlog.get_logger(__name__)

__all__ = ["JsonlSink"]

# Errors no retry will fix; anything else (disk full, I/O hiccup) may clear up.
_PERMANENT_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EROFS,
    errno.ENAMETOOLONG,
}


class JsonlSink:
    """Append alerts as JSON lines to ``path`` (parent directories are created).

    Examples
    --------
    >>> import tempfile
    >>> from detectors.alerts import AlertKind, Severity, Transition
    >>> a = Alert(kind=AlertKind.ACCOUNT_RISK, account_id="acme", episode_id="acme:1",
    ...           transition=Transition.OPENED, severity=Severity.HIGH, risk=0.5,
    ...           event_ts_ms=1, detected_ts_ms=2)
    >>> from structlog.testing import capture_logs
    >>> with tempfile.TemporaryDirectory() as tmp, capture_logs() as logs:
    ...     sink = JsonlSink(Path(tmp) / "out" / "alerts.jsonl")
    ...     asyncio.run(sink.send([a, a]))
    ...     len(sink.path.read_text().splitlines())
    2
    >>> logs[0]["event"], logs[0]["alerts"]
    ('jsonl.written', 2)
    """

    def __init__(self, path: Path, *, name: str = "jsonl") -> None:
        self.name = name
        self.path = Path(path)
        # Batches from concurrent deliveries must not interleave inside one file.
        self._lock = asyncio.Lock()

    @property
    def target(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"JsonlSink(name={self.name!r}, path={str(self.path)!r})"

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with self.path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if created:
            # Make the new directory entry durable too, or a crash could lose the whole file.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def requests(self, alerts: Sequence[Alert]) -> list[tuple[Alert, ...]]:
        return [tuple(alerts)] if alerts else []  # one append (and fsync) per batch

    async def send(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        data = b"".join(alert_json(a) + b"\n" for a in alerts)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, data)
            except OSError as exc:
                reason = f"cannot append to {self.path}: {exc.strerror or type(exc).__name__}"
                if exc.errno in _PERMANENT_ERRNOS:
                    raise PermanentDeliveryError(reason) from None
                raise RetryableDeliveryError(reason) from None
        log.debug("jsonl.written", sink=self.name, path=str(self.path), alerts=len(alerts))
