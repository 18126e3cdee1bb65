"""WebSocket bridging: browser <-> proxy <-> lab, message for message, close codes included.

The browser's socket is accepted only after it is admitted *and* the lab accepted ours, so the browser
gets the subprotocol the lab chose, and a refused or dead lab is answered with an HTTP status (via the
ASGI `websocket.http.response` extension where the server has it, else a 1008 close, which uvicorn turns
into HTTP 403) rather than with a socket that opens and dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from datalabs.proxy import vnc
from datalabs.proxy.guests import CLOSE_CODE, SCOPE_GUEST, Guest
from datalabs.proxy.headers import SCOPE_SHARE, SCOPE_USER, get_header, request_headers
from datalabs.proxy.refusals import Refusal, unreachable
from datalabs.proxy.routes import Route

if TYPE_CHECKING:
    from datalabs.proxy.app import LabProxy

_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
# Codes an endpoint may put in a close frame (RFC 6455 §7.4; 1005/1006/1015 are reserved for reporting).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(range(3000, 5000))


@dataclass(frozen=True)
class WebSocketOptions:
    """`max_size`: largest message accepted from the lab (JupyterLab outputs can be large); the browser
    side's limit is the front server's (uvicorn --ws-max-size)."""

    open_timeout: float = 10.0
    close_timeout: float = 5.0
    max_size: int | None = 64 * 2**20


async def serve_websocket(proxy: LabProxy, scope: dict, receive: Callable, send: Callable) -> None:
    """Serve one WebSocket connection on the proxy."""
    if (await receive())["type"] != "websocket.connect":
        return
    admitted = await proxy.admit(scope)
    if isinstance(admitted, Refusal):
        await _refuse(scope, send, admitted)
        return
    route = admitted
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    guest = None
    if (principal := scope.get(SCOPE_GUEST)) is not None:  # a share guest: ended when the share is
        guest = Guest(scope[SCOPE_USER], scope[SCOPE_SHARE], route, principal, end=_ender(ended))
    if route.protocol == "vnc":  # a desktop lab: raw RFB on its socket, bridged by vnc.py
        activity = _Activity(proxy.on_activity, route.lab_id)
        if guest is not None:
            proxy.guests.add(guest)
        try:
            mode = guest.mode if guest is not None else None
            await vnc.bridge(route, scope, receive, send, _refuse, activity, guest=mode, ended=ended)
        finally:
            if guest is not None:
                proxy.guests.discard(guest)
        return
    try:
        upstream = await _connect(route, scope, proxy.websocket_options)
    except InvalidStatus as exc:
        status = exc.response.status_code
        refusal = Refusal(status if 400 <= status < 600 else 502, "lab_refused", f"the lab answered {status}")
        await _refuse(scope, send, refusal)
        return
    except (OSError, TimeoutError, WebSocketException) as exc:
        await _refuse(scope, send, unreachable(route.lab_id, exc.__class__.__name__))
        return
    if guest is not None:
        proxy.guests.add(guest)
    try:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _bridge(receive, send, upstream, _Activity(proxy.on_activity, route.lab_id), ended)
    finally:
        if guest is not None:
            proxy.guests.discard(guest)
        # Normally a no-op (already closed); on cancellation (server shutdown) it must not linger.
        if upstream.close_code is None:
            upstream.transport.abort()


async def _connect(route: Route, scope: dict, options: WebSocketOptions) -> ClientConnection:
    """Open the lab side: same path and query, the browser's headers less platform credentials, plus the
    lab's secret. Host is the browser's (through the URI) and Origin the browser's, for Jupyter's
    same-origin check."""
    headers, _ = request_headers(scope, route, websocket=True)
    host = (get_header(scope, b"host") or b"").decode("latin-1")
    if not _HOST_RE.fullmatch(host):
        host = "localhost"
    path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    query: bytes = scope.get("query_string", b"")
    uri = f"ws://{host}{path.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")
    origin = get_header(scope, b"origin")
    kwargs = dict(
        origin=origin.decode("latin-1") if origin else None,
        subprotocols=list(scope.get("subprotocols") or []) or None,
        additional_headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers],
        user_agent_header=None,  # the browser's User-Agent is among the forwarded headers
        compression=None,  # a local socket: deflate would only cost CPU
        ping_interval=None,  # a busy lab missing a pong must not cost the user the kernel connection
        open_timeout=options.open_timeout,
        close_timeout=options.close_timeout,
        max_size=options.max_size,
        proxy=None,  # never through an HTTP(S)_PROXY from the environment
    )
    if route.socket is not None:
        return await unix_connect(route.socket, uri, **kwargs)  # type: ignore[arg-type]
    address, port = route.tcp_address
    return await connect(uri, host=address, port=port, **kwargs)  # type: ignore[arg-type]


def _ender(ended: asyncio.Future[str]) -> Callable[[str], None]:
    def end(reason: str) -> None:
        if not ended.done():
            ended.set_result(reason)

    return end


async def _bridge(
    receive: Callable,
    send: Callable,
    upstream: ClientConnection,
    activity: _Activity,
    ended: asyncio.Future[str] | None = None,
) -> None:
    """Pump messages both ways until one side closes, then close the other with the same code; or, when
    `ended` gets a reason (a guest's share revoked), close both with it."""

    async def from_browser() -> tuple[int, str]:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
                activity()
            elif message["type"] == "websocket.disconnect":
                return message.get("code", 1000), message.get("reason") or ""

    async def from_lab() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": data})
                activity()

    browser = asyncio.ensure_future(from_browser())
    lab = asyncio.ensure_future(from_lab())
    waited = (browser, lab) if ended is None else (browser, lab, ended)
    try:
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (browser, lab):
            task.cancel()
        await asyncio.gather(browser, lab, return_exceptions=True)
    if ended is not None and ended.done() and not (browser.done() and not browser.cancelled()):
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": CLOSE_CODE, "reason": ended.result()})
        await upstream.close(1001, ended.result())
        return
    if browser.done() and not browser.cancelled() and browser.exception() is None:
        code, reason = browser.result()
        await upstream.close(_to_lab(code), reason)
        return
    # The lab ended (or a send to it failed because it did): tell the browser how.
    with contextlib.suppress(Exception):
        close = {"type": "websocket.close", "code": _to_browser(upstream.close_code)}
        await send({**close, "reason": upstream.close_reason or ""})
    await upstream.close()


def _to_lab(code: int) -> int:
    """The browser's close code as we may send it: 1005 (none given) -> 1000, 1006 (vanished) -> 1001."""
    if code in _SENDABLE:
        return code
    return 1000 if code == 1005 else 1001


def _to_browser(code: int | None) -> int:
    """The lab's close code for the browser: a lab that vanished without a close frame -> 1011."""
    if code in _SENDABLE:
        return code  # type: ignore[return-value]
    return 1000 if code == 1005 else 1011


async def _refuse(scope: dict, send: Callable, refusal: Refusal) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = refusal.body()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class _Activity:
    """Calls on_activity(lab_id) at most once a second per connection: a chatty kernel socket should
    not turn into thousands of calls a second."""

    __slots__ = ("_callback", "_lab_id", "_next")

    def __init__(self, callback: Callable[[str], None] | None, lab_id: str) -> None:
        self._callback, self._lab_id, self._next = callback, lab_id, 0.0

    def __call__(self) -> None:
        if self._callback is not None and (now := time.monotonic()) >= self._next:
            self._next = now + 1.0
            self._callback(self._lab_id)
