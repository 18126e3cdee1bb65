"""The file manager: browse your personal and team workspaces, upload (drag and drop, or a plain form),
make folders, rename or move, copy, delete, download a file or a folder as zip, search by name, and see
the quota. Forms post here (CSRF-checked) and call the same services as the API; drag-and-drop uploads go
straight to the API's streamed PUT."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy.orm import Session

from datalabs import limits
from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.web.render import datetime_text, page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user
from datalabs.workspaces import operations, service
from datalabs.workspaces.paths import parts_of, shown
from datalabs.workspaces.service import Space
from datalabs.workspaces.upload import upload

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
PAGE = 200


def folder_url(space_id: str, parts: tuple[str, ...] | str) -> str:
    path = parts if isinstance(parts, str) else "/".join(parts)
    return f"/workspace/{quote(space_id, safe=':')}/" + quote(path, safe="/") + ("/" if path else "")


def api_url(space_id: str, path: str) -> str:
    return f"/api/v1/workspaces/{quote(space_id, safe=':')}/files/" + quote(path, safe="/")


def size_text(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} bytes"


def when(ts: float) -> str:
    return datetime_text(datetime.fromtimestamp(ts, UTC))


def crumbs(parts: tuple[str, ...], href) -> list[tuple[str, str]]:
    return [(name, href(parts[: i + 1])) for i, name in enumerate(parts)]


@router.get("/workspace", name="workspace_home")
def workspace_home(request: Request, _: Principal = Depends(require_user)):
    return redirect(request, "/workspace/me/")


@router.get("/workspace/{ws}/{path:path}", name="workspace_folder")
async def folder(
    request: Request,
    ws: str,
    path: str,
    q: str = Query("", max_length=200),
    page_no: int = Query(1, alias="page", ge=1, le=100_000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    settings = request.app.state.settings
    space = service.resolve(db, settings, principal, ws)
    spaces = service.list_spaces(db, settings, principal)
    db.close()
    parts = parts_of(path)
    entry = await to_thread.run_sync(space.tree.stat, parts)
    if entry.type == "file":  # a file's page is its download
        return redirect(request, api_url(space.id, entry.path))
    if q:
        items = await to_thread.run_sync(space.tree.search, parts, q, PAGE)
        total = len(items)
    else:
        listing = await to_thread.run_sync(space.tree.listdir, parts, (page_no - 1) * PAGE, PAGE)
        items, total = listing.entries, listing.total
    used = await to_thread.run_sync(request.app.state.usage.get, space)
    return page(
        request,
        "workspace.html",
        title=f"{_title(space)} · {shown(parts)}",
        active="workspace",
        space=space,
        spaces=[(s, _title(s)) for s in spaces],
        space_title=_title(space),
        parts=parts,
        path="/".join(parts),
        crumbs=crumbs(parts, lambda p: folder_url(space.id, p)),
        items=items,
        total=total,
        q=q,
        page_no=page_no,
        pages=max(1, -(-total // PAGE)),
        used=used,
        used_text=size_text(used),
        quota_text=size_text(space.quota),
        percent=min(100, round(100 * used / space.quota)) if space.quota else 0,
        size_text=size_text,
        when=when,
        folder_url=lambda p: folder_url(space.id, p),
        api_url=lambda p: api_url(space.id, p),
    )


def _title(space: Space) -> str:
    return "My workspace" if space.kind == "personal" else f"Team {space.name}"


@router.post("/workspace/{ws}/-/{action}", name="workspace_action", max_body_size=limits.STREAMED)
async def action(
    request: Request,
    ws: str,
    action: str,
    folder: str = Form("", max_length=4096),
    name: str = Form("", max_length=4096),
    to: str = Form("", max_length=4096),
    file: list[UploadFile] | None = File(None),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    """mkdir (`name` in `folder`), upload (`file` into `folder`), move / copy (`name` to `to`), delete."""
    settings = request.app.state.settings
    back = folder_url(ws, folder.strip("/"))
    try:
        space = service.resolve(db, settings, principal, ws, write=True)
        db.close()
        message = await _do(request, space, action, folder.strip("/"), name, to, file or [])
    except DatalabsError as exc:
        return redirect(request, back, exc.message[:1].upper() + exc.message[1:], kind="error")
    return redirect(request, back, message)


async def _do(request: Request, space: Space, action: str, folder: str, name: str, to: str, files) -> str:
    cache = request.app.state.usage
    base = parts_of(folder)
    if action == "mkdir":
        made = await to_thread.run_sync(lambda: space.tree.mkdir((*base, *parts_of(name))))
        return f"Folder '{made.name}' created."
    if action == "upload":
        return await _upload(space, base, files, cache, request.app.state.settings.workspaces.fsync)
    if action in ("move", "copy", "delete"):
        target = parts_of(name)
        if action == "delete":
            await to_thread.run_sync(operations.remove, space, target, cache)
            return f"Deleted '{shown(target)}'."
        dest = to.strip("/")
        entry = await to_thread.run_sync(operations.operate, space, space, target, action, dest, cache)
        return f"{'Moved' if action == 'move' else 'Copied'} '{shown(target)}' to '{entry.path}'."
    raise DatalabsError(f"unknown action '{action}'", code="unknown_action")


async def _upload(space: Space, base: tuple[str, ...], files: list[UploadFile], cache, fsync: bool) -> str:
    files = [f for f in files if f.filename]
    if not files:
        raise DatalabsError("choose one or more files to upload", code="no_files")
    for f in files:

        async def chunks(f=f):
            while chunk := await f.read(1 << 20):
                yield chunk

        free = await to_thread.run_sync(cache.free, space)
        name = f.filename.replace("\\", "/").rsplit("/", 1)[-1]
        done = await upload(
            space.tree, (*base, *parts_of(name)), chunks(), free=free, declared=f.size, fsync=fsync
        )
        cache.add(space, done.added)
    return f"Uploaded {len(files)} file{'s' if len(files) != 1 else ''}."
