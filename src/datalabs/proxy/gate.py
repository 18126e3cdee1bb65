"""Lab origins at the proxy: every lab on an origin of its own, entered with a lab cookie.

On the **platform's origin**, `/datalabs/{id}/...`:
- with `Authorization: Bearer <token>` (API clients, the CLI): proxied as always — a token is not
  something a browser sends by itself, so no page of any origin can borrow it;
- with the platform session (a browser): a page load (GET/HEAD) is redirected to the lab's origin with a
  one-time code (accounts/lab_login.py); anything else is refused (403 `lab_origin`). The session cookie
  is never forwarded to a lab.

On a **lab's origin** (`labs.origin_url`, e.g. `http://<id>.lab.localhost:8000`):
- `/_datalabs/login?code=...&next=...` redeems the code for the lab cookie and goes on to `next`;
- only that lab's own paths are served (no platform API or pages there: 404);
- requests that change state (anything but GET/HEAD) and WebSocket upgrades are refused when their
  `Origin` (or, without one, `Sec-Fetch-Site`) shows another origin: labs of one user are same-site,
  and the proxy adds the lab's own secret to what it forwards, so any cross-lab request would
  otherwise arrive authenticated;
- the lab cookie (or a bearer token) is the only credential; the platform session is ignored there;
- a page load without a valid cookie goes back to the platform's origin, which sends it on with a code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from datalabs import audit
from datalabs.accounts import lab_login
from datalabs.config import Settings
from datalabs.origins import LabOrigins
from datalabs.proxy.auth import credential
from datalabs.proxy.headers import get_header
from datalabs.proxy.refusals import NOT_A_LAB_PATH, NOT_AUTHENTICATED, Refusal
from datalabs.proxy.routes import LAB_ID_RE

LOGIN_PATH = "/_datalabs/login"
GUEST_OPEN = "GET /datalabs/{lab_id} (share guest)"  # the audit record of a guest's entry into a lab
COOKIE = "datalabs_lab"
SECURE_COOKIE = "__Host-datalabs_lab"  # on https: no sibling lab can shadow it with a Domain cookie
_SAFE = ("GET", "HEAD")

CROSS_ORIGIN = Refusal(
    403, "cross_origin", "refused: this request to the lab came from another origin (another lab or site)"
)
BAD_CODE = Refusal(
    400,
    "lab_code_invalid",
    "this way into the lab is invalid, used or expired: open the lab from the platform",
)

Lookup = Callable[[str, str], Awaitable[Any]]  # (credential kind, secret) -> principal or None


def wrong_origin(url: str) -> Refusal:
    return Refusal(403, "lab_origin", f"labs are served on their own origin: open {url}")


@dataclass(frozen=True)
class Redirect:
    """Answer with a redirect (303); `cookie`: a Set-Cookie header value to send with it."""

    location: str
    cookie: str = ""


@dataclass(frozen=True)
class Identified:
    """Who asks for which lab. `enter`: a browser on the platform's origin, to be sent to the lab's;
    `renew`: a Set-Cookie value renewing the lab cookie, for the response."""

    lab_id: str
    principal: Any
    enter: bool = False
    renew: str = ""


class OriginGate:
    """The policy above, for one LabProxy. `lookup(kind, secret)`: the proxy's cached authenticator
    ("token", "session" or "session_id"); `sessions`: the DB, for the one-time codes; `platform_url`:
    where a lab's origin sends browsers that have no lab cookie (server.public_url)."""

    def __init__(
        self,
        origins: LabOrigins,
        lookup: Lookup,
        settings: Settings,
        sessions: sessionmaker[Session],
        platform_url: str,
        prefix: str = "/datalabs/",
    ) -> None:
        self.origins, self.lookup, self.settings, self.sessions = origins, lookup, settings, sessions
        self.platform_url = platform_url.rstrip("/")
        self.prefix = prefix
        self.cookie_name = SECURE_COOKIE if origins.secure else COOKIE

    def lab_host(self, scope: dict) -> str | None:
        """The lab whose origin this request was sent to, or None (the platform's)."""
        return self.origins.lab_of(get_header(scope, b"host"))

    async def identify(self, scope: dict) -> Identified | Refusal | Redirect:
        lab = self.lab_host(scope)
        if lab is None:
            return await self._on_platform(scope)
        return await self._on_lab_origin(scope, lab)

    async def enter(
        self, scope: dict, principal: Any, lab_id: str, guest: tuple[str, str] | None = None
    ) -> Redirect:
        """The redirect that takes a logged-in browser onto the lab's origin, with a one-time code.
        `guest`: (share mode, owner) when a share's guest enters; that entry is recorded in the audit log
        (once per entry, here where a code is written anyway, never per request to the lab)."""
        client = scope.get("client")
        code = await anyio.to_thread.run_sync(
            self._issue, principal, lab_id, guest, client[0] if client else None
        )
        target = _target(scope)
        location = f"{self.origins.origin(lab_id)}{LOGIN_PATH}?code={code}&next={quote(target, safe='')}"
        return Redirect(location)

    # -- the platform's origin -------------------------------------------------------------------------

    async def _on_platform(self, scope: dict) -> Identified | Refusal:
        lab_id = self._lab_in_path(scope["path"])
        if lab_id is None:
            return NOT_A_LAB_PATH
        found = credential(scope)
        if found is None:
            return NOT_AUTHENTICATED
        kind, secret = found
        principal = await self.lookup(kind, secret)
        if principal is None:
            return NOT_AUTHENTICATED
        if kind == "token":
            return Identified(lab_id, principal)
        if scope["type"] == "http" and scope["method"] in _SAFE:
            return Identified(lab_id, principal, enter=True)
        return wrong_origin(self.origins.url(lab_id))

    # -- a lab's origin --------------------------------------------------------------------------------

    async def _on_lab_origin(self, scope: dict, lab: str) -> Identified | Refusal | Redirect:
        path: str = scope["path"]
        if path == LOGIN_PATH and scope["type"] == "http":
            return await self._redeem(scope, lab)
        if self._lab_in_path(path) != lab:
            return NOT_A_LAB_PATH  # the platform and other labs are not served here
        if (scope["type"] == "websocket" or scope["method"] not in _SAFE) and self._cross_origin(scope, lab):
            return CROSS_ORIGIN
        found = credential(scope)
        if found is not None and found[0] == "token":  # the platform session is not a credential here
            principal = await self.lookup("token", found[1])
            return Identified(lab, principal) if principal is not None else NOT_AUTHENTICATED
        for value in _cookie_values(scope, self.cookie_name):
            cookie = lab_login.read_lab_cookie(self.settings, lab, value)
            if cookie is None:
                continue  # e.g. one a sibling lab planted with Domain=: worthless here, try the next
            principal = await self.lookup("session_id", cookie.session_id)
            if principal is not None:
                return Identified(lab, principal, renew=self._renewal(lab, cookie))
        if scope["type"] == "http" and scope["method"] in _SAFE and _wants_html(scope):
            return Redirect(self.platform_url + _target(scope))
        return NOT_AUTHENTICATED

    async def _redeem(self, scope: dict, lab: str) -> Refusal | Redirect:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        code = (query.get("code") or [""])[0]
        session_id = await anyio.to_thread.run_sync(self._redeem_code, code, lab)
        if session_id is None:
            return BAD_CODE
        cookie = lab_login.lab_cookie(self.settings, lab, session_id)
        return Redirect(self._next(lab, (query.get("next") or [""])[0]), self._set_cookie(cookie.value))

    def _renewal(self, lab: str, cookie: lab_login.LabCookie) -> str:
        if cookie.expires - time.time() > self.settings.labs.cookie_ttl / 2:
            return ""
        return self._set_cookie(lab_login.lab_cookie(self.settings, lab, cookie.session_id).value)

    def _set_cookie(self, value: str) -> str:
        # Host-only (no Domain), every path of the lab's origin (which serves only this lab).
        secure = "; Secure" if self.origins.secure else ""
        ttl = self.settings.labs.cookie_ttl
        return f"{self.cookie_name}={value}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}"

    def _cross_origin(self, scope: dict, lab: str) -> bool:
        origin = get_header(scope, b"origin")
        if origin is not None:
            return origin.decode("latin-1").rstrip("/").lower() != self.origins.origin(lab)
        site = get_header(scope, b"sec-fetch-site")  # browsers that send no Origin on some requests
        return site is not None and site.lower() not in (b"same-origin", b"none")

    def _next(self, lab: str, wanted: str) -> str:
        """Where to go after the login: a path of this lab, else its base URL (never elsewhere)."""
        base = f"{self.prefix}{lab}"
        path = wanted.split("?", 1)[0]
        ok = (path == base or path.startswith(base + "/")) and not any(
            c == "\\" or ord(c) < 32 for c in wanted
        )
        return quote(wanted, safe="/?&=%:@!$'()*+,;~-._") if ok else base + "/"

    def _lab_in_path(self, path: str) -> str | None:
        if not path.startswith(self.prefix):
            return None
        lab_id = path[len(self.prefix) :].partition("/")[0]
        return lab_id if LAB_ID_RE.fullmatch(lab_id) else None

    # -- database work (in a worker thread) ------------------------------------------------------------

    def _issue(self, principal: Any, lab_id: str, guest: tuple[str, str] | None, client: str | None) -> str:
        with self.sessions() as db:
            code = lab_login.issue_code(db, principal.user.id, principal.session_id, lab_id)
        if guest is not None:
            audit.record_now(
                self.sessions,
                who=principal.user.name,
                what=GUEST_OPEN,
                target=json.dumps({"lab_id": lab_id}),
                client=client,
                outcome="303",
                detail={"mode": guest[0], "owner": guest[1]},
            )
        return code

    def _redeem_code(self, code: str, lab: str) -> str | None:
        with self.sessions() as db:
            return lab_login.redeem_code(db, code, lab)


def _target(scope: dict) -> str:
    """The request's path and query as the browser sent them (encoded: `%2F` stays one)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")


def _cookie_values(scope: dict, name: str) -> list[str]:
    values = []
    for key, header in scope["headers"]:
        if key != b"cookie" or name.encode() not in header:
            continue
        for part in header.decode("latin-1").split(";"):
            key_text, _, value = part.partition("=")
            if key_text.strip() == name and value.strip():
                values.append(value.strip().strip('"'))
    return values


def _wants_html(scope: dict) -> bool:
    return b"text/html" in (get_header(scope, b"accept") or b"")
