"""WebSockets to web labs as a byte pipe: after the handshake, frames pass through untouched.

uvicorn hands every WebSocket upgrade to the `ws` protocol class it is configured with. This one (made
for a LabProxy by `websocket_protocol(proxy)`) admits upgrades under the proxy's prefix exactly as the
ASGI path does (same authentication, authorisation and refusals), sends the handshake to the lab with
platform credentials stripped and the lab's secret injected, relays the lab's 101 with the same header
filtering as HTTP responses, and from then on copies bytes both ways with flow control — as
configurable-http-proxy does. Parsing and re-framing every message twice (the ASGI bridge in
websocket.py) cost about twice CHP's CPU per message; frames are valid end to end, so there is no need.

Everything else — WebSockets to the platform itself, and desktop labs, whose RFB socket needs frames
unwrapped (vnc.py) — goes to uvicorn's own WebSocket protocol and the ASGI app as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

from datalabs.proxy.connect import open_lab_socket
from datalabs.proxy.guests import SCOPE_GUEST
from datalabs.proxy.headers import request_headers, response_headers
from datalabs.proxy.refusals import Refusal, unreachable
from datalabs.proxy.routes import Route
from datalabs.proxy.websocket import _Activity

if TYPE_CHECKING:
    from datalabs.proxy.app import LabProxy

MAX_HEAD = 64 * 1024  # a lab's handshake answer larger than this is not a WebSocket handshake
UPGRADE = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade")]


def websocket_protocol(proxy: LabProxy) -> type[asyncio.Protocol]:
    """The class to give uvicorn as `ws=`: lab WebSockets piped by `proxy`, the rest as uvicorn would."""
    return type("LabWebSocketProtocol", (PassthroughProtocol,), {"proxy": proxy})


class PassthroughProtocol(asyncio.Protocol):
    """The browser side of one upgraded connection (constructed by uvicorn, once per upgrade)."""

    proxy: ClassVar[LabProxy]

    def __init__(self, config: Any, server_state: Any, app_state: dict | None = None, _loop=None) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.delegate: asyncio.Protocol | None = None
        self.opening: asyncio.Task | None = None
        self.early = bytearray()  # browser bytes that arrive before the lab answered the handshake

    # -- asyncio.Protocol, browser side ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None and self.upstream.piping:
            self.upstream.transport.write(data)
            self.upstream.activity()
        elif self.delegate is not None:
            self.delegate.data_received(data)
        elif self.opening is None:  # the upgrade request, as uvicorn wrote it out again
            self._upgrade(data)
        else:
            self.early += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.delegate is not None:
            self.delegate.connection_lost(exc)
        if self.opening is not None:
            self.opening.cancel()
        if self.upstream is not None:
            self.upstream.transport.close()

    def pause_writing(self) -> None:  # the browser reads slower than the lab writes
        if self.delegate is not None:
            self.delegate.pause_writing()
        elif self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.delegate is not None:
            self.delegate.resume_writing()
        elif self.upstream is not None:
            self.upstream.transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's shutdown: end the connection (the delegate closes its WebSocket properly)."""
        if self.delegate is not None:
            self.delegate.shutdown()  # type: ignore[attr-defined]
        else:
            self.transport.close()

    # -- the handshake ---------------------------------------------------------------------------------

    def _upgrade(self, request: bytes) -> None:
        scope = self._scope(request)
        if self.proxy.lab_id(scope) is None:
            self._hand_over(request)
            return
        self.transport.pause_reading()  # nothing more from the browser until the lab has answered
        self.opening = asyncio.get_running_loop().create_task(self._open(scope, request))

    def _scope(self, request: bytes) -> dict:
        """The ASGI-style scope the proxy's admission and header filters read."""
        line, *lines = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        target = line.split(b" ")[1]
        raw_path, _, query = target.partition(b"?")
        headers = []
        for header in lines:
            name, _, value = header.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return {
            "type": "websocket",
            "method": "GET",
            "scheme": "wss" if self.transport.get_extra_info("sslcontext") else "ws",
            "http_version": "1.1",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "client": self.transport.get_extra_info("peername"),
        }

    async def _open(self, scope: dict, request: bytes) -> None:
        admitted = await self.proxy.admit(scope)
        if isinstance(admitted, Refusal):
            self._refuse(admitted)
            return
        route = admitted
        # A desktop lab: the ASGI path knows how to bridge it; a share guest: the ASGI path can close the
        # connection cleanly (a close frame with the reason) when the share is revoked (guests.py).
        if route.protocol != "http" or scope.get(SCOPE_GUEST) is not None:
            self._hand_over(request)
            return
        options = self.proxy.websocket_options
        try:
            self.upstream = await asyncio.wait_for(self._connect(route, scope), options.open_timeout)
            head, rest = await asyncio.wait_for(self.upstream.head, options.open_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._refuse(unreachable(route.lab_id, exc.__class__.__name__))
            return
        status, headers = _parse_head(head)
        if status != 101:
            refusal = Refusal(
                status if 400 <= status < 600 else 502, "lab_refused", f"the lab answered {status}"
            )
            self._refuse(refusal)
            return
        host = next((v for n, v in scope["headers"] if n == b"host"), None)
        prefix = self.proxy.prefix.encode() + route.lab_id.encode() + b"/"
        kept = response_headers(headers, route, host, prefix) + UPGRADE
        self.transport.write(_head(b"HTTP/1.1 101 Switching Protocols", kept))
        self.upstream.start_piping(self, _Activity(self.proxy.on_activity, route.lab_id))
        if rest:
            self.transport.write(rest)
        if self.early:
            self.upstream.transport.write(bytes(self.early))
            self.early.clear()
        self.transport.resume_reading()

    async def _connect(self, route: Route, scope: dict) -> Upstream:
        """Open the lab side and send the handshake: the browser's headers (its Sec-WebSocket-* among them,
        so the lab answers the browser's key) less platform credentials, plus the lab's secret."""
        headers, _ = request_headers(scope, route)
        loop = asyncio.get_running_loop()
        if route.socket is not None:
            sock = await open_lab_socket(route.socket, route.uid)
            _, upstream = await loop.create_unix_connection(Upstream, sock=sock)
        else:
            address, port = route.tcp_address
            _, upstream = await loop.create_connection(Upstream, address, port)
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        line = b"GET " + target + b" HTTP/1.1"
        upstream.transport.write(_head(line, headers + UPGRADE))
        return upstream

    def _hand_over(self, request: bytes) -> None:
        """Let uvicorn's own WebSocket protocol (and through it the ASGI app) serve this connection."""
        self.server_state.connections.discard(self)  # the delegate registers itself
        self.delegate = AutoWebSocketsProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        self.delegate.connection_made(self.transport)
        self.delegate.data_received(request + bytes(self.early))
        self.early.clear()
        self.transport.resume_reading()

    def _refuse(self, refusal: Refusal) -> None:
        body = refusal.body()
        reason = HTTPStatus(refusal.status).phrase.encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        self.transport.write(_head(b"HTTP/1.1 %d %s" % (refusal.status, reason), headers) + body)
        self.transport.close()
        if self.upstream is not None:
            self.upstream.transport.close()


class Upstream(asyncio.Protocol):
    """The lab side: collects the handshake answer, then copies the lab's bytes to the browser."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.browser: PassthroughProtocol | None = None
        self.activity = lambda: None
        self.piping = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def start_piping(self, browser: PassthroughProtocol, activity: _Activity) -> None:
        self.browser, self.activity, self.piping = browser, activity, True

    def data_received(self, data: bytes) -> None:
        if self.piping:
            self.browser.transport.write(data)
            self.activity()
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0 and not self.head.done():
            self.head.set_result((bytes(self.buffer[:end]), bytes(self.buffer[end + 4 :])))
            self.buffer.clear()
        elif len(self.buffer) > MAX_HEAD and not self.head.done():
            self.head.set_exception(ConnectionError("the lab's handshake answer is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ConnectionError("the lab closed the connection during the handshake"))
        if self.browser is not None:
            self.browser.transport.close()  # after what is already buffered for it is sent

    def pause_writing(self) -> None:  # the lab reads slower than the browser writes
        if self.browser is not None:
            self.browser.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.browser is not None:
            with contextlib.suppress(RuntimeError):
                self.browser.transport.resume_reading()


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    line, *lines = head.split(b"\r\n")
    try:
        status = int(line.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 502, []
    headers = []
    for header in lines:
        name, _, value = header.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers


def _head(first_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"\r\n".join([first_line, *(name + b": " + value for name, value in headers)]) + b"\r\n\r\n"
