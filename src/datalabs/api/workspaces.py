"""Workspaces and their files (DESIGN §6): `ws` is `me` or `team:<name>`.

GET a folder lists it (paginated; `q` searches below it by name; `format=zip` streams it as a zip),
GET a file downloads it (Range supported), PUT uploads a file (streamed, atomic, quota-checked), POST
makes a folder or moves or copies, DELETE removes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ByteSize, Field
from sqlalchemy.orm import Session

from datalabs import limits
from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.config import Settings
from datalabs.deps import get_db, get_settings, scope
from datalabs.errors import Invalid
from datalabs.workspaces import operations, service
from datalabs.workspaces.download import file_response, zip_response
from datalabs.workspaces.paths import Entry, parts_of
from datalabs.workspaces.service import Space, UsageCache
from datalabs.workspaces.upload import upload

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], responses={401: {}, 403: {}})
read, write = scope("files:read"), scope("files:write")
FILES = "/{ws}/files/{path:path}"


class WorkspaceRead(BaseModel):
    id: str
    kind: str
    name: str
    role: str
    writable: bool
    quota: int
    used: int | None = None

    @classmethod
    def of(cls, space: Space, used: int | None = None) -> WorkspaceRead:
        return cls(
            id=space.id,
            kind=space.kind,
            name=space.name,
            role=space.role,
            writable=space.writable,
            quota=space.quota,
            used=used,
        )


class WorkspaceCreate(Strict):
    team: str = Field(min_length=1, max_length=64)
    quota: ByteSize | None = Field(None, description="Bytes or e.g. '500GB' (admins only).")


class EntryRead(BaseModel):
    name: str
    path: str
    type: str
    size: int
    modified: datetime

    @classmethod
    def of(cls, e: Entry) -> EntryRead:
        return cls(
            name=e.name,
            path=e.path,
            type=e.type,
            size=e.size,
            modified=datetime.fromtimestamp(e.modified, UTC),
        )


class FolderRead(BaseModel):
    path: str
    type: str = "dir"
    items: list[EntryRead]
    total: int
    offset: int
    limit: int
    query: str = ""


class FileOp(Strict):
    op: Literal["mkdir", "move", "copy"]
    to: str | None = Field(None, max_length=4096, description="Target path (move, copy).")
    to_ws: str | None = Field(None, max_length=80, description="Target workspace (default: the same).")
    parents: bool = Field(False, description="mkdir: also make missing parent folders.")


def usage(request: Request) -> UsageCache:
    return request.app.state.usage


@router.get("", response_model=list[WorkspaceRead])
async def list_workspaces(
    all: bool = Query(False, description="Admins: every team workspace."),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    cache: UsageCache = Depends(usage),
):
    """Your personal workspace and your teams' workspaces, with quota and usage in bytes."""
    spaces = service.list_spaces(db, settings, principal, everyone=all)
    db.close()
    return [WorkspaceRead.of(s, await to_thread.run_sync(cache.get, s)) for s in spaces]


@router.post("", status_code=201, response_model=WorkspaceRead, responses={404: {}, 409: {}})
def create_workspace(
    body: WorkspaceCreate,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Create a team's workspace (administrators, or the team's owners)."""
    space = service.create_team_workspace(db, settings, principal, body.team, body.quota)
    db.commit()
    return WorkspaceRead.of(space, 0)


@router.get("/{ws}", response_model=WorkspaceRead, responses={404: {}})
async def get_workspace(
    ws: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    cache: UsageCache = Depends(usage),
):
    space = service.resolve(db, settings, principal, ws)
    db.close()
    return WorkspaceRead.of(space, await to_thread.run_sync(cache.get, space))


@router.get(
    FILES,
    response_model=FolderRead,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 404: {}, 416: {}},
)
async def get_path(
    ws: str,
    path: str,
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=10_000),
    q: str = Query("", max_length=200, description="Search names below this folder."),
    format: Literal["", "zip"] = Query("", description="'zip': the folder as a zip archive."),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """A folder's listing, or a file's content (Range supported)."""
    space = service.resolve(db, settings, principal, ws)
    db.close()
    return await browse(space.tree, parts_of(path), request, offset, limit, q, format, space.name)


async def browse(tree, parts, request: Request, offset: int, limit: int, q: str, format: str, label: str):
    """Shared by workspaces and data volumes."""
    entry = await to_thread.run_sync(tree.stat, parts)
    if entry.type == "file":
        if format:
            raise Invalid("only folders can be downloaded as zip", code="not_a_folder")
        return await to_thread.run_sync(file_response, tree, parts, request.headers.get("range"))
    if entry.type != "dir":
        return await to_thread.run_sync(file_response, tree, parts, None)  # refuses links and the like
    if format == "zip":
        return await to_thread.run_sync(zip_response, tree, parts, parts[-1] if parts else label)
    if q:
        found = await to_thread.run_sync(tree.search, parts, q, offset + limit)
        items, total = found[offset:], len(found)
    else:
        listing = await to_thread.run_sync(tree.listdir, parts, offset, limit)
        items, total = listing.entries, listing.total
    return FolderRead(
        path="/".join(parts),
        items=[EntryRead.of(e) for e in items],
        total=total,
        offset=offset,
        limit=limit,
        query=q,
    )


@router.put(
    FILES,
    max_body_size=limits.STREAMED,
    response_model=EntryRead,
    responses={201: {}, 404: {}, 409: {}, 413: {}},
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
async def put_file(
    ws: str,
    path: str,
    request: Request,
    overwrite: bool = Query(True, description="Replace an existing file of that name."),
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    cache: UsageCache = Depends(usage),
):
    """Upload the request body as a file (missing parent folders are made). The file appears under its
    name only once complete; an upload over the quota gets 413 and changes nothing."""
    space = service.resolve(db, settings, principal, ws, write=True)
    db.close()
    parts = parts_of(path)
    length = request.headers.get("content-length", "")
    free = await to_thread.run_sync(cache.free, space)
    done = await upload(
        space.tree,
        parts,
        request.stream(),
        free=free,
        declared=int(length) if length.isdigit() else None,
        fsync=settings.workspaces.fsync,
        overwrite=overwrite,
    )
    cache.add(space, done.added)
    return JSONResponse(
        EntryRead.of(done.entry).model_dump(mode="json"), status_code=201 if done.created else 200
    )


@router.post(FILES, response_model=EntryRead, status_code=201, responses={404: {}, 409: {}, 413: {}})
async def file_op(
    ws: str,
    path: str,
    body: FileOp,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    cache: UsageCache = Depends(usage),
):
    """`mkdir` this path, or `move`/`copy` it `to` another path (in `to_ws`, default this workspace)."""
    space = service.resolve(db, settings, principal, ws, write=True)
    target = service.resolve(db, settings, principal, body.to_ws, write=True) if body.to_ws else space
    db.close()
    parts = parts_of(path)
    entry = await to_thread.run_sync(
        lambda: operations.operate(space, target, parts, body.op, body.to, cache, parents=body.parents)
    )
    return EntryRead.of(entry)


@router.delete(FILES, status_code=204, responses={404: {}})
async def delete_path(
    ws: str,
    path: str,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    cache: UsageCache = Depends(usage),
):
    """Delete a file, or a folder with everything in it."""
    space = service.resolve(db, settings, principal, ws, write=True)
    db.close()
    await to_thread.run_sync(operations.remove, space, parts_of(path), cache)
