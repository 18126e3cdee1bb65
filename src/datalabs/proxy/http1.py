"""A lean HTTP/1.1 client connection for proxying: asyncio protocol + httptools (llhttp) parser.

Why not httpx: per request, httpx/httpcore cost several times the CPU of this module (measured with the
former tests/proxy/bench_proxy.py, commit cb90682, whose variants swapped only the upstream client; the
platform path is now measured by bench/proxy.py), and a proxy on a 2-core machine is CPU-bound. This
client does only what a reverse proxy needs: one request at a time per connection, bodies streamed both
ways with back-pressure (reading from the lab pauses while the browser is slower), keep-alive reuse
decided by the parser.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

# Per-connection read buffer bound: reading from the lab pauses above it and resumes once the browser
# side has taken the buffer, so a download to a slow browser holds at most ~HIGH_WATER bytes here (plus
# a socket read and the kernel's socket buffers).
HIGH_WATER = 512 * 1024


class UpstreamError(Exception):
    """The lab could not be reached, or broke the response. `retryable`: nothing was received at all, so
    a request without a body may safely be sent again on a fresh connection (stale keep-alive)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    """The lab accepted the request but did not start answering in time."""


class Aborted(UpstreamError):
    """We dropped the connection ourselves (the browser left); nothing to report."""


class Connection(asyncio.Protocol):
    """One keep-alive connection to a lab. The pool hands it to one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.forgotten = False  # the pool's bookkeeping: counted out exactly once
        self.idle_since = 0.0
        self.used = 0
        self.response: Response | None = None
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response.complete:
            self.close()  # bytes after the response: the lab is confused; never reuse this connection
            return
        response.received = True
        try:
            response.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            response.fail(UpstreamError(f"the lab sent invalid HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response.connection_lost()
        self.wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.wake_writer()

    # -- used by the pool ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the lab reads what we wrote, or it answered (it will not read more), or it closed."""
        if self.write_paused and not self.closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    def wake_writer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (browser gone mid-download); the response reader sees an error."""
        if self.response is not None:
            self.response.fail(Aborted("aborted: the browser left"))
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response:
    """The response to one request on a `Connection`: head (status, headers) then the body, read with
    `read()` until `at_eof`. Also the callback target of the httptools parser."""

    def __init__(self, conn: Connection, head_only: bool) -> None:
        loop = asyncio.get_running_loop()
        self.conn = conn
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = loop.create_future()
        self.complete = False
        self.keep_alive = False
        self.received = False  # any byte at all: a failure after this is not a stale keep-alive
        self.request_incomplete = False  # the lab answered before reading the whole request body
        self._head_only = head_only  # HEAD: httptools cannot be told to expect no body
        self._until_eof = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None

    @property
    def at_eof(self) -> bool:
        return self.complete and not self._chunks

    async def read(self) -> bytes:
        """The next piece of the body, b"" at its end; raises UpstreamError if the lab broke it."""
        while not self._chunks:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        # Everything buffered in one piece: fewer, larger writes to the browser (one send per socket
        # read would cost a Python round trip and a syscall per ~64 KiB on big downloads).
        chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.conn.transport is not None:
            self._paused = False
            self.conn.transport.resume_reading()
        return chunk

    def fail(self, error: UpstreamError) -> None:
        if not self.head.done():
            self.head.set_exception(error)
        elif not self.complete:
            self._error = error
            self._wake()

    def connection_lost(self) -> None:
        if self.complete:
            return
        if self.head.done() and self._until_eof:
            self._finish(keep_alive=False)  # body delimited by the connection's end: this is its end
            return
        began = "before answering" if not self.head.done() else "in the middle of the response"
        self.fail(UpstreamError(f"the lab closed the connection {began}", retryable=not self.received))

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self, keep_alive: bool) -> None:
        self.complete = True
        self.keep_alive = keep_alive
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.headers = []  # interim response (103 Early Hints, a stray 100): wait for the real one
            return
        self.status = status
        names = {name for name, _ in self.headers}
        self._until_eof = (
            b"content-length" not in names and b"transfer-encoding" not in names and status not in (204, 304)
        )
        if not self.head.done():
            self.head.set_result(None)
        self.conn.wake_writer()  # an early answer: stop sending the request body
        if self._head_only:
            self._finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if not self._paused and self._buffered > HIGH_WATER and self.conn.transport is not None:
            self._paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0 or self.complete:
            return  # end of an interim response, or of a HEAD response already finished
        self._finish(keep_alive=self.parser.should_keep_alive())
