"""The data volume browser (volumes available to you, their files, downloads) and the admin page that
registers and removes volumes."""

from __future__ import annotations

import time
from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import Conflict
from datalabs.volumes import service
from datalabs.web import forms
from datalabs.web.render import fragment, page, redirect
from datalabs.web.security import HtmlRoute, posting_admin, require_admin, require_user
from datalabs.web.workspace_pages import PAGE, crumbs, size_text, when
from datalabs.workspaces.paths import parts_of, shown

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


def folder_url(name: str, parts: tuple[str, ...] | str) -> str:
    path = parts if isinstance(parts, str) else "/".join(parts)
    return f"/volumes/{quote(name)}/" + quote(path, safe="/") + ("/" if path else "")


def api_url(name: str, path: str) -> str:
    return f"/api/v1/volumes/{quote(name)}/files/" + quote(path, safe="/")


@router.get("/volumes", name="volumes_page")
def volumes_page(
    request: Request, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return page(
        request,
        "volumes.html",
        title="Data volumes",
        active="workspace",
        volumes=service.list_visible(db, principal),
    )


@router.get("/volumes/{name}/{path:path}", name="volume_folder")
async def volume_folder(
    request: Request,
    name: str,
    path: str,
    q: str = Query("", max_length=200),
    page_no: int = Query(1, alias="page", ge=1, le=100_000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    volume = service.get_visible(db, principal, name)
    tree = service.tree(volume)
    db.close()
    parts = parts_of(path)
    entry = await to_thread.run_sync(tree.stat, parts)
    if entry.type == "file":
        return redirect(request, api_url(volume.name, entry.path))
    if q:
        items = await to_thread.run_sync(tree.search, parts, q, PAGE)
        total = len(items)
    else:
        listing = await to_thread.run_sync(tree.listdir, parts, (page_no - 1) * PAGE, PAGE)
        items, total = listing.entries, listing.total
    return page(
        request,
        "volume.html",
        title=f"{volume.name} · {shown(parts)}",
        active="workspace",
        volume=volume,
        parts=parts,
        path="/".join(parts),
        crumbs=crumbs(parts, lambda p: folder_url(volume.name, p)),
        items=items,
        total=total,
        q=q,
        page_no=page_no,
        pages=max(1, -(-total // PAGE)),
        size_text=size_text,
        when=when,
        folder_url=lambda p: folder_url(volume.name, p),
        api_url=lambda p: api_url(volume.name, p),
    )


# ---- administration -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.replace(";", ",").split(",") if w.strip()]


@router.get("/admin/volumes", name="admin_volumes")
def admin_volumes(
    request: Request, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    return _admin_page(request, db, principal)


def _admin_page(request, db, principal, form=None, error: str = "", status: int = 200):
    from datalabs.accounts import service as accounts

    volumes = service.list_visible(db, principal)
    indexer, assets = request.app.state.indexer, request.app.state.assets
    return page(
        request,
        "admin_volumes.html",
        title="Data volumes · Administration",
        active="admin",
        section="volumes",
        status=status,
        volumes=volumes,
        indexing={v.name: indexer.status(v.name) for v in volumes},
        indexed={v.name: assets.count(v.name) for v in volumes},
        ago=ago,
        groups=[g.name for g in accounts.list_groups(db)],
        form=form or {},
        error=error,
    )


@router.post("/admin/volumes", name="admin_volumes_create")
def admin_volumes_create(
    request: Request,
    name: str = Form("", max_length=64),
    host_path: str = Form("", max_length=4096),
    description: str = Form("", max_length=4000),
    groups: str = Form("", max_length=2000),
    mission: str = Form("", max_length=500),
    domain: str = Form("", max_length=64),
    tags: str = Form("", max_length=500),
    principal: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    form = dict(name=name, host_path=host_path, description=description, groups=groups, mission=mission)
    form |= dict(domain=domain, tags=tags)
    return forms.submit(
        request,
        db,
        lambda: service.create(
            db,
            request.app.state.settings,
            principal,
            name=name.strip(),
            host_path=host_path.strip(),
            description=description.strip(),
            allowed_groups=_words(groups),
            mission=_words(mission),
            domain=domain.strip(),
            tags=_words(tags),
        ),
        refused=lambda exc: _admin_page(request, db, principal, form, exc.message, exc.status),
        to="/admin/volumes",
        done=f"Data volume '{name.strip()}' registered.",
    )


@router.post("/admin/volumes/{name}/delete", name="admin_volumes_delete")
def admin_volumes_delete(
    request: Request, name: str, _: Principal = Depends(posting_admin), db: Session = Depends(get_db)
):
    service.delete(db, name)
    db.commit()
    return redirect(request, "/admin/volumes", f"Data volume '{name}' unregistered; its files are untouched.")


@router.post("/admin/volumes/{name}/index", name="admin_volumes_index_now")
def admin_volumes_index_now(
    request: Request, name: str, principal: Principal = Depends(posting_admin), db: Session = Depends(get_db)
):
    try:
        service.index_now(db, principal, request.app.state.indexer, name)
    except Conflict as exc:
        return redirect(request, _index_url(name), exc.message, "error")
    return redirect(request, _index_url(name), f"Indexing '{name}': only new or changed files are read.")


@router.get("/admin/volumes/{name}/index", name="admin_volume_index")
def admin_volume_index(
    request: Request, name: str, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    status = service.indexing(db, principal, request.app.state.indexer, name)
    return page(
        request,
        "admin_volume_index.html",
        title=f"Indexing {name} · Administration",
        active="admin",
        section="volumes",
        **_index_context(request, name, status),
    )


@router.get("/admin/volumes/{name}/index/status", name="admin_volume_index_status")
def admin_volume_index_status(
    request: Request, name: str, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    """The live part of the indexing page, polled by htmx while a harvest is queued or running."""
    status = service.indexing(db, principal, request.app.state.indexer, name)
    return fragment(request, "_volume_index_status.html", **_index_context(request, name, status))


def _index_url(name: str) -> str:
    return f"/admin/volumes/{quote(name)}/index"


def _index_context(request: Request, name: str, status) -> dict:
    return {
        "name": name,
        "harvest": status,
        "indexed": request.app.state.assets.count(name),
        "status_url": _index_url(name) + "/status",
        "ago": ago,
    }


def ago(timestamp: float | None) -> str:
    """'3 min ago' for a Unix time (None: 'never')."""
    if timestamp is None:
        return "never"
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
