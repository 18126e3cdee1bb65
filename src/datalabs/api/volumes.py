"""Data volumes: list those available to you and browse or download their files (read-only);
administrators register and remove them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.api.workspaces import FolderRead, browse
from datalabs.config import Settings
from datalabs.db.models import Volume
from datalabs.deps import get_db, get_settings, scope
from datalabs.volumes import service
from datalabs.workspaces.paths import parts_of

router = APIRouter(prefix="/api/v1/volumes", tags=["volumes"], responses={401: {}, 403: {}})
read, write = scope("volumes:read"), scope("volumes:write")


def admin_write(principal: Principal = Depends(write)) -> Principal:
    principal.require_admin()
    return principal


class VolumeCreate(Strict):
    name: str = Field(min_length=1, max_length=64, description="e.g. PlanckPublic")
    host_path: str = Field(min_length=1, max_length=4096, description="Absolute folder on the server.")
    description: str = Field("", max_length=4000)
    allowed_groups: list[str] = Field(default_factory=list, max_length=100, description="Empty: everyone.")
    mission: list[str] = Field(default_factory=list, max_length=50)
    domain: str = Field("", max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=50)


class VolumeRead(BaseModel):
    name: str
    description: str
    allowed_groups: list[str]
    mission: list[str]
    domain: str
    tags: list[str]
    mount_path: str
    host_path: str | None = Field(None, description="Shown to administrators only.")
    created_at: datetime

    @classmethod
    def of(cls, v: Volume, principal: Principal) -> VolumeRead:
        return cls(
            name=v.name,
            description=v.description,
            allowed_groups=v.allowed_groups,
            mission=v.mission,
            domain=v.domain,
            tags=v.tags,
            mount_path=f"{service.MOUNT_ROOT}/{v.name}",
            host_path=v.host_path if principal.is_admin else None,
            created_at=v.created_at,
        )


@router.get("", response_model=list[VolumeRead])
def list_volumes(principal: Principal = Depends(read), db: Session = Depends(get_db)):
    """The data volumes you may mount into your labs."""
    return [VolumeRead.of(v, principal) for v in service.list_visible(db, principal)]


@router.post("", status_code=201, response_model=VolumeRead, responses={409: {}, 422: {}})
def create_volume(
    body: VolumeCreate,
    principal: Principal = Depends(admin_write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Register a host folder as a read-only data volume (administrators)."""
    volume = service.create(db, settings, principal, **body.model_dump())
    db.commit()
    return VolumeRead.of(volume, principal)


@router.get("/{name}", response_model=VolumeRead, responses={404: {}})
def get_volume(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return VolumeRead.of(service.get_visible(db, principal, name), principal)


@router.delete("/{name}", status_code=204, responses={404: {}})
def delete_volume(name: str, _: Principal = Depends(admin_write), db: Session = Depends(get_db)):
    """Unregister a volume (its files stay where they are)."""
    service.delete(db, name)
    db.commit()


class HarvestRead(BaseModel):
    """A volume's last or current harvest into the asset index. Times are Unix seconds."""

    volume: str
    state: Literal["never", "queued", "running", "done", "failed", "interrupted"]
    active: bool
    requested_by: str
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    done: int = Field(description="New or changed files read so far.")
    todo: int | None = Field(description="New or changed files to read (null until the volume is walked).")
    seen: int
    added: int
    updated: int
    unchanged: int
    removed: int
    error_count: int
    errors: list[tuple[str, str]] = Field(description="(path, reason) of files that could not be read.")
    message: str


@router.post("/{name}/harvest", status_code=202, response_model=HarvestRead, responses={404: {}, 409: {}})
def index_volume(
    name: str, request: Request, principal: Principal = Depends(admin_write), db: Session = Depends(get_db)
):
    """Harvest the volume into the asset index now (administrators): only new or changed files are read.
    Follow it with GET; 409 while one is queued or running."""
    return service.index_now(db, principal, request.app.state.indexer, name).as_dict()


@router.get("/{name}/harvest", response_model=HarvestRead, responses={404: {}})
def volume_harvest(
    name: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
):
    """The volume's last or current harvest: progress, counts and the files that could not be read
    (administrators)."""
    return service.indexing(db, principal, request.app.state.indexer, name).as_dict()


@router.get(
    "/{name}/files/{path:path}",
    response_model=FolderRead,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 404: {}, 416: {}},
)
async def browse_volume(
    name: str,
    path: str,
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=10_000),
    q: str = Query("", max_length=200),
    format: Literal["", "zip"] = Query(""),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    """A folder's listing or a file's content (Range supported) in a data volume."""
    volume = service.get_visible(db, principal, name)
    tree = service.tree(volume)
    db.close()
    return await browse(tree, parts_of(path), request, offset, limit, q, format, volume.name)
