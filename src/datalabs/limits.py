"""How large a request body each kind of route may send (FastAPI's `max_body_size`): past it the request
is refused with 413 `too_large` before more is read. A body announced larger (`Content-Length`) is
refused before any of it is read; a chunked one as soon as it passes the limit.

- `BODY`, the default of every route: JSON bodies and forms are read whole into memory. The largest
  legitimate one is a CWL document (2 MiB of text, a few times that once escaped into JSON).
- `SOURCES`: multipart uploads of an app's sources or archive (spooled to disk by the form parser). No
  larger body can hold sources the builder would take (`builder.sources.Limits.max_total_bytes`).
- `STREAMED`: uploads written to a workspace as they arrive, bounded by the workspace's quota instead.
"""

from __future__ import annotations

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datalabs.builder.sources import DEFAULT_LIMITS
from datalabs.deps import page_request

MiB = 2**20
BODY = 8 * MiB
SOURCES = DEFAULT_LIMITS.max_total_bytes + 16 * MiB
STREAMED = 2**62  # no limit of its own: the quota is the limit


def too_large_message(scope: Scope) -> str:
    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
    most = f"{limit / MiB:g} MiB" if isinstance(limit, int) else "what it accepts"
    return f"the request body is larger than this route accepts ({most})"


class TooLargeAsJson:
    """Starlette answers a body *announced* larger than the route's limit with a plain-text 413 of its
    own, replacing whatever the route answered; this middleware turns that answer into the API's error
    format (`{"error": {"code": "too_large", ...}}`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        replaced: str | None = None

        async def send_json(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    replaced = too_large_message(scope)  # the limit is still in scope here
                    return
            if replaced is None:
                return await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                response = await _answer(scope, replaced)
                await response(scope, receive, send)

        await self.app(scope, receive, send_json)


async def _answer(scope: Scope, message: str) -> Response:
    """The API's JSON error, or for a browser's page request the site's error page."""
    request = Request(scope)
    if page_request(request):
        return await request.app.state.render_error(request, 413, message, None)
    return JSONResponse({"error": {"code": "too_large", "message": message}}, 413)
