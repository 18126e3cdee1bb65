"""Endpoint "port" of Slurm labs, the node's side (run by slurm_job.py once the lab answers on its socket).

`PortForward` listens on the node's address, port 0 (the kernel picks a port no other listener holds,
so twenty labs on one node get twenty ports without anyone choosing), and copies each connection to and
from the lab's unix socket. The lab's socket is opened as the proxy opens it (proxy/connect.py): never
through a link the lab put in its place, and only when the lab's own uid listens there, because this
process is root and the lab can write the folder the socket is in. Connections are bounded in number,
each read is bounded in size and every write waits for the other side to drain, so a client cannot make
the job hold more than MAX_CONNECTIONS x 2 x CHUNK bytes.

`report_port` then tells the platform the port (slurm_port.py says what the platform does with it):
`{"port": N}` and the job's token, nothing else; it retries while the platform cannot be reached (it may
be restarting) until the lab's start timeout, and gives up at once when the platform refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
import time

import httpx

from datalabs.runtimes import desktop
from datalabs.runtimes.base import LabSpec
from datalabs.runtimes.local import SOCKET_NAME
from datalabs.runtimes.slurm_port import CALLBACK_PATH
from datalabs.sandbox.bwrap import NOBODY

MAX_CONNECTIONS = 256
CHUNK = 64 * 1024
HALF_CLOSED_GRACE = 30.0  # seconds one direction may go on after the other ended, before both close
REPORT_TIMEOUT = 10.0


class ReportFailed(RuntimeError):
    """The platform did not take the lab's port; the message says why."""


def lab_socket(spec: LabSpec) -> tuple[str, int | None]:
    """The lab's unix socket on the node and the uid that must listen on it (None: not root, unchecked)."""
    name = desktop.VNC_SOCKET if spec.kind == "desktop" else SOCKET_NAME
    uid = (spec.policy.identity or NOBODY).uid if os.geteuid() == 0 else None
    return str(spec.runtime_dir / name), uid


def node_address() -> str:
    """The address of this node as Slurm names it (SLURMD_NODENAME; the platform resolves the same name
    from squeue's BatchHost), by this node's resolver."""
    name = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    return str(socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)[0][4][0])


class PortForward:
    def __init__(self, target: str, uid: int | None) -> None:
        self.target, self.uid = target, uid
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self, host: str, ports: tuple[int, int] | None = None) -> int:
        """Listen on `host`, on a port the kernel picks or the first free one of `ports` (a bind is atomic:
        two jobs never get the same); that port. OSError if none is free."""
        if ports is None:
            candidates = [0]
        else:
            candidates = list(range(ports[0], ports[1] + 1))
            random.shuffle(candidates)  # jobs starting together do not all try the same port first
        for port in candidates:
            try:
                self._server = await asyncio.start_server(self._serve, host=host, port=port, limit=CHUNK)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or port == 0:
                    raise
                continue
            return int(self._server.sockets[0].getsockname()[1])
        raise OSError(errno.EADDRINUSE, f"no free port in {ports[0]}-{ports[1]} on this node")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            client_writer.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            lab_reader, lab_writer = await self._open_lab()
        except (OSError, TimeoutError):
            self._connections.discard(task)
            client_writer.close()
            return
        try:
            await _copy_both_ways(client_reader, client_writer, lab_reader, lab_writer)
        finally:
            self._connections.discard(task)
            for writer in (client_writer, lab_writer):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _open_lab(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from datalabs.proxy.connect import open_lab_socket  # the proxy's own checks of a lab's socket

        sock = await asyncio.wait_for(open_lab_socket(self.target, self.uid), REPORT_TIMEOUT)
        return await asyncio.open_unix_connection(sock=sock, limit=CHUNK)


async def _copy_both_ways(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy until both directions ended; one that breaks (reset) ends the other at once."""
    ways = {
        asyncio.ensure_future(_copy(a_reader, b_writer)),
        asyncio.ensure_future(_copy(b_reader, a_writer)),
    }
    try:
        done, pending = await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
        if pending and all(task.exception() is None for task in done):  # a clean half-close
            done, pending = await asyncio.wait(pending, timeout=HALF_CLOSED_GRACE)
    finally:
        for task in ways:
            task.cancel()
        await asyncio.gather(*ways, return_exceptions=True)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()  # the other side learns that this one is done sending; it may still answer


async def report_port(spec: LabSpec, port: int, deadline: float) -> None:
    """POST the port to the platform with the job's token; ReportFailed if it refuses, or if it cannot be
    reached before `deadline` (time.monotonic())."""
    url = spec.platform_url.rstrip("/") + CALLBACK_PATH.format(lab_id=spec.lab_id)
    headers = {"Authorization": f"Bearer {spec.callback_token}"}
    delay = 0.1
    # trust_env=False: the token goes to the platform itself, never through a proxy named in the environment.
    async with httpx.AsyncClient(timeout=REPORT_TIMEOUT, trust_env=False) as client:
        while True:
            try:
                response = await client.post(url, json={"port": port}, headers=headers)
            except httpx.HTTPError as exc:
                why = str(exc) or exc.__class__.__name__
            else:
                if response.is_success:
                    return
                if response.status_code < 500 and response.status_code != 429:
                    raise ReportFailed(f"the platform refused the lab's port: {_error_of(response)}")
                why = f"HTTP {response.status_code}"
            if time.monotonic() + delay > deadline:
                raise ReportFailed(f"could not tell the platform at {url} the lab's port: {why}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
