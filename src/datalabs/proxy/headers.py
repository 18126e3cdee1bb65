"""Header rewriting between the browser and a lab, both ways.

Headers are ASGI-style (lowercase name, value) byte pairs throughout: no decoding on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from datalabs.proxy.routes import Route

Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: meaningful for one connection only, so never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The lab cookie too: it is the browser's pass to the lab, not something the lab may read or set.
PLATFORM_COOKIES = frozenset({b"datalabs_session", b"datalabs_anon", b"datalabs_lab", b"__Host-datalabs_lab"})
# From the browser, besides hop-by-hop: its platform credential (Authorization), headers we set ourselves
# (forwarding info the browser could forge; uvicorn has already applied those of trusted proxies to
# scope["client"]) and Expect (the front server answers 100-continue; the body is streamed anyway).
_DROP_FROM_BROWSER = HOP_BY_HOP | {
    b"authorization",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-proto",
    b"x-real-ip",
    # The identity headers below are the proxy's word to the lab: a browser's own copies are forged.
    b"x-datalabs-user",
    b"x-datalabs-share",
}
# Who is asking, as the proxy admitted them (set by LabProxy.admit in the ASGI scope): forwarded to the
# lab on every request and WebSocket handshake as X-Datalabs-User (user name) and X-Datalabs-Share
# ("owner" | "view" | "collaborate"), so a lab (e.g. JupyterLab's collaboration) can tell people apart.
SCOPE_USER = "datalabs.user"
SCOPE_SHARE = "datalabs.share"
SHARE_MODES = ("owner", "view", "collaborate")
# The WebSocket client library writes its own handshake headers (and Host/Origin from its arguments).
_DROP_FOR_WEBSOCKET = _DROP_FROM_BROWSER | {
    b"host",
    b"origin",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"content-length",
}
# Never dropped because the Connection header named them: that would break framing or routing.
_ESSENTIAL = frozenset({b"host", b"content-length", b"cookie"})
# The front server (uvicorn) writes its own Date and Server; forwarding the lab's would duplicate them.
_DROP_FROM_LAB = HOP_BY_HOP | {b"date", b"server"}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_SCHEMES = {"http": b"http", "https": b"https", "ws": b"http", "wss": b"https"}


def request_headers(scope: dict, route: Route, websocket: bool = False) -> tuple[Headers, str | None]:
    """Headers to send to the lab for this request, and how its body is framed: "length" (the browser
    sent Content-Length, forwarded as is), "chunked" (the browser streamed it; we re-chunk) or None (no
    body). Host is kept as the browser sent it: Jupyter compares Origin with Host for WebSockets."""
    drop = _DROP_FOR_WEBSOCKET if websocket else _DROP_FROM_BROWSER
    injected_names = {name for name, _ in route.injected}
    out: Headers = []
    cookies: list[bytes] = []
    nominated: set[bytes] = set()
    framing: str | None = None
    host: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        if name in drop or name in injected_names:
            if name == b"connection":
                nominated.update(t.strip().lower() for t in value.split(b","))
            elif name == b"transfer-encoding":
                framing = "chunked"
            continue
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"content-length":
            framing = "length"
        out.append((name, value))
    if nominated - _ESSENTIAL:
        out = [(n, v) for n, v in out if n not in nominated or n in _ESSENTIAL]
    if framing is None and not websocket and scope.get("http_version") == "2":
        # HTTP/2 may carry a body without Content-Length; GET and HEAD never carry one in practice.
        framing = None if scope["method"] in ("GET", "HEAD") else "chunked"
    if framing == "chunked" and not websocket:
        out.append((b"transfer-encoding", b"chunked"))  # we re-chunk what the front server de-chunked
    if cookies and (kept := strip_platform_cookies(b"; ".join(cookies))):
        out.append((b"cookie", kept))
    out.extend(route.injected)
    user, share = scope.get(SCOPE_USER), scope.get(SCOPE_SHARE)
    if user is not None and share in SHARE_MODES:
        out.append((b"x-datalabs-user", user.encode("utf-8")))
        out.append((b"x-datalabs-share", share.encode("ascii")))
    if host is None and not websocket:
        host = b"localhost"
        out.append((b"host", host))
    client = scope.get("client")
    if client:
        out.append((b"x-forwarded-for", str(client[0]).encode("latin-1")))
    out.append((b"x-forwarded-proto", _SCHEMES.get(scope.get("scheme", "http"), b"http")))
    if host is not None:
        out.append((b"x-forwarded-host", host))
    return out, framing


def strip_platform_cookies(cookie: bytes) -> bytes:
    """The Cookie header without the platform's own cookies (the session would let the lab act as the
    user on the platform); other cookies, e.g. Jupyter's `_xsrf`, are kept in order."""
    if b"datalabs_" not in cookie:
        return cookie
    kept = []
    for part in cookie.split(b";"):
        part = part.strip()
        if part and part.partition(b"=")[0].strip() not in PLATFORM_COOKIES:
            kept.append(part)
    return b"; ".join(kept)


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], route: Route, host: bytes | None, prefix: bytes
) -> Headers:
    """The lab's response headers as the browser may see them: hop-by-hop dropped, any header carrying
    the injected secret dropped, Location made relative when it points at the lab itself, Set-Cookie
    kept inside the lab's path `prefix` (b"/datalabs/<id>/")."""
    secrets = route.secrets
    out: Headers = []
    nominated: set[bytes] = set()
    for name, value in headers:
        if name in _DROP_FROM_LAB:
            if name == b"connection":
                nominated.update(t.strip().lower() for t in value.split(b","))
            continue
        if secrets and any(secret in value for secret in secrets):
            continue  # e.g. a lab echoing Authorization back: the browser must never learn the secret
        if name == b"location":
            value = rewrite_location(value, host, route)
        elif name == b"set-cookie":
            scoped = scope_set_cookie(value, prefix)
            if scoped is None:
                continue
            value = scoped
        out.append((name, value))
    if nominated:
        out = [(n, v) for n, v in out if n not in nominated]
    return out


