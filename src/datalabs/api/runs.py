"""Runs: list, details, logs (plain or streamed as server-sent events), outputs, cancel."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import PipelineRun
from datalabs.deps import get_db, get_settings, scope
from datalabs.pipelines import finished, queue, runs, trigger_events

router = APIRouter(prefix="/api/v1/runs", tags=["pipelines"], responses={401: {}, 403: {}})
read, write = scope("pipelines:read"), scope("pipelines:write")


class RunRead(BaseModel):
    id: str
    pipeline: str
    version: str
    owner: str
    engine: str
    cluster: str
    state: str
    reason: str
    inputs: dict[str, Any]
    output_dir: str
    outputs: dict[str, Any] | None
    notify: dict[str, Any]
    attempts: int
    timeout: int
    cancel_requested: bool
    schedule_id: int | None
    triggered_by: dict[str, Any] | None = Field(
        None, description="The trigger and event that started the run: {trigger, kind, name, event, ...}."
    )
    tracking_team: str | None = Field(
        None, description="The team whose tracking server its tools log to, when named at submit."
    )
    triggers_after: list[dict[str, Any]] = Field(
        default_factory=list,
        description="(One run) what its end did to 'run finished' triggers: the run started, or why not.",
    )
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def detail(cls, db: Session, run: PipelineRun) -> RunRead:
        read = cls.of(run)
        read.triggers_after = trigger_events.after_run(db, run.id) if run.state in queue.FINAL else []
        return read

    @classmethod
    def of(cls, run: PipelineRun) -> RunRead:
        return cls(
            id=run.id,
            pipeline=run.pipeline.name,
            version=run.version.version,
            owner=run.owner.name,
            engine=run.engine,
            cluster=run.cluster,
            state=run.state,
            reason=run.reason,
            inputs=run.inputs,
            output_dir=run.output_path,
            outputs=run.outputs,
            notify=run.notify,
            attempts=run.attempts,
            timeout=run.timeout,
            cancel_requested=run.cancel_requested,
            schedule_id=run.schedule_id,
            triggered_by=run.triggered_by,
            tracking_team=run.tracking_team,
            created_at=run.created_at,
            started_at=run.started_at,
            ended_at=run.ended_at,
        )


@router.get("", response_model=list[RunRead])
def list_runs(
    pipeline: str = Query("", max_length=64),
    state: str = Query("", pattern="^(|queued|running|succeeded|failed|cancelled)$"),
    all: bool = Query(False, description="Admins: every user's runs."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    found = runs.list_for(
        db, principal, pipeline=pipeline, state=state, everyone=all, limit=limit, offset=offset
    )
    return [RunRead.of(r) for r in found]


@router.get("/{run_id}", response_model=RunRead, responses={404: {}})
async def get_run(
    run_id: str,
    request: Request,
    wait: float = Query(0, ge=0, le=60, description="Seconds to wait for the run to end before answering."),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    """The run; with `wait`, answered as soon as the run ends (or after `wait` seconds): a client follows a
    run with one request instead of polling."""
    if wait <= 0:
        return await asyncio.to_thread(lambda: RunRead.detail(db, runs.get(db, principal, run_id)))
    with finished.Waiter(run_id) as waiter:
        info = await asyncio.to_thread(lambda: RunRead.detail(db, runs.get(db, principal, run_id)))
        db.close()
        sessions = request.app.state.sessions
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait

        def look() -> RunRead:
            with sessions() as fresh:
                return RunRead.detail(fresh, runs.get(fresh, principal, run_id))

        while info.state not in queue.FINAL and (left := deadline - loop.time()) > 0:
            await waiter.wait(min(left, finished.RECHECK))
            info = await asyncio.to_thread(look)
    return info


@router.get("/{run_id}/outputs", responses={404: {}})
def get_outputs(run_id: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    """The CWL output object; file locations are workspace references (e.g. me/pipelines/x/<run>/out.txt)."""
    run = runs.get(db, principal, run_id)
    return {"state": run.state, "output_dir": run.output_path, "outputs": run.outputs or {}}


@router.get("/{run_id}/logs", responses={404: {}})
async def get_logs(
    run_id: str,
    request: Request,
    follow: bool = Query(False, description="Stream as server-sent events until the run ends."),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """The run's log (engine messages and the tools' stdout/stderr), kept after the run."""
    run = runs.get(db, principal, run_id)
    if not follow:
        return PlainTextResponse(runs.read_log(settings, run, offset).decode(errors="replace"))
    db.close()
    sessions = request.app.state.sessions

    async def stream():
        pos = offset
        while True:
            chunk = await asyncio.to_thread(runs.read_log, settings, run, pos)
            if chunk:
                pos += len(chunk)
                yield _sse("log", {"text": chunk.decode(errors="replace"), "offset": pos})
                continue
            state, reason = await asyncio.to_thread(_state, sessions, run_id)
            if state in queue.FINAL:
                tail = await asyncio.to_thread(runs.read_log, settings, run, pos)
                if tail:
                    yield _sse("log", {"text": tail.decode(errors="replace"), "offset": pos + len(tail)})
                yield _sse("end", {"state": state, "reason": reason})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.3)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _state(sessions, run_id: str) -> tuple[str, str]:
    with sessions() as db:
        run = db.get(PipelineRun, run_id)
        return (run.state, run.reason) if run else ("failed", "deleted")


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


@router.post("/{run_id}/cancel", response_model=RunRead, responses={404: {}})
def cancel_run(run_id: str, principal: Principal = Depends(write), db: Session = Depends(get_db)):
    """Queued runs are cancelled at once; running ones within a heartbeat (a few seconds)."""
    run = runs.get(db, principal, run_id)
    runs.cancel(db, run)
    db.commit()
    db.refresh(run)
    return RunRead.of(run)
