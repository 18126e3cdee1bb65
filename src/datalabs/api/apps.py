"""Apps (the app builder and store): create, add versions from sources (upload, git, workspace folder),
follow builds, share, submit, review, unpublish, history, export and import."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from datalabs import limits
from datalabs.accounts.principal import Principal
from datalabs.builder import archive, origins, publish, service
from datalabs.config import Settings
from datalabs.db.models import App, AppVersion
from datalabs.deps import get_db, get_settings, scope
from datalabs.errors import Invalid
from datalabs.sandbox import parsing

router = APIRouter(prefix="/api/v1", tags=["apps"], responses={401: {}, 403: {}, 404: {}})
read, write = scope("apps:read"), scope("apps:write")


class VersionRead(BaseModel):
    version: str
    state: str
    error: str
    cached: bool
    published: bool = Field(description="Approved by a moderator and not withdrawn: everyone sees it.")
    under_review: bool = Field(description="Submitted and waiting for a moderator.")
    source_kind: str
    source_ref: str
    requirements: list[str]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    meta: dict[str, Any]

    @classmethod
    def of(cls, v: AppVersion) -> VersionRead:
        fields = {k: getattr(v, k) for k in cls.model_fields if k != "under_review"}
        return cls(**fields, under_review=service.under_review(v.app, v))


class AppRead(BaseModel):
    name: str
    owner: str
    base: str
    state: str
    title: str
    abstract: str
    shared_users: list[str]
    shared_groups: list[str]
    featured: bool
    submitted_version: str
    created_at: datetime
    versions: list[VersionRead]

    @classmethod
    def of(cls, app: App, principal: Principal) -> AppRead:
        """The app as `principal` may see it: versions they may not see (unreviewed builds, for the
        public) are left out, and the title and abstract come from the newest one they see."""
        versions = service.shown_versions(app, principal)
        meta = versions[-1].meta if versions else {}
        # The public reads a published app only: its review of other versions is not their business.
        insider = service.insider(app, principal)
        return cls(
            name=app.name,
            owner=app.owner.name,
            base=app.base,
            state=app.state if insider else "published",
            title=meta.get("title", app.name),
            abstract=meta.get("abstract", ""),
            shared_users=app.shared_users,
            shared_groups=app.shared_groups,
            featured=app.featured,
            submitted_version=app.submitted_version if insider else "",
            created_at=app.created_at,
            versions=[VersionRead.of(v) for v in versions],
        )


class AppCreate(BaseModel):
    name: str = Field(max_length=64)
    base: str = Field("jupyterlab", max_length=64)


class GitSource(BaseModel):
    url: str = Field(max_length=2000)
    ref: str = Field("", max_length=200)


class WorkspaceSource(BaseModel):
    ws: str = Field("me", max_length=100)
    path: str = Field(max_length=4096)


class VersionCreate(BaseModel):
    git: GitSource | None = None
    workspace: WorkspaceSource | None = None
    meta: dict[str, Any] = Field(default_factory=dict, description="Metadata overriding the sources' file.")


class ShareBody(BaseModel):
    users: list[str] = Field(default_factory=list, max_length=500)
    groups: list[str] = Field(default_factory=list, max_length=500)


class SubmitBody(BaseModel):
    version: str | None = Field(None, max_length=64)


class UnpublishBody(BaseModel):
    version: str | None = Field(
        None, max_length=64, description="Only this version; without it every version and any submission."
    )


class ReviewBody(BaseModel):
    decision: str = Field(pattern="^(approve|reject)$")
    comment: str = Field("", max_length=5000)


class FeatureBody(BaseModel):
    featured: bool = True


class EventRead(BaseModel):
    at: datetime
    actor: str
    kind: str
    version: str
    detail: str


def _queue(request: Request):
    return request.app.state.builds


@router.get("/apps", response_model=list[AppRead])
def list_apps(
    mine: bool = Query(False, description="Only apps I develop."),
    q: str = Query("", max_length=200),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    apps = service.mine(db, principal) if mine else service.visible(db, principal)
    items = [AppRead.of(a, principal) for a in apps]
    words = q.lower().split()
    return [a for a in items if all(w in f"{a.name} {a.title} {a.abstract}".lower() for w in words)]


@router.post("/apps", response_model=AppRead, status_code=201)
def create_app(body: AppCreate, principal: Principal = Depends(write), db: Session = Depends(get_db)):
    app = service.create(db, principal, body.name, body.base)
    db.commit()
    return AppRead.of(app, principal)


@router.get("/apps/review-queue", response_model=list[AppRead])
def review_queue(principal: Principal = Depends(read), db: Session = Depends(get_db)):
    """Submissions waiting for a moderator."""
    return [AppRead.of(a, principal) for a in publish.queue(db, principal)]


@router.post("/apps/import", response_model=AppRead, status_code=201, max_body_size=limits.SOURCES)
def import_app(
    request: Request,
    archive_file: UploadFile = File(..., alias="archive"),
    name: str = Form("", max_length=64),
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """A new app from an exported archive; each of its versions is built again here."""
    app, versions = archive.import_(db, settings, principal, archive_file.file, name)
    db.commit()
    for v in versions:
        _queue(request).submit(v.id)
    return AppRead.of(app, principal)


@router.get("/apps/{name}", response_model=AppRead)
def get_app(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return AppRead.of(service.get(db, principal, name), principal)


@router.delete("/apps/{name}", status_code=204)
def delete_app(
    name: str,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    service.delete_app(db, settings, principal, service.get(db, principal, name, write=True))
    db.commit()


@router.post(
    "/apps/{name}/versions", response_model=VersionRead, status_code=202, max_body_size=limits.SOURCES
)
async def add_version(
    name: str,
    request: Request,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """New sources -> a new version, built at once. Send the files (or one zip) as multipart `files`
    (optional `meta`: a JSON object of metadata overrides), or JSON `{git: {url, ref}}` or
    `{workspace: {ws, path}}`. Follow the build at `.../versions/{version}/events`."""
    app = service.get(db, principal, name, write=True)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=5000)
        uploads = [f for f in form.getlist("files") if hasattr(f, "file")]
        if not uploads:
            raise Invalid("send the sources as one or more 'files' parts (or one .zip)", code="no_files")
        overrides = await asyncio.to_thread(_json_object, form.get("meta") or "{}")  # parsing: off the loop
        fill, kind = origins.uploaded([(u.filename or "upload", u.file) for u in uploads]), "upload"
    else:
        try:
            data = await asyncio.to_thread(parsing.load_json, await request.body(), "the request body")
            body = VersionCreate.model_validate(data)
        except (ValueError, parsing.DocumentError) as exc:
            raise Invalid(f"expected JSON with 'git' or 'workspace': {exc}", code="bad_body") from None
        overrides = body.meta
        fill, kind = _remote_source(db, settings, principal, body)
    version = await asyncio.to_thread(
        service.add_version, db, settings, principal, app, fill, source_kind=kind, overrides=overrides
    )
    db.commit()
    _queue(request).submit(version.id)
    return VersionRead.of(version)


def _json_object(text: str) -> dict:
    try:
        value = parsing.load_json(text, "'meta'")
    except parsing.DocumentError as exc:
        raise Invalid(exc.message, code="bad_meta") from None
    if not isinstance(value, dict):
        raise Invalid("'meta' must be a JSON object of metadata keys", code="bad_meta")
    return value


def _remote_source(db, settings, principal, body: VersionCreate):
    if body.git:
        return origins.from_git(settings, body.git.url, body.git.ref), "git"
    if body.workspace:
        ws = body.workspace
        return origins.from_workspace(db, settings, principal, ws.ws, ws.path), "workspace"
    raise Invalid("give the sources: multipart 'files', or JSON 'git' or 'workspace'", code="no_sources")


@router.get("/apps/{name}/versions/{version}", response_model=VersionRead)
def get_version(name: str, version: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return VersionRead.of(service.version_of(service.get(db, principal, name), version, principal))


@router.get("/apps/{name}/versions/{version}/logs", response_class=PlainTextResponse)
def build_log(
    name: str,
    version: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    service.version_of(service.get(db, principal, name), version, principal)
    path = service.log_path(settings, name, version)
    return PlainTextResponse(path.read_text(errors="replace") if path.is_file() else "")


@router.get("/apps/{name}/versions/{version}/events", response_class=StreamingResponse)
async def build_events(
    name: str,
    version: str,
    request: Request,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Server-sent events: one `log` event per build log line as it is written, then `built` or `failed`."""
    v = service.version_of(service.get(db, principal, name), version, principal)
    version_id = v.id
    db.close()
    path = service.log_path(settings, name, version)
    sessions = request.app.state.sessions

    def state() -> tuple[str, str]:
        with sessions() as s:
            row = s.get(AppVersion, version_id)
            return (row.state, row.error) if row else ("failed", "deleted")

    async def stream():
        offset, pending = 0, ""
        while True:
            current, error = await asyncio.to_thread(state)
            if path.is_file():
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
                lines = (pending + chunk).split("\n")
                pending = lines.pop()
                for line in lines:
                    yield f"event: log\ndata: {json.dumps(line)}\n\n"
            if current in service.TERMINAL:
                if pending:
                    yield f"event: log\ndata: {json.dumps(pending)}\n\n"
                yield f"event: {current}\ndata: {json.dumps({'state': current, 'error': error})}\n\n"
                return
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.put("/apps/{name}/share", response_model=AppRead)
def share_app(
    name: str, body: ShareBody, principal: Principal = Depends(write), db: Session = Depends(get_db)
):
    app = publish.share(db, principal, name, body.users, body.groups)
    db.commit()
    return AppRead.of(app, principal)


