"""`FakeRuntime`: a RuntimeBackend that serves a tiny HTTP app on the lab's unix socket inside the
platform process. For fast tests of the services above the runtime; it passes the same contract suite.

Behaviour is chosen by the command: `["fake-lab"]` serves, `["fake-crash"]` fails at start,
`["fake-hang"]` never answers (start timeout), `["jupyter-fake"]` serves like `fake-lab` under a name
the platform takes for a Jupyter server (whose API it then does not speak)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from datalabs.runtimes.base import Endpoint, LabSpec, Limits, ProgressEvent, RuntimeBackend, StartError
from datalabs.runtimes.events import EventLog, tail_lines

SOCKET_NAME = "lab.sock"
_SERVERS: dict[str, asyncio.AbstractServer] = {}  # by socket path: survives "re-attach" in one process


class FakeRuntime(RuntimeBackend):
    kinds: ClassVar[tuple[str, ...]] = ("web", "desktop")

    def __init__(self) -> None:
        self._socket: str | None = None
        self._headers: dict[str, str] = {}
        self._log: Path | None = None
        self._code: int | None = None
        self._events = EventLog()

    async def start(self, spec: LabSpec) -> Endpoint:
        self._log = spec.log_path
        spec.runtime_dir.mkdir(parents=True, exist_ok=True)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._events.add(10, "Starting fake lab")
        command = spec.command[0] if spec.command else ""
        if command == "fake-crash":
            self._write_log("fake lab crashed on purpose\n")
            self._code = 3
            self._events.add(100, "the lab exited with code 3 while starting", failed=True)
            raise StartError("the lab exited with code 3 while starting: fake lab crashed on purpose")
        if command not in ("fake-lab", "fake-hang", "jupyter-fake"):
            self._events.add(100, f"command not found: {command}", failed=True)
            raise StartError(f"command not found: {command}")
        if command == "fake-hang":
            await asyncio.sleep(min(spec.start_timeout, 30))
            self._code = -9
            self._events.add(100, "did not answer in time", failed=True)
            raise StartError(f"the lab did not answer within {spec.start_timeout:.0f} s")
        self._socket = str(spec.runtime_dir / SOCKET_NAME)
        self._headers = dict(spec.secret_headers)
        Path(self._socket).unlink(missing_ok=True)
        _SERVERS[self._socket] = await asyncio.start_unix_server(self._serve, path=self._socket)
        self._write_log(f"fake lab {spec.lab_id} serving on {self._socket}\n")
        self._write_log(f"command: {spec.command!r}\n")  # what it was started with, for tests to see
        self._events.add(100, "Ready", ready=True)
        return self.endpoint()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        authorised = all(headers.get(k.lower()) == v for k, v in self._headers.items())
        status, body = ("200 OK", b"fake lab ok") if authorised else ("403 Forbidden", b"no secret")
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        writer.close()

    def _write_log(self, text: str) -> None:
        if self._log:
            with self._log.open("a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {text}")

    async def poll(self) -> int | None:
        if self._socket and self._socket in _SERVERS:
            return None
        return self._code if self._code is not None else 0

    async def stop(self, now: bool = False) -> None:
        server = _SERVERS.pop(self._socket, None) if self._socket else None
        if server is not None:
            server.close()
            self._code = 0 if not now else -9
            Path(self._socket).unlink(missing_ok=True)

    def get_state(self) -> dict[str, Any]:
        return {"socket": self._socket, "headers": self._headers, "log": str(self._log or "")}

    def load_state(self, state: dict[str, Any]) -> None:
        self._socket, self._headers = state.get("socket"), state.get("headers") or {}
        self._log = Path(state["log"]) if state.get("log") else None
        self._events.add(100, "Re-attached", ready=True)

    def endpoint(self) -> Endpoint | None:
        return Endpoint(socket=self._socket, headers=self._headers) if self._socket else None

    def progress(self) -> AsyncIterator[ProgressEvent]:
        return self._events.follow()

    def logs(self, tail: int = 200) -> str:
        return tail_lines(self._log, tail)

    def limits(self) -> Limits:
        return Limits(
            sandboxed=False, cpu_enforced=False, memory_enforced=False, notes="fake runtime for tests"
        )
