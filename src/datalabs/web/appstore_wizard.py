"""The "Create datalab" wizard: type (name and base datalab) → sources (upload, git URL, workspace folder)
→ metadata (pre-filled from the sources' datalab-meta.yml) → build (log followed live) → test launch →
share or submit (on the app's page).

Each step calls the builder services the API calls (`builder.service`, `builder.origins`; plus
`builder.drafts`, which holds the sources between steps), so the pages accept and refuse exactly what
`/api/v1/apps` does; errors are shown next to the form they concern, with what the user typed kept."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs import limits
from datalabs.accounts.principal import Principal
from datalabs.builder import drafts, origins, service
from datalabs.builder.service import MetaInvalid
from datalabs.catalogue.entries import visible_to
from datalabs.db.models import Datalab
from datalabs.deps import get_db
from datalabs.errors import DatalabsError, Invalid
from datalabs.labs import service as labs
from datalabs.web import appstore_view as view
from datalabs.web import forms
from datalabs.web.lab_launch import LAUNCHED
from datalabs.web.render import page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user
from datalabs.workspaces import service as workspaces

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
STEPS = ("Type", "Sources", "Metadata", "Build", "Test", "Share")
MAX_FOLDERS = 200


def _wizard(request: Request, template: str, step: str, *, title: str, status: int = 200, **ctx: Any):
    return page(
        request, template, title=title, active="appstore", status=status, steps=STEPS, step=step, **ctx
    )


# ---- 1. type ------------------------------------------------------------------------------------


def _bases(request: Request, db: Session, principal: Principal) -> list[dict[str, str]]:
    """Datalabs a new one may build on: those defined by the platform's files (not other users' apps)."""
    files = set(db.scalars(select(Datalab.name).where(Datalab.source != "db")))
    entries = [
        e for e in request.app.state.catalogue.entries(db) if e.name in files and visible_to(e, principal)
    ]
    entries.sort(key=lambda e: (e.name != "jupyterlab", e.meta.title.lower()))
    return [{"name": e.name, "title": e.meta.title, "kind": e.kind} for e in entries]


def _type_page(request, db, principal, form=None, errors=None, status=200):
    return _wizard(
        request,
        "appstore_new.html",
        "Type",
        title="Create datalab",
        status=status,
        bases=_bases(request, db, principal),
        form=form or {"name": "", "base": "jupyterlab"},
        errors=errors or {},
    )


@router.get("/appstore/new", name="appstore_new")
def new_page(request: Request, principal: Principal = Depends(require_user), db: Session = Depends(get_db)):
    return _type_page(request, db, principal)


@router.post("/appstore/new")
def create(
    request: Request,
    name: str = Form("", max_length=64),
    base: str = Form("jupyterlab", max_length=64),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    name = name.strip()

    def again(exc: DatalabsError):
        where = "base" if exc.code == "bad_base" else "name"
        form = {"name": name, "base": base}
        return _type_page(request, db, principal, form, {where: exc.message}, exc.status)

    return forms.submit(
        request,
        db,
        lambda: service.create(db, principal, name, base),
        refused=again,
        to=f"/appstore/{name}/sources",
        done=f"Created '{name}'. Now bring its files.",
    )


# ---- 2. sources ---------------------------------------------------------------------------------


def _folders(space) -> list[str]:
    """Folders of a workspace, two levels deep: suggestions for the folder picker."""
    found: list[str] = []
    queue: list[tuple[str, ...]] = [()]
    while queue and len(found) < MAX_FOLDERS:
        parts = queue.pop(0)
        try:
            entries = space.tree.listdir(parts, 0, MAX_FOLDERS).entries
        except (DatalabsError, OSError):
            continue
        for e in entries:
            if e.type == "dir":
                found.append("/".join((*parts, e.name)))
                if len(parts) < 1:
                    queue.append((*parts, e.name))
    return found[:MAX_FOLDERS]


def _sources_page(request, db, principal, app, form=None, errors=None, status=200):
    settings = request.app.state.settings
    spaces = workspaces.list_spaces(db, settings, principal)
    return _wizard(
        request,
        "appstore_sources.html",
        "Sources",
        title=f"Sources of {app.name}",
        status=status,
        app=app,
        draft=drafts.load(settings, app),
        spaces=[
            {"id": s.id, "label": "My workspace" if s.kind == "personal" else f"Team {s.name}"}
            for s in spaces
        ],
        folders=sorted({f for s in spaces for f in _folders(s)}),
        form={"url": "", "ref": "", "ws": "me", "path": "", **(form or {})},
        errors=errors or {},
    )


@router.get("/appstore/{name}/sources")
def sources_page(
    request: Request, name: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return _sources_page(request, db, principal, service.get(db, principal, name, write=True))


async def _stage(request, db, principal, app, fill, kind: str, form: dict[str, str]):
    """Take the sources into the app's draft; a refusal shows next to the form of that `kind`."""
    try:
        await asyncio.to_thread(drafts.stage, request.app.state.settings, app, fill, kind)
    except DatalabsError as exc:
        return _sources_page(request, db, principal, app, form, {kind: exc.message}, exc.status)
    return redirect(request, f"/appstore/{app.name}/metadata", "Sources received. Check the metadata.")


@router.post("/appstore/{name}/sources/upload", max_body_size=limits.SOURCES)
async def upload(
    request: Request, name: str, principal: Principal = Depends(posting_user), db: Session = Depends(get_db)
):
    app = service.get(db, principal, name, write=True)
    form = await request.form()  # already read (and its limits applied) by the CSRF check
    # A file input left empty still sends one part, with no file name.
    uploads = [f for f in form.getlist("files") if hasattr(f, "file") and f.filename]
    if not uploads:
        errors = {"upload": "choose the files to upload (several files, or one .zip)"}
        return _sources_page(request, db, principal, app, errors=errors, status=422)
    fill = origins.uploaded([(u.filename, u.file) for u in uploads])
    return await _stage(request, db, principal, app, fill, "upload", {})


