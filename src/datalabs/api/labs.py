"""Labs: launch, list, follow the start (SSE), logs, stop, restart, destroy."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.catalogue.schema import parse_memory
from datalabs.config import Settings
from datalabs.db.models import Lab
from datalabs.deps import get_db, get_settings, scope
from datalabs.labs import origins, service, shares
from datalabs.labs.manager import LabManager

router = APIRouter(prefix="/api/v1/labs", tags=["labs"], responses={401: {}, 403: {}})
read, write = scope("labs:read"), scope("labs:write")


class ResourceRequest(Strict):
    cpu: float | None = Field(None, gt=0, le=256)
    memory: str | None = Field(None, max_length=20, description="e.g. 2G, 512M")
    gpu: int | None = Field(None, ge=0, le=16)

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None:
            parse_memory(v)  # raises ValueError with a clear message
        return v


class LaunchBody(Strict):
    datalab: str = Field(min_length=1, max_length=64)
    version: str | None = Field(None, max_length=64)
    name: str = Field("", max_length=100)
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    volumes: list[str] = Field(default_factory=list, max_length=50)
    cluster: str | None = Field(
        None, max_length=64, description="A cluster of GET /api/v1/clusters (default: the first open to you)."
    )
    team: str | None = Field(
        None,
        max_length=64,
        description="A team-scoped datalab (e.g. mlflow): the team it serves (launching it again answers "
        "the team's running lab). Another datalab: the team whose tracking server it logs to "
        "(MLFLOW_TRACKING_URI; default: the first of your teams with one running).",
    )
    model: str | None = Field(
        None,
        max_length=200,
        description="mlflow-model: the registered model version to serve, models:/<name>/<version> "
        "(from the team's tracking server; called with a token granting models:invoke).",
    )


class LabRead(BaseModel):
    id: str
    name: str
    owner: str
    datalab: str
    version: str
    kind: str
    state: str
    reason: str
    url: str = Field(description="Where a browser opens the lab: its own origin (labs.origin_url).")
    path: str = Field(
        description="The lab's path, `/datalabs/{id}/`; on the platform's address it serves API clients "
        "that send `Authorization: Bearer <token>` (browsers are sent on to `url`)."
    )
    resources: dict
    volumes: list[str]
    cluster: str = Field(description="The cluster it runs on (GET /api/v1/clusters).")
    team: str | None = Field(None, description="A team-scoped lab: the team whose members may use it.")
    model: str | None = Field(None, description="A model-serving lab: the model version it serves.")
    shared: str | None = Field(
        None,
        description="Listed with `shared=true`: the mode (view | collaborate) in which its owner shares "
        "this lab with you; null for your own labs.",
    )
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, lab: Lab, settings: Settings) -> LabRead:
        return cls(
            id=lab.id,
            name=lab.name,
            owner=lab.owner.name,
            datalab=lab.datalab,
            version=lab.version,
            kind=lab.kind,
            state=lab.state,
            reason=lab.reason,
            url=origins.lab_url(settings, lab.id),
            path=f"/datalabs/{lab.id}/",
            resources={"cpu": lab.cpu, "memory": service.memory_text(lab.memory), "gpu": lab.gpu},
            volumes=lab.volumes,
            cluster=lab.cluster,
            team=lab.team,
            model=lab.model,
            created_at=lab.created_at,
            started_at=lab.started_at,
            ended_at=lab.ended_at,
        )


def manager(request: Request) -> LabManager:
    return request.app.state.labs


@router.post("", status_code=202, response_model=LabRead, responses={404: {}, 422: {}, 429: {}})
async def launch(
    body: LaunchBody,
    request: Request,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    labs: LabManager = Depends(manager),
):
    """Launch a datalab; follow its start at `/api/v1/labs/{id}/events`, then open its `url`."""
    req = service.LaunchRequest(
        datalab=body.datalab,
        version=body.version,
        name=body.name,
        cpu=body.resources.cpu,
        memory=body.resources.memory,
        gpu=body.resources.gpu,
        volumes=tuple(body.volumes),
        cluster=body.cluster,
        team=body.team,
        model=body.model,
    )
    lab = service.launch(db, settings, request.app.state.catalogue, labs, principal, req)
    return LabRead.of(lab, settings)


@router.get("", response_model=list[LabRead])
def list_labs(
    all: bool = Query(False, description="Admins: every user's labs."),
    active: bool = Query(False, description="Only labs that are not stopped or failed."),
    shared: bool = Query(
        False,
        description="Instead of your labs: the running labs others share with you (or your teams), "
        "each with its owner and `shared` mode (issue 19).",
    ),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Your labs, then the running team-scoped labs (tracking servers, served models) of your teams
    that other members launched (their `team` names the team; `owner` who launched it)."""
    if shared:
        found = shares.shared_with(db, principal)
        return [LabRead.of(lab, settings).model_copy(update={"shared": mode}) for lab, mode in found]
    found = service.list_for(db, principal, everyone=all, include_ended=not active)
    if not (all and principal.is_admin):  # an administrator's every-lab list has them already
        found += service.team_labs_for(db, principal)
    return [LabRead.of(lab, settings) for lab in found]


