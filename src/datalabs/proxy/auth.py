"""Who is asking, and may they use this lab: the default authenticator and authorisation rule.

The authenticator reads the platform's credentials (the `datalabs_session` cookie or an
`Authorization: Bearer` token) exactly as the API does, but caches positive answers for a few seconds:
a JupyterLab page fires dozens of requests at once, and the proxy's hot path must not hit the database
for each. The price is that a revoked token or ended session keeps working through the proxy for up to
`ttl` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts import auth
from datalabs.accounts.scopes import grants
from datalabs.proxy.headers import get_header
from datalabs.proxy.routes import Route

SESSION_COOKIE = "datalabs_session"  # same names as datalabs.deps (not imported: keeps FastAPI out)
LAB_SCOPE = "labs:write"  # using a lab runs code as its owner, so a token needs the write scope
# Set in the ASGI scope of requests that come from inside a lab (its API socket, labs/api_socket.py):
# those reach team-scoped labs only, never another lab of their owner's.
FROM_LAB = "datalabs.from_lab"
TEAM_LAB_SCOPE = "tracking:write"  # enough for a team-scoped lab (a team's tracking server) only


class UserLike(Protocol):
    @property
    def name(self) -> str: ...


class PrincipalLike(Protocol):
    """What the proxy needs of a principal: `.user.name` (and optionally `.scopes`)."""

    @property
    def user(self) -> UserLike: ...


Authenticate = Callable[[dict], Awaitable[Any]]
Authorize = Callable[[Any, Route], bool]


def credential(scope: dict) -> tuple[str, str] | None:
    """("token", secret) from `Authorization: Bearer`, else ("session", value) from the session cookie,
    else None. Another Authorization scheme (a lab's page may send Jupyter's `token x`) is not ours: it
    is ignored here (and stripped before forwarding)."""
    header = get_header(scope, b"authorization")
    if header:
        scheme, _, secret = header.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            return "token", secret.strip()
    cookie = get_header(scope, b"cookie")
    if cookie and SESSION_COOKIE.encode() in cookie:
        for part in cookie.decode("latin-1").split(";"):
            name, _, value = part.partition("=")
            if name.strip() == SESSION_COOKIE and value.strip():
                return "session", value.strip().strip('"')
    return None


def owner_only(principal: Any, route: Route) -> bool:
    """The default rule: only the lab's owner may use it; administrators manage labs through the API but
    do not open them. A token must also grant `labs:write` (sessions grant everything)."""
    if principal.user.name != route.owner:
        return False
    scopes = getattr(principal, "scopes", None)
    return scopes is None or grants(frozenset(scopes), LAB_SCOPE)


def owner_or_team(principal: Any, route: Route) -> bool:
    """The platform's rule: a lab's owner may use it (`owner_only`); a team-scoped lab (`route.team`, e.g.
    the team's MLflow tracking server) also every member of that team, and with a token that grants either
    `labs:write` or `tracking:write` (the scope of the MLFLOW_TRACKING_TOKEN labs get: it opens the
    user's teams' team-scoped labs and none of their own labs); a model-serving lab (`route.invoke_scope`)
    with a token granting that scope (`models:invoke`) only. Administrators who are not members are
    refused, as for any lab."""
    if route.team is None:
        return owner_only(principal, route)
    groups = getattr(principal, "groups", frozenset())
    if principal.user.name != route.owner and route.team not in groups:
        return False
    scopes = getattr(principal, "scopes", None)
    if scopes is None:
        return True
    held = frozenset(scopes)
    if route.invoke_scope is not None:  # a served model: its scope alone opens it
        return grants(held, route.invoke_scope)
    return grants(held, LAB_SCOPE) or grants(held, TEAM_LAB_SCOPE)


class CachedAuthenticator:
    """`await authenticator(scope)` -> the platform Principal, or None for anonymous/invalid credentials.

    Database lookups run in a worker thread (SQLAlchemy is synchronous). Positive answers are cached for
    `ttl` seconds under the SHA-256 of the credential (the secret itself is never kept as a key);
    concurrent requests with the same uncached credential share one lookup. Negative answers are not
    cached, so logging in takes effect at once.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ttl: float = 5.0,
        max_entries: int = 10_000,
        share_ttl: float = 1.0,
        bearer_jwt: Callable[[Session, str], Any] | None = None,
    ) -> None:
        self._sessions = sessions
        self._bearer_jwt = bearer_jwt  # a sign-in provider's access tokens (accounts/oidc_tokens.py)
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[bytes, tuple[float, Any]] = {}
        self._inflight: dict[bytes, asyncio.Task[Any]] = {}
        self.share_ttl = share_ttl
        self._shares: dict[tuple[str, str, frozenset[str]], tuple[float, str | None]] = {}
        self._share_locks: dict[tuple[str, str, frozenset[str]], asyncio.Lock] = {}

    async def __call__(self, scope: dict) -> Any:
        found = credential(scope)
        if found is None:
            return None
        return await self.lookup(*found)

    async def lookup(self, kind: str, secret: str) -> Any:
        """The principal for one credential: "token" (a bearer token), "session" (the session cookie's
        value) or "session_id" (a session by its stored id, as a lab cookie names it)."""
        key = hashlib.sha256(f"{kind}:{secret}".encode()).digest()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, kind, secret))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        # shield: one impatient request being cancelled must not cancel the lookup the others await
        return await asyncio.shield(task)

    def forget_all(self) -> None:
        """Drop every cached answer (e.g. after a mass revocation)."""
        self._cache.clear()
        self._shares.clear()

    async def share_mode(self, principal: Any, route: Route) -> str | None:
        """The mode ("view" | "collaborate") in which a share opens `route`'s lab to `principal`, who is
        neither its owner nor (for a team lab) a member: the proxy asks only then, so owners never pay
        for it. None: no share, or a token without `labs:write` (a guest runs code in the owner's lab).

        Answers, "no share" included, are cached for `share_ttl` seconds (1 s: a revoke or a new share
        takes effect within that, on every replica, as they share the database), one lookup at a time
        per (lab, user)."""
        scopes = getattr(principal, "scopes", None)
        if scopes is not None and not grants(frozenset(scopes), LAB_SCOPE):
            return None
        user, groups = principal.user.name, frozenset(getattr(principal, "groups", frozenset()))
        key = (route.lab_id, user, groups)
        hit = self._shares.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        lock = self._share_locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._shares.get(key)
            if hit is None or hit[0] <= time.monotonic():
                mode = await anyio.to_thread.run_sync(self._share_lookup, route.lab_id, user, groups)
                if len(self._shares) >= self.max_entries:
                    self._shares.clear()  # rare, and cheap to refill: one query per guest and lab
                hit = self._shares[key] = (time.monotonic() + self.share_ttl, mode)
        self._share_locks.pop(key, None)
        return hit[1]

    def _share_lookup(self, lab_id: str, user: str, groups: frozenset[str]) -> str | None:
        from datalabs.labs import shares  # late: the proxy's own tests run without the platform's models

        with self._sessions() as db:
            return shares.mode_for(db, lab_id, user, groups)

    async def _load(self, key: bytes, kind: str, secret: str) -> Any:
        principal = await anyio.to_thread.run_sync(self._lookup, kind, secret)
        if principal is not None and self.ttl > 0:
            if len(self._cache) >= self.max_entries:
                self._prune()
            self._cache.pop(key, None)  # re-insert at the end: dict order is our age order
            self._cache[key] = (time.monotonic() + self.ttl, principal)
        return principal

    def _lookup(self, kind: str, secret: str) -> Any:
        with self._sessions() as db:
            if kind == "token":
                if self._bearer_jwt is not None and not secret.startswith(auth.TOKEN_PREFIX):
                    return self._bearer_jwt(db, secret)
                return auth.principal_from_token(db, secret)
            if kind == "session_id":
                return auth.principal_from_session_id(db, secret)
            return auth.principal_from_session(db, secret)

    def _done(self, key: bytes, task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited any more is not logged twice

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        while len(self._cache) >= self.max_entries:
            del self._cache[next(iter(self._cache))]


def make_authenticator(
    sessions: sessionmaker[Session], ttl: float = 5.0, bearer_jwt: Callable[[Session, str], Any] | None = None
) -> CachedAuthenticator:
    """The platform's authenticator for the proxy, over the app's session factory (app.state.sessions);
    `bearer_jwt` also accepts a sign-in provider's access tokens."""
    return CachedAuthenticator(sessions, ttl=ttl, bearer_jwt=bearer_jwt)
