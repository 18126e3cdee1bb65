"""Templates and the `page()` helper every page renders through (layout context, flash messages, headers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from datalabs import __version__, redaction
from datalabs.notifications import service as notifications
from datalabs.web import lab_view, security

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
FLASH_COOKIE = "datalabs_flash"
# Pages only load their own files: no CDN, no inline script, no framing by other sites.
CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def page_csp(lab_origins: str = "") -> str:
    """The pages' policy, with the labs' origins (a CSP source such as `http://*.lab.localhost:8000`)
    among a form's allowed destinations: opening a file in a running lab posts a form whose redirects
    end on the lab's origin, and browsers hold every step of a form's redirects to form-action."""
    return CSP.replace("form-action 'self'", f"form-action 'self' {lab_origins}") if lab_origins else CSP


def _headers(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    csp = getattr(request.app.state, "page_csp", CSP)
    return {**PAGE_HEADERS, "Content-Security-Policy": csp, **(extra or {})}


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    path: str
    admin: bool = False


NAV = (
    NavItem("catalogue", "Catalogue", "/catalogue"),
    NavItem("labs", "My datalabs", "/labs"),
    NavItem("explorer", "Explorer", "/explorer"),
    NavItem("pipelines", "Pipelines", "/pipelines"),
    NavItem("workspace", "Workspace", "/workspace"),
    NavItem("appstore", "App store", "/appstore"),
    NavItem("usage", "Usage", "/usage"),
    NavItem("admin", "Admin", "/admin/users", admin=True),
)


@cache
def static_url(name: str) -> str:
    """URL of a vendored static file with a content hash, so it can be cached for a long time."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def datetime_text(value: datetime | None, empty: str = "—") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
)


def _inline(text: str) -> str:
    html = str(escape(text))
    for pattern, replacement in _INLINE:
        html = pattern.sub(replacement, html)
    return html


def prose(text: str | None) -> Markup:
    """Plain text as paragraphs and bullet lists. Everything is escaped first; only `code`, **strong**
    and *em* become markup, so a definition can never inject HTML into the page."""
    out = []
    for block in re.split(r"\n\s*\n", (text or "").strip()):
        para: list[str] = []
        items: list[list[str]] = []
        for line in (raw.strip() for raw in block.splitlines()):
            if not line:
                continue
            if line.startswith(("- ", "* ")):
                if para:
                    out.append(_paragraph(para))
                    para = []
                items.append([line[2:]])
            elif items:
                items[-1].append(line)  # a wrapped list item continues on the next line
            else:
                para.append(line)
        if para:
            out.append(_paragraph(para))
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(' '.join(i))}</li>" for i in items) + "</ul>")
    return Markup("\n".join(out))


def _paragraph(lines: list[str]) -> str:
    return f"<p>{_inline(' '.join(lines))}</p>"


def sentence(text: str | None) -> str:
    """Service messages are lowercase fragments ("no datalab 'x'"); pages show them as sentences."""
    text = (text or "").strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["dt"] = datetime_text
    env.filters["prose"] = prose
    env.filters["sentence"] = sentence
    env.globals.update(static_url=static_url, version=__version__)
    return env


templates = Jinja2Templates(env=_environment())


# ---- flash messages (one-shot, HMAC-signed cookie set on a redirect) ---------------------------------


def _sign(request: Request, payload: str) -> str:
    key = request.app.state.settings.secret_key.encode()
    return hmac.new(key, f"flash:{payload}".encode(), "sha256").hexdigest()[:32]


def redirect(request: Request, url: str, message: str = "", kind: str = "ok") -> RedirectResponse:
    """303 to `url` (Post/Redirect/Get), carrying `message` to the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        payload = base64.urlsafe_b64encode(json.dumps([kind, message]).encode()).decode()
        response.set_cookie(
            FLASH_COOKIE,
            f"{payload}.{_sign(request, payload)}",
            max_age=120,
            httponly=True,
            samesite="lax",
            secure=request.app.state.settings.auth.cookie_secure,
            path="/",
        )
    return response


def read_flash(request: Request) -> list[dict[str, str]]:
    """The one-shot message the previous response left (it is consumed by the next `page()`)."""
    payload, _, signature = request.cookies.get(FLASH_COOKIE, "").partition(".")
    if not payload or not hmac.compare_digest(signature, _sign(request, payload)):
        return []
    try:
        kind, message = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return []
    return [{"kind": str(kind), "message": str(message)}]


# ---- pages --------------------------------------------------------------------------------------


def layout_context(request: Request, active: str = "") -> dict[str, Any]:
    principal = getattr(request.state, "principal", None)
    is_admin = bool(principal and principal.is_admin)
    return {
        "principal": principal,
        "csrf_token": security.csrf_value(request),
        "nav": [item for item in NAV if not item.admin or is_admin] if principal else [],
        "active": active,
        "site_name": request.app.state.settings.site_name,
        "messages": read_flash(request),
    }


def unread_notices(request: Request) -> int:
    """The header bell's count: one COUNT on the (user_id, read_at) index per page (0 for visitors)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return 0
    with request.app.state.sessions() as db:
        return notifications.unread_count(db, principal.user.id)


def page(
    request: Request,
    template: str,
    *,
    title: str,
    active: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
    **ctx: Any,
) -> Response:
    """Render `template` inside the site layout; consumes the flash message and sets security headers."""
    context = {**layout_context(request, active), "title": title, **ctx}
    context["running_labs"] = lab_view.running_labs(request)
    context["unread_notices"] = unread_notices(request)
    response = templates.TemplateResponse(
        request, template, context, status_code=status, headers=_headers(request, headers)
    )
    if context["messages"]:
        response.delete_cookie(FLASH_COOKIE, path="/")
    security.set_anon_cookie(request, response)
    return response


def place_errors(errors: dict[str, str] | None, places: set[str]) -> dict[str, str]:
    """Form errors keyed by where the page shows them; one with no place (say, about a group that no
    longer exists) moves to the top of the page ("page") rather than being lost."""
    placed = {k: v for k, v in (errors or {}).items() if k in places}
    if rest := [v for k, v in (errors or {}).items() if k not in places]:
        placed["page"] = " ".join(rest)
    return placed


def fragment(request: Request, template: str, **ctx: Any) -> Response:
    """A partial template for htmx swaps (no layout, flash left for the next full page)."""
    context = {**layout_context(request), **ctx, "messages": []}
    return templates.TemplateResponse(request, template, context, headers=_headers(request))


async def render_error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The site's error page; installed as `app.state.render_error` for every HTML error."""
    if not getattr(request.state, "web_checked", False):
        with request.app.state.sessions() as db:
            security.viewer(request, db)
    message = redaction.error_message(request.app.state.settings, message)
    titles = {401: "Please log in", 403: "Not allowed", 404: "Not found", 429: "Too many attempts"}
    title = titles.get(status, "Something went wrong" if status >= 500 else "Cannot do that")
    return page(
        request,
        "error.html",
        title=title,
        status=status,
        headers=headers,
        status_code=status,
        message=message,
    )
