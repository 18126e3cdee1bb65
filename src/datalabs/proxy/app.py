"""`LabProxy`: the ASGI app in front of the labs, answering `/datalabs/{id}/...` (HTTP and WebSocket).

Every request goes: admit (authenticate, find the route, authorise; anonymous -> 401 or a redirect to
the login page for browsers before any lookup, so nobody anonymous learns which labs exist; an unknown
lab, or another user's lab not shared with the caller -> 404, administrators included; a share's guest
-> forwarded in the share's mode) -> rewrite headers -> stream through the lab's keep-alive pool ->
rewrite the response headers (and mask the lab's secret in text bodies) -> stream back.

With an `OriginGate` (gate.py; the platform's default) every lab is served on an origin of its own and
entered with a lab cookie; without one (`labs.unsafe_platform_origin`, and the proxy's own tests) labs
are served under the platform's origin with the platform's credentials, as before.

Mounting: the path is used as received (the lab runs with base_url `/datalabs/{id}/`), so mount the
proxy where `scope["path"]` is the full path: in front of the platform app by prefix (fastest) or as a
Starlette `Mount("/datalabs", proxy)`. A mounted app gets no lifespan events: the platform calls
`proxy.close()` at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from datalabs.proxy import model_metrics, novnc
from datalabs.proxy.auth import FROM_LAB, Authenticate, Authorize, owner_or_team
from datalabs.proxy.base import RouteTable
from datalabs.proxy.gate import Identified, OriginGate, Redirect
from datalabs.proxy.guests import SCOPE_GUEST, GuestConnections
from datalabs.proxy.headers import SCOPE_SHARE, SCOPE_USER, get_header, request_headers, response_headers
from datalabs.proxy.http1 import Aborted, Response, UpstreamError, UpstreamTimeout
from datalabs.proxy.pool import PoolOptions, UpstreamPool
from datalabs.proxy.redact import Redactor, wants_redaction
from datalabs.proxy.refusals import (
    AUTH_UNAVAILABLE,
    NOT_A_LAB_PATH,
    NOT_AUTHENTICATED,
    Refusal,
    forbidden,
    not_found,
    timed_out,
    unreachable,
)
from datalabs.proxy.routes import LAB_ID_RE, Route
from datalabs.proxy.websocket import WebSocketOptions, serve_websocket

log = logging.getLogger("datalabs.proxy")
_SWEEP_EVERY = 10.0  # seconds between passes that close expired idle connections
_POOL_UNUSED = 60.0  # a lab's pool unused this long (and empty) is dropped


class ClientGone(Exception):
    """The browser disconnected while we were reading its request body."""


class LabProxy:
    """ASGI app. `authenticate(scope)` returns a principal (anything with `.user.name`) or None;
    `authorize(principal, route)` says whether that principal may use the lab (default: its owner, and
    for a team-scoped lab its team's members);
    `on_activity(lab_id)` is called on every admitted request and (at most once a second per connection)
    on WebSocket traffic, from the event loop, so it must be cheap and must not block.

    One instance serves one event loop (its pooled connections belong to that loop)."""

    def __init__(
        self,
        routes: RouteTable,
        authenticate: Authenticate,
        authorize: Authorize = owner_or_team,
        on_activity: Callable[[str], None] | None = None,
        *,
        prefix: str = "/datalabs/",
        login_url: str = "/login",
        pool_options: PoolOptions | None = None,
        websocket_options: WebSocketOptions | None = None,
        gate: OriginGate | None = None,
    ) -> None:
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError("prefix must start and end with '/'")
        self.routes = routes
        self.authenticate = authenticate
        self.authorize = authorize
        self.on_activity = on_activity
        self.prefix = prefix
        self.login_url = login_url
        self.pool_options = pool_options or PoolOptions()
        self.websocket_options = websocket_options or WebSocketOptions()
        self.gate = gate
        self._pools: dict[str, UpstreamPool] = {}
        self.guests = GuestConnections(self._share_mode)  # share guests' open WebSockets (guests.py)
        self._next_sweep = 0.0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await serve_websocket(self, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def in_front_of(self, app: Callable) -> Callable:
        """An ASGI app serving paths under `prefix` with this proxy and everything else (lifespan
        included) with `app`, the platform. One string test per request: cheaper than routing through
        the platform's middleware and router. The platform's lifespan must call `proxy.close()`."""

        async def dispatch(scope: dict, receive: Callable, send: Callable) -> None:
            if self.claims(scope):
                await self(scope, receive, send)
            else:
                await app(scope, receive, send)

        return dispatch

    # -- shared by HTTP and WebSocket ------------------------------------------------------------------

    def claims(self, scope: dict) -> bool:
        """Whether this request is the proxy's: a lab path, or anything sent to a lab's origin (which
        serves nothing of the platform)."""
        if scope["type"] == "lifespan":
            return False
        if scope["path"].startswith(self.prefix):
            return True
        return self.gate is not None and self.gate.lab_host(scope) is not None

    def lab_id(self, scope: dict) -> str | None:
        """The lab id in the path, or None if the path is not a lab path."""
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            return None
        lab_id = path[len(self.prefix) :].partition("/")[0]
        return lab_id if LAB_ID_RE.fullmatch(lab_id) else None

    async def admit(self, scope: dict) -> Route | Refusal | Redirect:
        """The route to forward this request to, or why not (or, with a gate, where the browser must go
        first; never for a WebSocket). Authenticates before looking up the lab, so an anonymous caller
        learns nothing about which labs exist."""
        try:
            found = await self._identify(scope)
        except Exception:
            log.exception("authentication failed for a request to %s", scope["path"])
            return AUTH_UNAVAILABLE
        if not isinstance(found, Identified):
            if isinstance(found, Redirect) and scope["type"] != "http":
                return NOT_AUTHENTICATED
            return found
        lab_id = found.lab_id
        route = await self.routes.get_route(lab_id)
        if route is None:
            return not_found(lab_id)
        name = found.principal.user.name
        share = None
        if not self.authorize(found.principal, route):
            # A share's guest (labs/shares.py), asked only of those the rule refused: owners never wait.
            # Anyone else learns nothing of the lab (404, as for none); its owner or a member of its team
            # with a token too narrow for it is told so (403).
            knows = name == route.owner or route.team in getattr(found.principal, "groups", frozenset())
            if knows or route.team is not None:
                return forbidden(lab_id) if knows else not_found(lab_id)
            share = await self._share_mode(found.principal, route)
            if share is None:
                return not_found(lab_id)
            scope[SCOPE_GUEST] = found.principal
        if scope.get(FROM_LAB) and route.team is None:
            return forbidden(lab_id)  # from inside a lab (its API socket): team-scoped labs only
        # Forwarded to the lab as X-Datalabs-User / X-Datalabs-Share (headers.request_headers); a member
        # of a team-scoped lab's team uses it fully, like its owner does; a guest in the share's mode.
        scope[SCOPE_USER] = name
        scope[SCOPE_SHARE] = share or ("owner" if name == route.owner else "collaborate")
        if found.enter and self.gate is not None and scope["type"] == "http":
            try:
                guest = (share, route.owner) if share is not None else None  # audited: one entry, one record
                return await self.gate.enter(scope, found.principal, lab_id, guest)
            except Exception:
                log.exception("could not issue a way into lab %s", lab_id)
                return AUTH_UNAVAILABLE
        if found.renew:
            scope["datalabs.set_cookie"] = found.renew.encode("latin-1")  # sent with the lab's response
        if self.on_activity is not None:
            self.on_activity(lab_id)
        return route

    async def _share_mode(self, principal: Any, route: Route) -> str | None:
        share_mode = getattr(self.authenticate, "share_mode", None)
        return None if share_mode is None else await share_mode(principal, route)

    async def _identify(self, scope: dict) -> Identified | Refusal | Redirect:
        if self.gate is not None:
            return await self.gate.identify(scope)
        lab_id = self.lab_id(scope)
        if lab_id is None:
            return NOT_A_LAB_PATH
        principal = await self.authenticate(scope)
        return NOT_AUTHENTICATED if principal is None else Identified(lab_id, principal)

    def pool(self, route: Route) -> UpstreamPool:
        """The keep-alive pool for the route's lab, replaced when the lab moved to another socket."""
        now = time.monotonic()
        if now >= self._next_sweep:  # first: the sweep may drop this very pool if it was long unused
            self._next_sweep = now + _SWEEP_EVERY
            self._sweep(now)
        pool = self._pools.get(route.lab_id)
        if pool is None or pool.target != route.target:
            if pool is not None:
                pool.close()
            pool = self._pools[route.lab_id] = UpstreamPool(route, self.pool_options)
        return pool

    def forget(self, lab_id: str) -> None:
        """Close the lab's pooled connections (the runtime calls this when a lab stops)."""
        if (pool := self._pools.pop(lab_id, None)) is not None:
            pool.close()

    def close(self) -> None:
        """Close every pooled connection (platform shutdown)."""
        for lab_id in list(self._pools):
            self.forget(lab_id)

    def _sweep(self, now: float) -> None:
        for lab_id, pool in list(self._pools.items()):
            pool.sweep()
            if pool.connections == 0 and now - pool.last_used > _POOL_UNUSED:
                self.forget(lab_id)

    # -- HTTP ------------------------------------------------------------------------------------------

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        admitted = await self.admit(scope)
        if isinstance(admitted, Redirect):
            await _send_redirect(send, admitted)
            return
        if isinstance(admitted, Refusal):
            await self._refuse(scope, send, admitted)
            return
        route = admitted
        if route.invoke_scope is not None:  # a served model: counted and timed (/metrics)
            send = model_metrics.observing(send, route.lab_id)
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        target: bytes = scope.get("raw_path") or quote(path).encode()
        if path == self.prefix + route.lab_id:  # the lab's pages are relative to its base URL with '/'
            location = target + b"/" + (b"?" + query if query else b"")
            await _send_simple(send, 307, b"", [(b"location", location)])
            return
        if route.protocol == "vnc":  # a desktop lab speaks RFB only: we serve its noVNC page ourselves
            await novnc.serve(scope, send, route, _send_error)
            return
        headers, framing = request_headers(scope, route)
        if query:
            target += b"?" + query
        body = _request_body(receive) if framing else None
        pool = self.pool(route)
        try:
            response = await pool.request(scope["method"], target, headers, body, framing == "chunked")
        except ClientGone:
            return
        except UpstreamTimeout:
            await _send_error(send, timed_out(route.lab_id))
            return
        except UpstreamError as exc:
            await _send_error(send, unreachable(route.lab_id, exc))
            return
        await self._relay(scope, receive, send, route, pool, response)

    async def _relay(
        self,
        scope: dict,
        receive: Callable,
        send: Callable,
        route: Route,
        pool: UpstreamPool,
        response: Response,
    ) -> None:
        """Stream the lab's response to the browser; the connection goes back to the pool at the end."""
        prefix = f"{self.prefix}{route.lab_id}/".encode()
        headers = response_headers(response.headers, route, get_header(scope, b"host"), prefix)
        if renewed := scope.get("datalabs.set_cookie"):
            headers.append((b"set-cookie", renewed))
        redactor = Redactor(route.secrets) if route.secrets and wants_redaction(response.headers) else None
        watcher: asyncio.Future[None] | None = None
        try:
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            while True:
                chunk = await response.read()
                more = not response.at_eof
                if redactor is not None:
                    chunk = redactor.feed(chunk, final=not more)
                if more and watcher is None:
                    # A long body: watch for the browser leaving, or we would pump the lab into the void.
                    watcher = asyncio.ensure_future(_watch_disconnect(receive, response))
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        except Aborted:
            pass
        except UpstreamError as exc:
            log.warning("lab %s broke off a response to %s: %s", route.lab_id, scope["path"], exc)
        finally:
            if watcher is not None:
                watcher.cancel()
            pool.release(response)

    async def _refuse(self, scope: dict, send: Callable, refusal: Refusal) -> None:
        accept = get_header(scope, b"accept") or b""
        # On a lab's origin there is no login page: the gate has sent page loads to the platform already.
        on_lab_origin = self.gate is not None and self.gate.lab_host(scope) is not None
        if (
            refusal.status == 401
            and scope["method"] in ("GET", "HEAD")
            and b"text/html" in accept
            and not on_lab_origin
        ):
            query = scope.get("query_string", b"").decode("latin-1")
            next_url = scope["path"] + ("?" + query if query else "")
            location = f"{self.login_url}?next={quote(next_url, safe='/')}"
            await _send_simple(send, 303, b"", [(b"location", location.encode("latin-1"))])
            return
        if scope["method"] in ("GET", "HEAD") and b"text/html" in accept:
            # A page load (say, an administrator opening another user's lab): a page, not JSON.
            back = (self.gate.platform_url if on_lab_origin else "") + "/labs"
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
            await _send_simple(send, refusal.status, refusal.page(back), headers)
            return
        await _send_error(send, refusal)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_error(send: Callable, refusal: Refusal) -> None:
    extra = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), *extra]
    await _send_simple(send, refusal.status, refusal.body(), headers)


async def _send_redirect(send: Callable, redirect: Redirect) -> None:
    # The code in a Location must not travel further (Referer) or be kept (caches).
    headers = [
        (b"location", redirect.location.encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if redirect.cookie:
        headers.append((b"set-cookie", redirect.cookie.encode("latin-1")))
    await _send_simple(send, 303, b"", headers)


async def _send_simple(send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _request_body(receive: Callable) -> AsyncIterator[bytes]:
    while True:
        message: dict[str, Any] = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        if body := message.get("body"):
            yield body
        if not message.get("more_body"):
            return


async def _watch_disconnect(receive: Callable, response: Response) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not response.at_eof:
                response.conn.abort()
            return
