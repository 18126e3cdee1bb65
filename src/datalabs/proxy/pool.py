"""`UpstreamPool`: keep-alive connections to one lab, and sending one request through them.

Keep-alive pooling is what separates fast proxies from slow ones: a new unix-socket connection per
request costs the lab an accept and a new protocol instance, and costs us a connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from datalabs.proxy.connect import open_lab_socket
from datalabs.proxy.http1 import Connection, Response, UpstreamError, UpstreamTimeout
from datalabs.proxy.routes import Route


@dataclass(frozen=True)
class PoolOptions:
    """Limits of one lab's pool. `idle_timeout` stays below common servers' keep-alive timeouts
    (uvicorn: 5 s) so we rarely pick a connection the lab is closing; `head_timeout` bounds the wait for
    the response head (None: wait forever; a lab may legitimately think long, a hung one should not pin
    the browser forever)."""

    max_connections: int = 64
    max_idle: int = 64
    idle_timeout: float = 4.0
    connect_timeout: float = 10.0
    head_timeout: float | None = 300.0


class UpstreamPool:
    """Connections to one upstream (`route.target`). Safe for concurrent requests on one event loop."""

    def __init__(self, route: Route, options: PoolOptions | None = None) -> None:
        self.options = options or PoolOptions()
        self.target = route.target
        self._socket = route.socket
        self._uid = route.uid
        self._address = route.tcp_address if route.host_port else None
        self._idle: list[Connection] = []  # LIFO: the most recently used is the least likely stale
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.last_used = time.monotonic()

    @property
    def connections(self) -> int:
        """Open connections (busy and idle)."""
        return self._count

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None = None,
        chunked: bool = False,
    ) -> Response:
        """Send a request and return once the response head has arrived. The caller reads the body with
        `Response.read()` and must then call `release(response)`. `body` is streamed (with `chunked`, in
        chunked encoding; otherwise the headers carry its Content-Length). Raises UpstreamError if the lab
        cannot be reached or fails before answering; a bodiless request that failed on a reused
        connection before any byte came back is retried once on a new one (the lab may have closed it
        just as we sent)."""
        self.last_used = time.monotonic()
        head = _request_head(method, target, headers)
        for attempt in (1, 2):
            conn = await self._acquire()
            reused = conn.used > 0
            conn.used += 1
            response = Response(conn, head_only=method == "HEAD")
            conn.response = response
            try:
                if conn.closed or conn.transport is None or conn.transport.is_closing():
                    raise UpstreamError("the lab closed the connection", retryable=True)
                conn.write(head)
                if body is not None:
                    await _send_body(conn, response, body, chunked)
                await self._wait_head(response)
                return response
            except UpstreamError as exc:
                self._forget(conn)
                if attempt == 1 and reused and body is None and exc.retryable:
                    continue
                raise
            except BaseException:
                self._forget(conn)
                if response.head.done() and not response.head.cancelled():
                    response.head.exception()  # retrieved: no "never retrieved" warning
                raise
        raise AssertionError("unreachable")

    def release(self, response: Response) -> None:
        """Give the connection back: kept for reuse if the response was read to its end and both sides
        agreed to keep it alive, closed otherwise (e.g. the browser left mid-download)."""
        conn = response.conn
        conn.response = None
        reusable = response.at_eof and response.keep_alive and not response.request_incomplete
        if reusable and not conn.closed and not self.closed and len(self._idle) < self.options.max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
            self._wake_one()
        else:
            self._forget(conn)

    def sweep(self) -> None:
        """Close idle connections older than the idle timeout (called now and then by the proxy)."""
        now = time.monotonic()
        for conn in [c for c in self._idle if c.closed or now - c.idle_since > self.options.idle_timeout]:
            self._idle.remove(conn)
            self._forget(conn)

    def close(self) -> None:
        """Close idle connections now; busy ones close when their response is released."""
        self.closed = True
        while self._idle:
            self._forget(self._idle.pop())
        while self._waiters:
            self._waiters.popleft().set_result(None)  # they see `closed` and fail

    # -- internals -------------------------------------------------------------------------------------

    async def _acquire(self) -> Connection:
        while True:
            if self.closed:
                raise UpstreamError("the lab's route was removed", retryable=False)
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                if conn.closed or now - conn.idle_since > self.options.idle_timeout:
                    self._forget(conn)
                    continue
                return conn
            if self._count < self.options.max_connections:
                self._count += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._count -= 1
                    self._wake_one()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                if self._address is None:
                    sock = await open_lab_socket(self._socket, self._uid)
                    _, conn = await loop.create_unix_connection(Connection, sock=sock)
                else:
                    _, conn = await loop.create_connection(Connection, *self._address)
        except TimeoutError as exc:
            raise UpstreamError("connecting to the lab timed out") from exc
        except OSError as exc:  # RedirectedSocket included: said, never followed
            raise UpstreamError(f"cannot connect to the lab: {exc.strerror or exc}") from exc
        return conn

    async def _wait_head(self, response: Response) -> None:
        timeout = self.options.head_timeout
        if response.head.done() or timeout is None:
            await response.head
            return
        handle = asyncio.get_running_loop().call_later(timeout, _time_out, response)
        try:
            await response.head
        finally:
            handle.cancel()

    def _forget(self, conn: Connection) -> None:
        conn.close()
        if not conn.forgotten:
            conn.forgotten = True
            self._count -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _time_out(response: Response) -> None:
    response.fail(UpstreamTimeout("the lab did not answer in time"))
    response.conn.close()


def _request_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target)]
    lines.extend(b"%s: %s\r\n" % header for header in headers)
    lines.append(b"\r\n")
    return b"".join(lines)


async def _send_body(conn: Connection, response: Response, body: AsyncIterator[bytes], chunked: bool) -> None:
    """Stream the request body, pausing while the lab is slower than the browser. Stops early if the lab
    answers before reading it all (e.g. 413): the connection is then not reusable."""
    async with contextlib.aclosing(body):  # type: ignore[type-var]
        async for chunk in body:
            if response.head.done() or conn.closed:
                response.request_incomplete = True
                return
            if chunk:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await conn.drain()
    if chunked:
        conn.write(b"0\r\n\r\n")
