"""Talking to a user's running JupyterLab as the platform: its REST API and a kernel's channels.

Used to prepare what a lab opens (a notebook that loads a file from the explorer, its first cell run in
the kernel the notebook keeps). The lab is the user's code, so everything here treats it as hostile:

- it is reached only through `proxy.connect.open_lab_socket`, which refuses a socket the lab swapped
  for a link or another user's, and with the lab's own secret header, as the proxy does;
- every answer is bounded in size and every exchange in time (`LIMIT`, `TIMEOUT`): a lab that answers
  slowly, endlessly or with garbage costs one request's worth and yields `JupyterError`;
- nothing it answers is used outside that lab: what we read (kernel outputs) is only written back to it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import h11
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from datalabs.proxy.connect import open_lab_socket
from datalabs.proxy.routes import Route

LIMIT = 16 * 2**20  # bytes of one answer, and of all outputs of one cell
TIMEOUT = 60.0  # seconds for one request, and for one cell to run


class JupyterError(Exception):
    """The lab did not do what was asked (not running, refused, too slow, nonsense): the message says."""


@dataclass
class CellRun:
    """What running one cell gave, as notebook outputs (nbformat v4)."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    status: str = "ok"  # "ok" | "error"


class Jupyter:
    """One running Jupyter server, reached through `route` (a unix-socket route with its secret headers);
    `base_url` is the server's base URL (`/datalabs/<id>/`)."""

    def __init__(self, route: Route, base_url: str, *, timeout: float = TIMEOUT, limit: int = LIMIT) -> None:
        if route.socket is None:
            raise JupyterError("the lab is not reachable through a local socket")
        self.route = route
        self.base_url = base_url
        self.timeout = timeout
        self.limit = limit

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON or None) of one API call, `path` below the base URL (quoted here)."""
        try:
            return await asyncio.wait_for(self._request(method, path, body), self.timeout)
        except TimeoutError:
            raise JupyterError(f"the lab did not answer {method} {path} within {self.timeout:g} s") from None
        except (OSError, h11.ProtocolError, ConnectionError) as exc:
            raise JupyterError(f"the lab could not be reached: {exc}") from None

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        sock = await open_lab_socket(self.route.socket, self.route.uid)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2**16)
        try:
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=2**16)
            headers = [
                ("Host", "lab"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Connection", "close"),
                *self.route.headers.items(),
            ]
            target = self.base_url + quote(path, safe="/?=&")
            writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
            writer.write(conn.send(h11.Data(data=data)) if data else b"")
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            status, chunks, size = 0, [], 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(2**16))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self.limit:
                        raise JupyterError(f"the lab answered more than {self.limit:,} bytes")
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        finally:
            writer.close()
        raw = b"".join(chunks)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            if status >= 400:  # an error is an error whatever its body says (Jupyter's are HTML at times)
                return status, None
            raise JupyterError(f"the lab answered {method} {path} with something that is not JSON") from None

    async def run_cell(self, kernel_id: str, code: str) -> CellRun:
        """Run `code` in kernel `kernel_id` and collect its outputs, as a notebook front end would."""
        try:
            return await asyncio.wait_for(self._run_cell(kernel_id, code), self.timeout)
        except TimeoutError:
            raise JupyterError(f"the cell did not finish within {self.timeout:g} s") from None
        except (OSError, WebSocketException, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise JupyterError(f"the kernel could not run the cell: {exc}") from None

    async def _run_cell(self, kernel_id: str, code: str) -> CellRun:
        sock = await open_lab_socket(self.route.socket, self.route.uid)
        session = uuid.uuid4().hex
        uri = f"ws://lab{self.base_url}api/kernels/{quote(kernel_id)}/channels?session_id={session}"
        async with connect(
            uri,
            sock=sock,
            additional_headers=self.route.headers,
            proxy=None,
            max_size=self.limit,
            compression=None,
        ) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send(json.dumps(_execute_request(msg_id, session, code)))
            run, size, idle, replied = CellRun(), 0, False, False
            while not (idle and replied):
                raw = await ws.recv()
                size += len(raw)
                if size > self.limit:
                    raise JupyterError(f"the cell's outputs are larger than {self.limit:,} bytes")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg.get("msg_type"), msg.get("content", {})
                if kind == "status":
                    idle = content.get("execution_state") == "idle"
                elif kind == "execute_reply":
                    replied = True
                    run.status = content.get("status", "ok")
                    run.execution_count = content.get("execution_count")
                elif kind in ("stream", "display_data", "execute_result", "error"):
                    run.outputs.append(_output(kind, content))
            return run


def _execute_request(msg_id: str, session: str, code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": msg_id,
            "username": "datalabs",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }


def _output(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """A kernel message as a notebook output (nbformat v4: the fields each output type has)."""
    if kind == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": content["traceback"],
        }
    out = {"output_type": kind, "data": content["data"], "metadata": content.get("metadata", {})}
    if kind == "execute_result":
        out["execution_count"] = content.get("execution_count")
    return out
