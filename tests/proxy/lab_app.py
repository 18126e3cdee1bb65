"""A small real lab for the proxy tests: a Starlette app that reports what reached it.

It records (in `LabRecorder`, read by the tests in process) the headers of every request and WebSocket
handshake, close codes, and the connections uvicorn accepted (through `counting_protocol`).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MIB = 2**20


@dataclass
class LabRecorder:
    requests: list[dict] = field(default_factory=list)
    websockets: list[dict] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    streams_ended: list[str] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def counting_protocol(recorder: LabRecorder) -> type[HttpToolsProtocol]:
    """uvicorn's own HTTP protocol, counting accepted connections (keep-alive reuse shows as few)."""

    class Counting(HttpToolsProtocol):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            with recorder.lock:
                recorder.connections += 1
            super().connection_made(transport)

    return Counting


def make_lab(recorder: LabRecorder) -> Starlette:
    def seen(request_or_ws: Request | WebSocket) -> dict:
        return {
            "path": request_or_ws.url.path,
            "raw_path": request_or_ws.scope.get("raw_path", b"").decode("latin-1"),
            "query": request_or_ws.url.query,
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in request_or_ws.scope["headers"]
            ],
            "cookies": dict(request_or_ws.cookies),
        }

    async def echo(request: Request) -> Response:
        body = await request.body()
        info = {**seen(request), "method": request.method, "body_len": len(body)}
        recorder.requests.append(info)
        return JSONResponse(info)

    async def big(request: Request) -> Response:
        size = int(request.query_params.get("size", MIB))
        chunk = b"x" * min(MIB, size)

        async def chunks():
            sent = 0
            while sent < size:
                piece = chunk if size - sent >= len(chunk) else chunk[: size - sent]
                sent += len(piece)
                yield piece

        headers = {"content-length": str(size)} if request.query_params.get("length") else {}
        return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)

    async def endless(request: Request) -> Response:
        async def chunks():
            try:
                while True:
                    yield b"y" * 65536
                    await asyncio.sleep(0.01)
            finally:
                recorder.streams_ended.append(request.url.path)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def upload(request: Request) -> Response:
        digest, count = hashlib.sha256(), 0
        async for piece in request.stream():
            digest.update(piece)
            count += len(piece)
        return JSONResponse({"bytes": count, "sha256": digest.hexdigest()})

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def cookies(request: Request) -> Response:
        response = PlainTextResponse("cookies set")
        response.set_cookie("wide", "1", path="/")
        response.set_cookie("nopath", "2")
        response.raw_headers.append((b"set-cookie", b"narrow=3; Path=/datalabs/lab1/sub; HttpOnly"))
        response.raw_headers.append((b"set-cookie", b"domained=4; Domain=example.org; Path=/"))
        response.set_cookie("datalabs_session", "forged", path="/")
        return response

    async def leak(request: Request) -> Response:
        secret = request.headers.get("authorization", "")
        half = len(secret) // 2

        async def chunks():
            yield f"before {secret[:half]}".encode()
            await asyncio.sleep(0.01)  # the secret straddles two chunks
            yield f"{secret[half:]} after".encode()

        headers = {"x-echo-auth": secret, "x-harmless": "ok"}
        return StreamingResponse(chunks(), media_type="text/plain", headers=headers)

    async def sleep(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "0.2")))
        return PlainTextResponse("slept")

    async def reject(request: Request) -> Response:
        return PlainTextResponse("too large", status_code=413)  # without reading the body

    async def ws(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        recorder.websockets.append({**seen(websocket), "subprotocols": offered})
        await websocket.accept(subprotocol=offered[0] if offered else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    recorder.closes.append(message.get("code", 1000))
                    return
                if message.get("text") is not None:
                    text = message["text"]
                    if text.startswith("close:"):
                        await websocket.close(int(text.split(":")[1]), reason="lab says bye")
                        return
                    await websocket.send_text(text)
                else:
                    await websocket.send_bytes(message["bytes"])
        except WebSocketDisconnect as exc:
            recorder.closes.append(exc.code)

    prefix = "/datalabs/{lab}"
    return Starlette(
        routes=[
            Route(prefix + "/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            Route(prefix + "/big", big),
            Route(prefix + "/endless", endless),
            Route(prefix + "/upload", upload, methods=["POST", "PUT"]),
            Route(prefix + "/redirect", redirect),
            Route(prefix + "/cookies", cookies),
            Route(prefix + "/leak", leak),
            Route(prefix + "/sleep", sleep),
            Route(prefix + "/reject", reject, methods=["POST"]),
            WebSocketRoute(prefix + "/ws", ws),
        ]
    )