@router.post("/apps/{name}/submit", response_model=AppRead)
def submit_app(
    name: str, body: SubmitBody, principal: Principal = Depends(write), db: Session = Depends(get_db)
):
    app = publish.submit(db, principal, name, body.version)
    db.commit()
    return AppRead.of(app, principal)


@router.post("/apps/{name}/review", response_model=AppRead)
def review_app(
    name: str,
    body: ReviewBody,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    app = publish.review(db, settings, principal, name, body.decision == "approve", body.comment)
    db.commit()
    return AppRead.of(app, principal)


@router.post("/apps/{name}/unpublish", response_model=AppRead)
def unpublish_app(
    name: str,
    body: UnpublishBody | None = None,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Withdraw every published version and any open submission (the app is private again), or with
    `version` only that one."""
    app = publish.unpublish(db, settings, principal, name, body.version if body else None)
    db.commit()
    return AppRead.of(app, principal)


@router.post("/apps/{name}/feature", response_model=AppRead)
def feature_app(
    name: str, body: FeatureBody, principal: Principal = Depends(write), db: Session = Depends(get_db)
):
    app = publish.feature(db, principal, name, body.featured)
    db.commit()
    return AppRead.of(app, principal)


@router.get("/apps/{name}/history", response_model=list[EventRead])
def history(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    rows = service.history(db, service.get(db, principal, name), principal)
    return [EventRead(at=e.at, actor=e.actor, kind=e.kind, version=e.version, detail=e.detail) for e in rows]


@router.get("/apps/{name}/export", response_class=FileResponse)
def export_app(
    name: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """The app as one zip (metadata, sources, build recipe; not the built environment)."""
    app = service.get(db, principal, name, write=True)
    zipped = archive.export(settings, app)  # unnamed: nothing is left behind, whatever happens
    size = os.fstat(zipped.fileno()).st_size

    def chunks():
        while chunk := zipped.read(1 << 20):
            yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}.datalab.zip"',
        },
        background=BackgroundTask(zipped.close),
    )
