"""A real HTTP server on 127.0.0.1 that records every request and answers from a script, for tests.

It listens on an ephemeral port in a background thread (``http.server.ThreadingHTTPServer``, HTTP/1.1 with
keep-alive), so clients under test do real networking over loopback; nothing is mocked.

Usage::

    with HTTPRecorder([500, (429, {"Retry-After": "1"}), 200]) as rec:
        ...  # point the code under test at rec.url or rec.url_for("/hook")
        requests = await rec.wait_for(3, timeout=5)      # in async tests
        requests = rec.wait_for_sync(3, timeout=5)       # in sync tests
        assert requests[0].json() == {...}

Scripted replies are consumed one per request, in order; when the queue is empty the ``default`` reply is
used. A reply is an ``int`` status, ``(status, headers)``, ``(status, headers, body)`` or a :class:`Reply`,
which can also delay the answer (to provoke client timeouts) or drop the connection without answering.

Examples
--------
>>> import urllib.request
>>> opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore any *_proxy env vars
>>> with HTTPRecorder([(201, {"X-Id": "7"}, "made")]) as rec:
...     with opener.open(urllib.request.Request(rec.url_for("/items?a=1"), data=b'{"n": 1}')) as resp:
...         resp.status, resp.headers["X-Id"], resp.read()
...     req = rec.wait_for_sync(1)[0]
(201, '7', b'made')
>>> req.method, req.path, req.query, req.json(), req.reply.status
('POST', '/items', 'a=1', {'n': 1}, 201)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["HTTPRecorder", "RecordedRequest", "Reply", "ReplySpec"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    Parameters
    ----------
    status
        HTTP status code.
    headers
        Extra response headers (``Content-Length`` is always computed).
    body
        Response body; ``str`` is sent UTF-8 encoded.
    delay_s
        Wait this long before answering (cut short when the recorder stops).
    drop
        Close the connection without sending any response (a "server disconnected" error for the client).
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    delay_s: float = 0.0
    drop: bool = False


ReplySpec = Reply | int | tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], bytes | str]


def as_reply(spec: ReplySpec) -> Reply:
    """Normalise any accepted reply form into a :class:`Reply`.

    Examples
    --------
    >>> as_reply(404).status, as_reply((429, {"Retry-After": "1"})).headers
    (404, {'Retry-After': '1'})
    """
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, int):
        return Reply(spec)
    if len(spec) == 2:
        return Reply(spec[0], dict(spec[1]))
    status, headers, body = spec  # type: ignore[misc]
    return Reply(status, dict(headers), body)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the server received it, and the reply it was given."""

    method: str
    path: str
    query: str
    #: Header names lower-cased (the last value wins for repeated headers).
    headers: dict[str, str]
    body: bytes
    #: Arrival time on the recorder's clock (``time.monotonic`` unless one was injected).
    received_at: float
    reply: Reply

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real webhook receivers do
    timeout = 30  # an idle keep-alive connection must not pin its thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.recorder._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.recorder._track(self.connection, add=False)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        recorder = self.server.recorder
        body = self._read_body()
        reply = recorder._next_reply()
        parts = urlsplit(self.path)
        recorder._record(
            RecordedRequest(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=recorder.clock(),
                reply=reply,
            )
        )
        if reply.delay_s:
            recorder._stopping.wait(reply.delay_s)
        if reply.drop or recorder._stopping.is_set():
            self.close_connection = True
            return
        payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        names = {k.lower() for k in reply.headers}
        for name, value in reply.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        if payload and "content-type" not in names:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the recording is the log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], recorder: HTTPRecorder) -> None:
        self.recorder = recorder
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up mid-reply are expected in these tests; don't spam stderr.
        pass


class HTTPRecorder:
    """A scripted, recording HTTP server on ``127.0.0.1`` and an ephemeral port.

    Parameters
    ----------
    replies
        Initial reply script, consumed one per request.
    default
        Reply used once the script is exhausted.
    clock
        Stamps :attr:`RecordedRequest.received_at`; inject a fake clock to assert spacing in virtual time.
    host
        Interface to bind.
    """

    def __init__(
        self,
        replies: Iterable[ReplySpec] = (),
        *,
        default: ReplySpec = 200,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
    ) -> None:
        self.clock = clock
        self._host = host
        self._default = as_reply(default)
        self._script: deque[Reply] = deque(as_reply(r) for r in replies)
        self._requests: list[RecordedRequest] = []
        self._cond = threading.Condition()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("HTTPRecorder already started")
        self._stopping.clear()
        self._server = _Server((self._host, 0), self)
        # A short poll interval keeps stop() (server.shutdown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-recorder", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, so later requests fail to connect."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addressing and scripting ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HTTPRecorder is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash, e.g. ``http://127.0.0.1:43121``."""
        return f"http://{self._host}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    def enqueue(self, *replies: ReplySpec) -> None:
        """Append replies to the script."""
        with self._cond:
            self._script.extend(as_reply(r) for r in replies)

    def reset(self) -> None:
        """Forget recorded requests and any unused scripted replies."""
        with self._cond:
            self._requests.clear()
            self._script.clear()

    # -- inspection ------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._cond:
            return list(self._requests)

    def _matching(self, where: Callable[[RecordedRequest], bool] | None) -> list[RecordedRequest]:
        return [r for r in self._requests if where is None or where(r)]

    def wait_for_sync(
        self, n: int, timeout: float = 5.0, *, where: Callable[[RecordedRequest], bool] | None = None
    ) -> list[RecordedRequest]:
        """Block until at least ``n`` (matching) requests arrived; return them. ``TimeoutError`` otherwise.

        Do not call this from a coroutine whose event loop also runs the client under test: use
        :meth:`wait_for`.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._matching(where)) >= n, timeout):
                got = len(self._matching(where))
                raise TimeoutError(f"expected {n} requests within {timeout}s, got {got}")
            return self._matching(where)

    async def wait_for(
        self, n: int, timeout: float = 5.0, *, where: Callable[[RecordedRequest], bool] | None = None
    ) -> list[RecordedRequest]:
        """Await until at least ``n`` (matching) requests arrived; return them. ``TimeoutError`` otherwise.

        The server thread wakes this coroutine on each request, so there is no polling.
        """
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._cond:
            self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    waiter[1].clear()  # before the check, so a request landing in between still wakes us
                    with self._cond:
                        found = self._matching(where)
                    if len(found) >= n:
                        return found
                    await waiter[1].wait()
        except TimeoutError:
            with self._cond:
                got = len(self._matching(where))
            raise TimeoutError(f"expected {n} requests within {timeout}s, got {got}") from None
        finally:
            with self._cond:
                self._waiters.discard(waiter)

    # -- called from handler threads -------------------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._cond:
            return self._script.popleft() if self._script else self._default

    def _record(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