def rewrite_location(value: bytes, host: bytes | None, route: Route) -> bytes:
    """An absolute Location pointing at the lab itself (localhost, its host:port, or the Host the browser
    used — the lab builds URLs from it, but with its own scheme, which is wrong behind TLS) becomes a
    path; Locations pointing elsewhere are kept."""
    if value.startswith(b"/") and not value.startswith(b"//"):
        return value
    try:
        url = urlsplit(value.decode("latin-1"))
        hostname = url.hostname or ""
    except ValueError:
        return value
    if url.scheme not in ("", "http", "https", "ws", "wss") or not url.netloc:
        return value
    netloc = url.netloc.rpartition("@")[2].lower()
    own = {(host or b"").decode("latin-1").lower(), (route.host_port or "").lower()}
    if hostname in _LOCAL_HOSTS or netloc in own:
        return urlunsplit(("", "", url.path or "/", url.query, url.fragment)).encode("latin-1")
    return value


def scope_set_cookie(value: bytes, prefix: bytes) -> bytes | None:
    """Set-Cookie limited to the lab's path prefix (unless already narrower) and to this host (Domain
    dropped), so one lab's cookies never reach another lab or the platform. A lab trying to set one of
    the platform's cookies gets nothing (None)."""
    pair, *attrs = value.split(b";")
    if pair.partition(b"=")[0].strip() in PLATFORM_COOKIES:
        return None
    kept = [pair.strip()]
    path = None
    for attr in attrs:
        key, _, val = attr.partition(b"=")
        key = key.strip().lower()
        if key == b"path":
            path = val.strip()
        elif key != b"domain" and attr.strip():
            kept.append(attr.strip())
    kept.append(b"Path=" + (path if path and path.startswith(prefix) else prefix))
    return b"; ".join(kept)


def get_header(scope: dict, name: bytes) -> bytes | None:
    """The first value of header `name` (lowercase) in an ASGI scope."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
