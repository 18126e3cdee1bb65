"""The browser side of desktop labs, served by the proxy itself under `/datalabs/{id}/`:

- `/datalabs/{id}/`            our page (desktop_page/index.html): the desktop, full window
- `/datalabs/{id}/desktop.js`  our glue: noVNC with autoconnect, resize=remote, reconnect, clipboard
- `/datalabs/{id}/novnc/...`   noVNC's ES modules from Debian's `novnc` package (/usr/share/novnc)
- `/datalabs/{id}/vnc`         the WebSocket, bridged to the lab's RFB socket (vnc.py)

Everything comes from our own origin (no CDN) and only after the proxy admitted the request, so the
page, like the desktop, is the owner's alone. Files are small and read once, then kept in memory.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path

from datalabs.proxy.refusals import Refusal
from datalabs.proxy.routes import Route

NOVNC_DIR = Path("/usr/share/novnc")
PAGE_DIR = Path(__file__).parent / "desktop_page"
WEBSOCKET_PATH = "vnc"
_TYPES = {".js": "text/javascript", ".html": "text/html", ".css": "text/css", ".svg": "image/svg+xml"}
# The page runs only our scripts and noVNC's; it talks to nothing but the proxy.
_CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'self'"
)
_cache: dict[Path, bytes] = {}

NOVNC_MISSING = Refusal(503, "novnc_missing", "noVNC is not installed on this host (Debian package novnc)")
NOT_FOUND = Refusal(404, "not_found", "no such file in the desktop page")


def resolve(rest: str) -> Path | Refusal:
    """The file for the path under the lab's base URL, or why not."""
    if rest in ("", "index.html"):
        return PAGE_DIR / "index.html"
    if rest == "desktop.js":
        return PAGE_DIR / "desktop.js"
    if rest.startswith("novnc/"):
        if not NOVNC_DIR.is_dir():
            return NOVNC_MISSING
        path = (NOVNC_DIR / rest.removeprefix("novnc/")).resolve()
        if path.is_relative_to(NOVNC_DIR.resolve()) and path.is_file():
            return path
    return NOT_FOUND


async def serve(scope: dict, send: Callable, route: Route, send_error: Callable) -> None:
    """Answer an admitted HTTP request for a desktop lab."""
    prefix = f"/datalabs/{route.lab_id}/"
    path: str = scope["path"]
    found = resolve(path[len(prefix) :] if path.startswith(prefix) else "\0")
    if scope["method"] not in ("GET", "HEAD"):
        found = Refusal(405, "method_not_allowed", "a desktop page only answers GET")
    if isinstance(found, Refusal):
        await send_error(send, found)
        return
    body = _cache.get(found)
    if body is None:
        body = _cache[found] = found.read_bytes()  # a few hundred kB in all, read once
    kind = _TYPES.get(found.suffix) or mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    headers = [
        (b"content-type", kind.encode() + (b"; charset=utf-8" if kind.startswith("text/") else b"")),
        (b"content-length", str(len(body)).encode()),
        # Our page and glue change with the platform; noVNC's modules with the Debian package.
        (b"cache-control", b"no-cache" if found.parent == PAGE_DIR else b"private, max-age=3600"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", _CSP.encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