@router.post("/appstore/{name}/sources/git")
async def from_git(
    request: Request,
    name: str,
    url: str = Form("", max_length=2000),
    ref: str = Form("", max_length=200),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    app = service.get(db, principal, name, write=True)
    form = {"url": url, "ref": ref}
    try:
        if not url.strip():
            raise Invalid("give the repository's URL", code="bad_url")
        fill = origins.from_git(request.app.state.settings, url.strip(), ref.strip())
    except DatalabsError as exc:
        return _sources_page(request, db, principal, app, form, {"git": exc.message}, exc.status)
    return await _stage(request, db, principal, app, fill, "git", form)


@router.post("/appstore/{name}/sources/workspace")
async def from_workspace(
    request: Request,
    name: str,
    ws: str = Form("me", max_length=100),
    path: str = Form("", max_length=4096),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    app = service.get(db, principal, name, write=True)
    form = {"ws": ws, "path": path}
    try:
        fill = origins.from_workspace(db, request.app.state.settings, principal, ws, path.strip())
    except DatalabsError as exc:
        return _sources_page(request, db, principal, app, form, {"workspace": exc.message}, exc.status)
    return await _stage(request, db, principal, app, fill, "workspace", form)


# ---- 3. metadata --------------------------------------------------------------------------------


def _metadata_page(request, app, draft, values, errors=None, status=200):
    return _wizard(
        request,
        "appstore_metadata.html",
        "Metadata",
        title=f"Metadata of {app.name}",
        status=status,
        app=app,
        draft=draft,
        sections=view.sections(values),
        errors=errors or {},
    )


@router.get("/appstore/{name}/metadata")
def metadata_page(
    request: Request, name: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    app = service.get(db, principal, name, write=True)
    draft = drafts.load(request.app.state.settings, app)
    if draft is None:
        return redirect(request, f"/appstore/{name}/sources", "Bring the sources first.", kind="error")
    return _metadata_page(request, app, draft, view.form_values(draft.meta))


def _field_errors(exc: MetaInvalid) -> dict[str, str]:
    """The builder's problems (file, key, reason) next to the field of that key, or above the form."""
    errors: dict[str, str] = {}
    for p in exc.problems:
        key = p.key if p.key in view.FIELDS else "page"
        text = p.reason if key != "page" else f"{p.key + ': ' if p.key else ''}{p.reason}"
        errors[key] = f"{errors[key]}; {text}" if key in errors else text
    return errors


@router.post("/appstore/{name}/metadata")
async def build(
    request: Request, name: str, principal: Principal = Depends(posting_user), db: Session = Depends(get_db)
):
    settings = request.app.state.settings
    app = service.get(db, principal, name, write=True)
    draft = drafts.load(settings, app)
    if draft is None:
        return redirect(request, f"/appstore/{name}/sources", "Bring the sources first.", kind="error")
    form = await request.form()
    values = {k: str(form.get(k, ""))[:5000] for k in view.FIELDS}
    try:
        version = await asyncio.to_thread(
            drafts.build, db, settings, principal, app, view.overrides(values, draft.meta)
        )
        db.commit()
    except MetaInvalid as exc:
        db.rollback()
        return _metadata_page(request, app, draft, values, _field_errors(exc), exc.status)
    except DatalabsError as exc:
        db.rollback()
        return _metadata_page(request, app, draft, values, {"page": exc.message}, exc.status)
    request.app.state.builds.submit(version.id)
    drafts.discard(settings, name)
    return redirect(request, f"/appstore/{name}/versions/{version.version}", f"Building {version.version}.")


# ---- 4. build and 5. test -----------------------------------------------------------------------


def version_page(request, db, principal, app, number: str, errors=None, status=200):
    v = service.version_of(app, number, principal)
    path = service.log_path(request.app.state.settings, app.name, number)
    text = path.read_text(errors="replace") if path.is_file() else ""
    done = v.state in service.TERMINAL
    if not done:  # the live stream sends whole lines only; an unfinished last line comes with it
        text = "\n".join(text.split("\n")[:-1])
    is_author = app.owner_id == principal.user.id or principal.is_admin
    return _wizard(
        request,
        "app_version.html",
        "Test" if v.state == "built" else "Build",
        title=f"{app.name} {number}",
        status=status,
        app=app,
        v=view.version_row(app, v),
        lines=view.log_lines(text, v.error),
        done=done,
        events=f"/api/v1/apps/{app.name}/versions/{number}/events",
        is_author=is_author,
        errors=errors or {},
    )


@router.get("/appstore/{name}/versions/{version}")
def version_view(
    request: Request,
    name: str,
    version: str,
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    return version_page(request, db, principal, service.get(db, principal, name), version)


@router.post("/appstore/{name}/versions/{version}/launch")
async def test_launch(
    request: Request,
    name: str,
    version: str,
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    """Launch this version as a lab with its defaults (the catalogue's launch form has the options).
    Async like the catalogue's launch: the lab's start runs as a task on the server's event loop."""
    app = service.get(db, principal, name)
    settings, cat = request.app.state.settings, request.app.state.catalogue

    def action():
        service.version_of(app, version, principal)
        req = labs.LaunchRequest(datalab=name, version=version)
        return labs.launch(db, settings, cat, request.app.state.labs, principal, req)

    def started(lab):
        return redirect(request, f"/labs/{lab.id}", f"You launched '{lab.name}' to test it.", kind=LAUNCHED)

    again = forms.shown_again(partial(version_page, request, db, principal, app, version), "launch")
    return forms.submit(request, db, action, refused=again, then=started)
