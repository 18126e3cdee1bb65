"""'Run finished' triggers: when a run of pipeline A ends (succeeded, or failed if the trigger says so),
pipeline B is queued with A's outputs mapped to B's inputs (`config.map`: {B's input: A's output}).

The event key is A's run id, so each end fires each trigger once, whoever reports it (the worker that
finished the run, the one that reaped it). Chains are bounded: a run started by this kind of trigger
carries its depth (1 for the first link); the run that would make a chain longer than
`triggers.max_depth` (a self-loop A -> A included) is not started, and the reason is recorded on the event,
which the finished run's page shows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session, sessionmaker

from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineRun, PipelineTrigger, TriggerEvent
from datalabs.db.types import utcnow
from datalabs.pipelines import trigger_events

log = logging.getLogger(__name__)
FIRES_ON = ("succeeded", "failed")
CATCH_UP = timedelta(hours=6)  # how far back ends are looked at again
GRACE = timedelta(seconds=60)  # ends this recent are their worker's to fire


def after_run(settings: Settings, sessions: sessionmaker[Session], run_id: str) -> list[str]:
    """Fire the triggers waiting for the end of run `run_id`; the ids of the runs queued. Never raises
    (the run's end is recorded already; a trigger's problem is logged, and recorded on its event)."""
    try:
        return _after_run(settings, sessions, run_id)
    except Exception:
        log.exception("triggers: the end of run %s could not fire its triggers", run_id)
        return []


def _after_run(settings: Settings, sessions: sessionmaker[Session], run_id: str) -> list[str]:
    with sessions() as db:
        run = db.get(PipelineRun, run_id)
        if run is None or run.state not in FIRES_ON:
            return []
        waiting = _waiting(db, run)
        depth = _depth(run) + 1
        outputs, state, name = run.outputs or {}, run.state, run.pipeline.name
    queued = []
    for trigger_id, config in waiting:
        if state not in config.get("on", ["succeeded"]):
            continue
        skip = ""
        if depth > settings.triggers.max_depth:
            skip = (
                f"chain depth limit reached: run {run_id} ({name}) is already link {depth - 1} of a chain "
                f"of runs started by 'run finished' triggers, and at most {settings.triggers.max_depth} "
                "are started in a row (triggers.max_depth); this run was not started"
            )
        fired = trigger_events.fire(
            sessions, settings, trigger_id, f"run:{run_id}",
            detail=f"run {run_id} of {name} {state}", inputs=_mapped(config.get("map", {}), outputs),
            triggered={"after_run": run_id, "depth": depth}, skip=skip,
        )  # fmt: skip
        if fired is not None and fired.run_id:
            queued.append(fired.run_id)
    return queued


def catch_up(settings: Settings, sessions: sessionmaker[Session], now: datetime | None = None) -> list[str]:
    """Fire what a worker that died between recording a run's end and firing its triggers left undone: runs
    that ended in the last `CATCH_UP` window (but not in the last `GRACE` seconds, which their worker is
    still handling) whose 'run finished' triggers have no event for them. Run by the watcher's scans."""
    now = now or utcnow()
    with sessions() as db:
        waiting = db.execute(
            select(PipelineTrigger.id, PipelineTrigger.config, PipelineTrigger.owner_id).where(
                PipelineTrigger.kind == "run_finished", PipelineTrigger.paused.is_(False)
            )
        ).all()
        missed: set[str] = set()
        for trigger_id, config, owner_id in waiting:
            fired = select(TriggerEvent.id).where(
                TriggerEvent.trigger_id == trigger_id,
                TriggerEvent.event_key == literal("run:") + PipelineRun.id,
            )
            missed.update(
                db.scalars(
                    select(PipelineRun.id)
                    .join(Pipeline, Pipeline.id == PipelineRun.pipeline_id)
                    .where(
                        Pipeline.name == config.get("after"),
                        PipelineRun.owner_id == owner_id,
                        PipelineRun.state.in_(config.get("on", ["succeeded"])),
                        PipelineRun.ended_at > now - CATCH_UP,
                        PipelineRun.ended_at < now - GRACE,
                        ~fired.exists(),
                    )
                    .limit(1000)
                )
            )
    queued = []
    for run_id in sorted(missed):
        queued += after_run(settings, sessions, run_id)
    return queued


def _waiting(db: Session, run: PipelineRun) -> list[tuple[int, dict[str, Any]]]:
    """Active 'run finished' triggers on `run`'s pipeline whose owner is the run's owner: a user's chain
    follows their own runs only (another user's outputs are not theirs to read)."""
    rows = db.execute(
        select(PipelineTrigger.id, PipelineTrigger.config, PipelineTrigger.owner_id).where(
            PipelineTrigger.kind == "run_finished", PipelineTrigger.paused.is_(False)
        )
    ).all()
    name = db.scalar(select(Pipeline.name).where(Pipeline.id == run.pipeline_id))
    return [(tid, cfg) for tid, cfg, owner in rows if cfg.get("after") == name and owner == run.owner_id]


def _depth(run: PipelineRun) -> int:
    by = run.triggered_by or {}
    depth = by.get("depth", 0) if "after_run" in by else 0
    return depth if isinstance(depth, int) else 0


def _mapped(mapping: dict[str, str], outputs: dict[str, Any]) -> dict[str, Any]:
    """B's inputs from A's outputs: File/Directory objects become the workspace references they carry."""
    return {b: _refs(outputs[a]) for b, a in mapping.items() if a in outputs}


def _refs(value: Any) -> Any:
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        return {"class": value["class"], "location": value.get("location")}
    if isinstance(value, list):
        return [_refs(v) for v in value]
    return value