@router.get("/{lab_id}", response_model=LabRead, responses={404: {}})
def get_lab(
    lab_id: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    return LabRead.of(service.get(db, principal, lab_id), settings)


@router.get("/{lab_id}/events", response_class=StreamingResponse, responses={404: {}})
async def lab_events(
    lab_id: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    labs: LabManager = Depends(manager),
):
    """Server-sent events: `progress` while starting, then one `ready` or `failed` (with the reason)."""
    lab = service.get(db, principal, lab_id)
    state, reason = lab.state, lab.reason
    db.close()

    async def stream():
        log = labs.events.get(lab_id)
        if state not in ("pending", "starting"):
            outcome = (
                "ready" if state == "running" else "failed" if state in ("failed", "stopped") else "state"
            )
            yield _sse(outcome, {"progress": 100, "message": reason or state, "state": state})
            return
        # Followed here, or (replicas) by the replica that manages labs: its states through the DB.
        events = log.follow() if log is not None else labs.progress_elsewhere(lab_id)
        async for event in events:
            kind = "ready" if event.ready else "failed" if event.failed else "progress"
            yield _sse(kind, {"progress": event.progress, "message": event.message})

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@router.get("/{lab_id}/logs", response_class=PlainTextResponse, responses={404: {}})
def lab_logs(
    lab_id: str,
    tail: int = Query(200, ge=1, le=10_000),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    labs: LabManager = Depends(manager),
):
    return labs.logs(service.get(db, principal, lab_id), tail)


@router.post("/{lab_id}/stop", response_model=LabRead, responses={404: {}})
async def stop_lab(
    lab_id: str,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    labs: LabManager = Depends(manager),
    settings: Settings = Depends(get_settings),
):
    lab = service.get(db, principal, lab_id)
    if lab.state in service.ACTIVE:
        await labs.stop(lab_id, service.stop_reason(principal, lab))
    db.expire_all()
    return LabRead.of(service.get(db, principal, lab_id), settings)


@router.post(
    "/{lab_id}/restart", status_code=202, response_model=LabRead, responses={404: {}, 409: {}, 429: {}}
)
async def restart_lab(
    lab_id: str,
    request: Request,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
    labs: LabManager = Depends(manager),
):
    """Start a stopped or failed lab again as it was launched, under the same id and URL (owner only).
    409 when it is not ended, its version left the catalogue or a volume is no longer allowed."""
    lab = service.restart(db, settings, request.app.state.catalogue, labs, principal, lab_id)
    return LabRead.of(lab, settings)


@router.delete("/{lab_id}", status_code=204, responses={404: {}})
async def destroy_lab(
    lab_id: str,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    labs: LabManager = Depends(manager),
):
    """Stop the lab if needed and remove its record, runtime directory and logs."""
    service.get(db, principal, lab_id)  # authorises (404 for others)
    db.close()
    await labs.destroy(lab_id)
