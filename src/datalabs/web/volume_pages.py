"""The data volume browser (volumes available to you, their files, downloads) and the admin page that
registers and removes volumes."""

from __future__ import annotations

from urllib.parse import quote

from anyio import to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.volumes import service
from datalabs.web.render import page, redirect
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

    return page(
        request,
        "admin_volumes.html",
        title="Data volumes · Administration",
        active="admin",
        section="volumes",
        status=status,
        volumes=service.list_visible(db, principal),
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
    try:
        service.create(
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
        )
        db.commit()
    except DatalabsError as exc:
        db.rollback()
        return _admin_page(request, db, principal, form, exc.message, exc.status)
    return redirect(request, "/admin/volumes", f"Data volume '{name.strip()}' registered.")


@router.post("/admin/volumes/{name}/delete", name="admin_volumes_delete")
def admin_volumes_delete(
    request: Request, name: str, _: Principal = Depends(posting_admin), db: Session = Depends(get_db)
):
    service.delete(db, name)
    db.commit()
    return redirect(request, "/admin/volumes", f"Data volume '{name}' unregistered; its files are untouched.")
