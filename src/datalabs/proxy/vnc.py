"""The VNC bridge, in the proxy: noVNC's WebSocket (binary RFB) <-> the desktop lab's RFB socket or host:port.

No websockify process and no TCP port: the proxy admits the browser like any lab request (platform
session or token, owner only), connects to the lab's socket as connect.py checks it, answers Xvnc's
password challenge with the lab's secret and offers the browser no further authentication (rfb.py),
then copies bytes both ways. RFB is a byte stream, so WebSocket message
boundaries carry no meaning and are not kept; reads from the lab are large (a framebuffer update can be
megabytes) and writes to either side wait for the other end to drain, so a slow browser slows Xvnc down
instead of filling the proxy's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from datalabs.proxy import rfb
from datalabs.proxy.connect import open_lab_socket
from datalabs.proxy.guests import CLOSE_CODE
from datalabs.proxy.refusals import Refusal, unreachable
from datalabs.proxy.rfb_input import RFBInputError, ViewOnlyFilter
from datalabs.proxy.routes import Route

READ_SIZE = 256 * 1024  # one read from the lab; bigger messages cost the browser nothing extra
CONNECT_TIMEOUT = 10.0


async def _open(route: Route) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The lab's RFB stream, past the security handshake when the lab has a VNC password (then Xvnc's
    greeting has been answered already and the browser is greeted by us)."""
    if route.socket is None:  # a lab on a node's port (a Slurm cluster without a shared folder)
        reader, writer = await asyncio.open_connection(*route.tcp_address, limit=READ_SIZE)
    else:
        sock = await open_lab_socket(route.socket, route.uid)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=READ_SIZE)
    if route.secret:
        try:
            await rfb.authenticate(reader, writer, route.secret)
        except BaseException:
            writer.close()
            raise
    return reader, writer


def _browser_bytes(receive: Callable):
    async def next_bytes() -> bytes | None:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return None
        return message.get("bytes") or (message.get("text") or "").encode("latin-1", "replace")

    return next_bytes


def _sender(send: Callable):
    async def send_bytes(data: bytes) -> None:
        await send({"type": "websocket.send", "bytes": data})

    return send_bytes


async def bridge(
    route: Route,
    scope: dict,
    receive: Callable,
    send: Callable,
    refuse: Callable[[dict, Callable, Refusal], Awaitable[None]],
    activity: Callable[[], None],
    *,
    guest: str | None = None,
    ended: asyncio.Future[str] | None = None,
) -> None:
    """Serve one admitted WebSocket of a desktop lab (the connect message was already received).

    `guest`: a share guest's mode. Their ClientInit always asks for a shared session (a guest never
    disconnects the owner's viewer); a "view" guest's key, pointer and cut-text messages are dropped
    (rfb_input.py), which needs the proxy to do the handshake (a lab with a VNC password: all of ours).
    `ended` gets a reason when the guest's share is revoked: the connection is closed with it."""
    if guest is not None and not route.secret:
        await refuse(scope, send, Refusal(403, "view_only_unavailable", "this desktop cannot be shared"))
        return
    try:
        reader, writer = await asyncio.wait_for(_open(route), CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        await refuse(scope, send, unreachable(route.lab_id, exc.__class__.__name__))
        return
    offered = list(scope.get("subprotocols") or [])
    await send({"type": "websocket.accept", "subprotocol": "binary" if "binary" in offered else None})
    if route.secret:
        try:
            early = await asyncio.wait_for(rfb.greet_browser(_browser_bytes(receive), _sender(send)), 30)
        except (rfb.RfbError, TimeoutError):
            writer.close()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1002, "reason": "RFB handshake failed"})
            return
    to_lab = _GuestInput(guest) if guest is not None else None
    if route.secret and early:  # the start of the browser's ClientInit
        writer.write(to_lab.feed(early) if to_lab is not None else early)

    async def from_browser() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:  # noVNC speaks binary; text frames would be the retired base64 protocol
                data = (message.get("text") or "").encode("latin-1", "replace")
            writer.write(to_lab.feed(data) if to_lab is not None else data)
            await writer.drain()
            activity()

    async def from_lab() -> None:
        while data := await reader.read(READ_SIZE):
            await send({"type": "websocket.send", "bytes": data})
            activity()

    browser = asyncio.ensure_future(from_browser())
    lab = asyncio.ensure_future(from_lab())
    try:
        await asyncio.wait(
            (browser, lab) if ended is None else (browser, lab, ended), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (browser, lab):
            task.cancel()
        await asyncio.gather(browser, lab, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if browser.done() and not browser.cancelled() and isinstance(browser.exception(), RFBInputError):
        with contextlib.suppress(Exception):  # a viewer's client sent what no view-only bridge passes
            await send({"type": "websocket.close", "code": 1008, "reason": "RFB input refused"})
        return
    if ended is not None and ended.done():
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": CLOSE_CODE, "reason": ended.result()})
        return
    if lab.done() and not lab.cancelled():
        # The desktop ended (app closed, lab stopped) or broke: tell the browser, which may reconnect.
        code = 1000 if lab.exception() is None else 1011
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": "the desktop closed"})


class _GuestInput:
    """A guest's bytes toward the desktop, after the handshake: the first is ClientInit (forced to
    shared); then, for a viewer, only non-input messages (ViewOnlyFilter)."""

    def __init__(self, mode: str) -> None:
        self._init = True
        self._filter = ViewOnlyFilter() if mode == "view" else None

    def feed(self, data: bytes) -> bytes:
        head = b""
        if self._init and data:
            head, data, self._init = b"\x01", data[1:], False
        return head + (self._filter.feed(data) if self._filter is not None else data)
