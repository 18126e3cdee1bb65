"""Triggers: list and create on a pipeline, read, pause/resume (PATCH), delete, test; and the incoming
webhook `POST /api/v1/triggers/{id}/hook`, which takes no login: the trigger's secret signs the call
(pipelines/trigger_hooks.py states the scheme)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as FastPath
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.config import Settings
from datalabs.db.models import PipelineTrigger
from datalabs.deps import get_db, get_settings, scope
from datalabs.errors import TooLarge
from datalabs.pipelines import registry, trigger_events, trigger_hooks, trigger_watch, triggers

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses={401: {}, 403: {}})
read, write = scope("pipelines:read"), scope("pipelines:write")
TRIGGER_ID = FastPath(ge=1, le=2**31 - 1)
HOOK_LIMIT = 1 << 20  # the route's hard ceiling; triggers.hook_body (64 KiB default) is checked inside


class TriggerCreate(Strict):
    kind: Literal["new_data", "webhook", "run_finished"]
    name: str = Field("", max_length=100)
    config: dict[str, Any] = Field(default_factory=dict, description="See the kind (pipelines/triggers.py).")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Fixed inputs of every run it starts.")
    version: str | None = Field(None, max_length=64, description="Empty: the newest version at each fire.")
    output_dir: str = Field("me", max_length=100)


class TriggerUpdate(Strict):
    paused: bool


class TriggerTest(Strict):
    inputs: dict[str, Any] = Field(default_factory=dict)
    file: str = Field("", max_length=4096, description="new_data: the file to fire with, e.g. me/in/x.rnx")


class EventRead(BaseModel):
    key: str
    detail: str
    run_id: str | None
    skipped: str
    at: datetime


class TriggerRead(BaseModel):
    id: int
    pipeline: str
    version: str
    owner: str
    kind: str
    name: str
    config: dict[str, Any]
    inputs: dict[str, Any]
    output_dir: str
    paused: bool
    created_at: datetime
    hook_url: str | None = Field(None, description="webhook: where to POST (signed).")
    secret: str | None = Field(None, description="webhook: the signing secret, in the answer to create only.")
    events: list[EventRead] = Field(default_factory=list)

    @classmethod
    def of(cls, t: PipelineTrigger, db: Session | None = None, secret: str = "") -> TriggerRead:
        events = trigger_events.recent(db, t) if db is not None else []
        return cls(
            id=t.id,
            pipeline=t.pipeline.name,
            version=t.version,
            owner=t.owner.name,
            kind=t.kind,
            name=t.name,
            config=t.config,
            inputs=t.inputs,
            output_dir=t.output_space,
            paused=t.paused,
            created_at=t.created_at,
            hook_url=f"/api/v1/triggers/{t.id}/hook" if t.kind == "webhook" else None,
            secret=secret or None,
            events=[
                EventRead(
                    key=e.event_key, detail=e.detail, run_id=e.run_id, skipped=e.skipped, at=e.created_at
                )
                for e in events
            ],  # fmt: skip
        )


class Fired(BaseModel):
    run_id: str | None
    skipped: str


@router.get("/pipelines/{name}/triggers", response_model=list[TriggerRead], responses={404: {}})
def list_triggers(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    pipeline = registry.get_visible(db, principal, name)
    return [TriggerRead.of(t) for t in triggers.list_for(db, principal, pipeline)]


@router.post("/pipelines/{name}/triggers", status_code=201, response_model=TriggerRead, responses={404: {}})
def create_trigger(
    name: str,
    body: TriggerCreate,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """A webhook trigger's answer carries its secret, this once."""
    pipeline = registry.get_visible(db, principal, name)
    trigger, secret = triggers.create(
        db, settings, principal, pipeline, kind=body.kind, config=body.config, inputs=body.inputs,
        version=body.version, name=body.name, output_space=body.output_dir,
    )  # fmt: skip
    db.commit()
    trigger_watch.wake()  # its folder watched and its search looked at now, not at the next scan
    return TriggerRead.of(trigger, secret=secret)


@router.get("/triggers/{trigger_id}", response_model=TriggerRead, responses={404: {}})
def get_trigger(
    trigger_id: int = TRIGGER_ID, principal: Principal = Depends(read), db: Session = Depends(get_db)
):
    return TriggerRead.of(triggers.get(db, principal, trigger_id), db)


@router.patch("/triggers/{trigger_id}", response_model=TriggerRead, responses={404: {}})
def update_trigger(
    body: TriggerUpdate,
    trigger_id: int = TRIGGER_ID,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
):
    """Pause ({"paused": true}) or resume: a resumed trigger fires for what happens from then on."""
    change = triggers.pause if body.paused else triggers.resume
    trigger = change(db, principal, trigger_id)
    db.commit()
    if not body.paused:
        trigger_watch.wake()
    return TriggerRead.of(trigger, db)


@router.delete("/triggers/{trigger_id}", status_code=204, responses={404: {}})
def delete_trigger(
    trigger_id: int = TRIGGER_ID, principal: Principal = Depends(write), db: Session = Depends(get_db)
):
    triggers.delete(db, principal, trigger_id)
    db.commit()


@router.post("/triggers/{trigger_id}/test", status_code=202, response_model=Fired, responses={404: {}})
def test_trigger(
    body: TriggerTest,
    request: Request,
    trigger_id: int = TRIGGER_ID,
    principal: Principal = Depends(write),
    settings: Settings = Depends(get_settings),
):
    """Fire now with these inputs (or this file), as the event would; the run is queued at once."""
    fired = triggers.test(request.app.state.sessions, settings, principal, trigger_id, body.inputs, body.file)
    _wake(request)
    return Fired(run_id=fired.run_id, skipped=fired.skipped)


@router.post(
    "/triggers/{trigger_id}/hook",
    status_code=202,
    response_model=Fired,
    max_body_size=HOOK_LIMIT,
    responses={404: {}, 409: {}, 413: {}, 422: {}},
)
async def hook(
    request: Request,
    trigger_id: int = TRIGGER_ID,
    x_datalabs_timestamp: str | None = Header(None, max_length=20),
    x_datalabs_signature: str | None = Header(None, max_length=100),
    settings: Settings = Depends(get_settings),
):
    """An external system's signed call (no login): X-Datalabs-Timestamp and X-Datalabs-Signature =
    sha256=HMAC-SHA256(secret, "<timestamp>.<body>"), body {"inputs": {...}}. Refused 401 when the
    signature, the timestamp (±5 min) or a replay is wrong; 413 over the size limit; 422 bad inputs."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.triggers.hook_body:
            raise TooLarge(f"a webhook's body is at most {settings.triggers.hook_body} bytes")
    fired = await asyncio.to_thread(
        trigger_hooks.receive, request.app.state.sessions, settings, trigger_id,
        x_datalabs_timestamp, x_datalabs_signature, bytes(body),
    )  # fmt: skip
    _wake(request)
    return Fired(run_id=fired.run_id, skipped=fired.skipped)


def _wake(request: Request) -> None:
    if (worker := getattr(request.app.state, "pipeline_worker", None)) is not None:
        worker.wake()
