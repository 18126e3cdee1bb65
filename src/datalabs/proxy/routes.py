"""`Route` (where one lab is served and what secret to inject), `MemoryRouteTable` and, for replicas,
`SharedRouteTable`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from anyio import to_thread

from datalabs.proxy.base import RouteChanges, RouteTable

# Lab ids become one URL segment; anything else is answered 404 without a table lookup.
LAB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_PORT_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$")
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Secrets shorter than this are not redacted from bodies: they would match ordinary text.
MIN_REDACTED_SECRET = 8


@dataclass(frozen=True)
class Route:
    """How to reach one lab.

    `socket` (a unix socket path) or `host_port` ("host:port", "[::1]:port"), exactly one of them.
    `headers` are the lab's own secret headers (e.g. `{"Authorization": "token <jupyter token>"}`): the
    proxy adds them to every request and WebSocket handshake it forwards, replacing whatever the browser
    sent under those names, and makes sure their values never reach the browser.
    """

    lab_id: str
    owner: str
    socket: str | None = None
    host_port: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    protocol: str = "http"  # "vnc": a desktop lab's RFB socket; the proxy serves noVNC for it (vnc.py)
    # The uid that must own the lab's socket and listen on it (None: not checked); see connect.py.
    uid: int | None = None
    secret: str = field(default="", repr=False)  # a desktop lab's VNC password (never sent to the browser)
    # A team-scoped lab (e.g. the team's MLflow tracking server): every member of this team may use it.
    team: str | None = None
    # A model-serving lab: the scope a token must grant to call it ("models:invoke"; labs:write is not
    # enough). Its requests are counted and timed on /metrics.
    invoke_scope: str | None = None

    def __post_init__(self) -> None:
        if not LAB_ID_RE.fullmatch(self.lab_id):
            raise ValueError(f"invalid lab id {self.lab_id!r}")
        if (self.socket is None) == (self.host_port is None):
            raise ValueError("a route needs exactly one of socket or host_port")
        if self.protocol not in ("http", "vnc"):
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if self.host_port is not None and not _HOST_PORT_RE.fullmatch(self.host_port):
            raise ValueError(f"host_port must be 'host:port', not {self.host_port!r}")
        for name, value in self.headers.items():
            # A CR/LF here would let a header value smuggle extra headers into the upstream request.
            if not _TOKEN_RE.fullmatch(name) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"invalid header {name!r}")

    @property
    def tcp_address(self) -> tuple[str, int]:
        """(host, port) of a host_port route."""
        match = _HOST_PORT_RE.fullmatch(self.host_port or "")
        if match is None:
            raise ValueError(f"route {self.lab_id} has no host_port")
        return match["v6"] or match["host"], int(match["port"])

    @property
    def target(self) -> tuple[str, str]:
        """What identifies the upstream for connection pooling: ("unix", path) or ("tcp", "host:port")."""
        return ("unix", self.socket) if self.socket is not None else ("tcp", self.host_port or "")

    @cached_property
    def injected(self) -> list[tuple[bytes, bytes]]:
        """The secret headers as ASGI-style (lowercase name, value) byte pairs."""
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]

    @cached_property
    def secrets(self) -> tuple[bytes, ...]:
        """Byte strings that must never reach the browser: each injected value, and its credential part
        without the scheme ("token abc" also yields "abc"), longest first so a longer match wins."""
        found: set[bytes] = set()
        for _, value in self.injected:
            for candidate in (value, value.partition(b" ")[2]):
                if len(candidate.strip()) >= MIN_REDACTED_SECRET:
                    found.add(candidate.strip())
        return tuple(sorted(found, key=len, reverse=True))


class MemoryRouteTable(RouteTable):
    """Routes in a dict, for one platform process (the default: `datalabs serve` runs API and proxy in
    one process). Every operation is a few dict operations and never yields to the event loop midway, so
    concurrent callers always see a consistent table."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self._routes: dict[str, Route] = dict(routes or {})

    async def add_route(self, route: Route) -> None:
        self._routes[route.lab_id] = route

    async def delete_route(self, lab_id: str) -> None:
        self._routes.pop(lab_id, None)

    async def get_route(self, lab_id: str) -> Route | None:
        return self._routes.get(lab_id)

    async def get_all_routes(self) -> dict[str, Route]:
        return dict(self._routes)

    async def reconcile(self, wanted: dict[str, Route]) -> RouteChanges:
        """Swap in `wanted` in one step (no request sees a half-reconciled table)."""
        for lab_id, route in wanted.items():
            if route.lab_id != lab_id:
                raise ValueError(f"route for '{route.lab_id}' filed under '{lab_id}'")
        old = self._routes
        changes = RouteChanges(
            added=sorted(wanted.keys() - old.keys()),
            removed=sorted(old.keys() - wanted.keys()),
            updated=sorted(k for k in wanted.keys() & old.keys() if wanted[k] != old[k]),
        )
        self._routes = dict(wanted)
        return changes

    def __len__(self) -> int:
        return len(self._routes)


class SharedRouteTable(MemoryRouteTable):
    """The routes of every replica's labs, for a proxy that shares its platform with other replicas: the
    table in memory, filled from the shared state (`load_all`, every `sync_interval` by `sync()`), and a
    lab not in it yet (launched through another replica a moment ago) looked up there on the first
    request (`load_one`). Loaders run in a worker thread; they read the database."""

    def __init__(
        self,
        load_all: Callable[[], dict[str, Route]],
        load_one: Callable[[str], Route | None],
    ) -> None:
        super().__init__()
        self._load_all, self._load_one = load_all, load_one

    async def get_route(self, lab_id: str) -> Route | None:
        route = self._routes.get(lab_id)
        if route is None:
            route = await to_thread.run_sync(self._load_one, lab_id)
            if route is not None:
                self._routes[lab_id] = route
        return route

    async def sync(self) -> RouteChanges:
        return await self.reconcile(await to_thread.run_sync(self._load_all))
