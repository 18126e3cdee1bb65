"""Endpoint "port" of Slurm labs, the platform's side: the job's token, the callback it is expected to make,
and reaching the lab at the node's address.

A cluster whose nodes share no folder with the platform cannot hand over the lab's unix socket. Then the
job binds a TCP port on its node (port 0: the kernel picks a free one, so labs on one node never collide,
unlike batchspawner's random ports, batchspawner #58/#102) and POSTs `{"port": N}` to
`<platform>/api/v1/labs/<lab id>/callback` with `Authorization: Bearer <token>` (slurm_forward.py).

What the platform takes from that request is the port (within the cluster's `port_range`, if it has one)
and nothing else: the host is the node Slurm runs the job on (squeue's BatchHost), resolved here, so
neither the job nor anyone who got its token can send the proxy to an address of their choosing (Open
OnDemand proxies to any host:port a user names). The lab is then called ready only once it answers there
as itself: HTTP with its secret headers, or a desktop's RFB banner; the address that answered is the one
the proxy is given.

A token is made for one start of one lab (`new_token`), travels to the job only in the spec file (0600),
is bound to the lab id and to the Slurm job the platform follows, is compared in constant time, and is
spent by the first port accepted. Only its SHA-256 digest is kept (here and in the runtime's saved state),
so a restarted platform still expects the token it never stored.

`CALLBACKS` lives in the process that follows the start (the lab manager's). A report that reaches
another replica is checked there against the start's saved digest and handed over through the database
(labs/port_reports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import socket
import threading
from dataclasses import dataclass

import httpx

from datalabs.runtimes.base import Endpoint

CALLBACK_PATH = "/api/v1/labs/{lab_id}/callback"
PROBE_TIMEOUT = 5.0
_NO_DIGEST = hashlib.sha256(b"").digest()  # compared against when nothing is expected: same work either way


class CallbackRefused(Exception):
    """A port report the platform does not take: `status` and `code` for the API's error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_token() -> tuple[str, str]:
    """A fresh callback token and the hex digest the platform keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class _Expected:
    digest: bytes
    job_id: str | None = None
    port: int | None = None
    ports: tuple[int, int] | None = None  # the cluster's port range, if it has one


class PortCallbacks:
    """The callbacks this process expects, by lab id: at most one per lab (a new start replaces the last).
    Thread-safe: the API may answer in a worker thread while the runtime polls on the event loop."""

    def __init__(self) -> None:
        self._expected: dict[str, _Expected] = {}
        self._lock = threading.Lock()

    def expect(
        self,
        lab_id: str,
        token_digest: str,
        job_id: str | None = None,
        port: int | None = None,
        ports: tuple[int, int] | None = None,
    ) -> None:
        """Expect a report for `lab_id` with the token of `token_digest` (of a port within `ports`)."""
        with self._lock:
            self._expected[lab_id] = _Expected(bytes.fromhex(token_digest), job_id, port, ports)

    def bind_job(self, lab_id: str, token_digest: str, job_id: str) -> None:
        """The Slurm job that start submitted: only a port reported for it is ever handed out."""
        with self._lock:
            if (found := self._get(lab_id, token_digest)) is not None:
                found.job_id = job_id

    def check(self, lab_id: str, token: str) -> None:
        """CallbackRefused (403) unless `token` is the one expected for `lab_id` (constant time)."""
        with self._lock:
            self._matching(lab_id, token)

    def accept(self, lab_id: str, token: str, port: int) -> None:
        """Take `port` for the lab's current start; spends the token. CallbackRefused: wrong token (403),
        a port outside the cluster's range (422), or a port already taken for this start (409)."""
        with self._lock:
            expected = self._matching(lab_id, token)
            if expected.port is not None:
                raise CallbackRefused(409, "conflict", "this start of the lab has reported its port already")
            if expected.ports and not expected.ports[0] <= port <= expected.ports[1]:
                low, high = expected.ports
                raise CallbackRefused(
                    422, "invalid", f"port {port} is outside the cluster's ports {low}-{high}"
                )
            expected.port = port

    def expects(self, lab_id: str) -> bool:
        """Whether this process follows a start of `lab_id` that may report a port."""
        with self._lock:
            return lab_id in self._expected

    def take_reported(self, lab_id: str, token_digest: str, job_id: str, port: int) -> bool:
        """A port the job of this start reported to another replica, which checked its token there
        (labs/port_reports.py): taken as `accept` would, if it is still this start's and none was taken."""
        with self._lock:
            found = self._get(lab_id, token_digest)
            if found is None or found.job_id != job_id or found.port is not None:
                return False
            if found.ports and not found.ports[0] <= port <= found.ports[1]:
                return False
            found.port = port
            return True

    def port(self, lab_id: str, token_digest: str, job_id: str) -> int | None:
        """The port reported by the job `job_id` of this start, None while none was."""
        with self._lock:
            found = self._get(lab_id, token_digest)
            return found.port if found is not None and found.job_id == job_id else None

    def discard(self, lab_id: str, token_digest: str) -> None:
        """The start ended (ready or failed): its token is worth nothing from now on."""
        with self._lock:
            if self._get(lab_id, token_digest) is not None:
                del self._expected[lab_id]

    def _get(self, lab_id: str, token_digest: str) -> _Expected | None:
        found = self._expected.get(lab_id)
        return found if found is not None and found.digest == bytes.fromhex(token_digest) else None

    def _matching(self, lab_id: str, token: str) -> _Expected:
        expected = self._expected.get(lab_id)
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        if not hmac.compare_digest(expected.digest if expected else _NO_DIGEST, presented) or not expected:
            raise CallbackRefused(403, "forbidden", "not a valid callback token for this lab")
        return expected


CALLBACKS = PortCallbacks()


def accept_port(lab_id: str, token: str, port: int) -> None:
    """The API's one call (POST /api/v1/labs/{id}/callback): take the port a lab's job reported."""
    CALLBACKS.accept(lab_id, token, port)


# ---- reaching the lab at the node's address ------------------------------------------------------------


async def reach(host: str, port: int, endpoint: Endpoint, ready_path: str) -> str | None:
    """The "address:port" of the first address of `host` (Slurm's name of the node) where the lab answers as
    itself, None while none does."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    addresses = dict.fromkeys(str(info[4][0]) for info in infos)  # in the resolver's order, once each
    for address in addresses:
        if "%" in address:  # a scoped IPv6 address: no route for the proxy to name
            continue
        host_port = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        if await _answers(address, port, host_port, endpoint, ready_path):
            return host_port
    return None


async def _answers(address: str, port: int, host_port: str, endpoint: Endpoint, ready_path: str) -> bool:
    if endpoint.protocol == "vnc":
        return await _rfb_banner(address, port)
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as client:
            response = await client.get(f"http://{host_port}{ready_path}", headers=endpoint.headers)
    except httpx.HTTPError:
        return False
    # 401/403: whatever answers there refused the lab's own secret: not (yet) the lab.
    return response.status_code < 500 and response.status_code not in (401, 403)


async def _rfb_banner(address: str, port: int) -> bool:
    """A desktop answers with the RFB protocol banner ("RFB 003.008\\n") before it reads anything."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), PROBE_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    try:
        banner = await asyncio.wait_for(reader.readexactly(12), PROBE_TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return banner.startswith(b"RFB ")
