"""Firing a trigger: one event, recorded once, queues at most one run.

Exactly once, as schedules do it (schedules.py): the event's row, keyed (trigger, event key) under a unique
constraint, is inserted in the same transaction that queues the run. A second process (another replica's
watcher, or this one after a restart) that reaches the same event fails the insert and rolls back: no
second run. An event that cannot queue a run (its inputs are refused, the chain is too deep, the trigger's
owner may no longer use the pipeline) is recorded too, with the reason, so it is not retried forever and
its owner can see why nothing ran.

Event keys: a file's `file:<ref>@<mtime_ns>:<size>` (a file rewritten later is a new event), a batch's
`batch:<digest of its files' keys>` (its files' own keys recorded beside it, so no file is in two batches),
a webhook call's `hook:<signature>` (its replay is refused), a finished run's `run:<id>`, a test `test:<n>`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Pipeline, PipelineTrigger, TriggerEvent
from datalabs.errors import DatalabsError
from datalabs.pipelines import registry, runs

log = logging.getLogger(__name__)
KEY_MAX = 255


@dataclass(frozen=True)
class Fired:
    event_id: int
    run_id: str | None
    skipped: str


def key_of(text: str) -> str:
    """An event key that fits the column: long ones keep their start and end around a digest."""
    if len(text) <= KEY_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[:100]}~{digest}~{text[-(KEY_MAX - 134) :]}"


def merged(template: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """The trigger's fixed inputs with the event's over them."""
    return {**(template or {}), **(given or {})}


_WITH_RUN_NEEDS = (
    joinedload(PipelineTrigger.owner),
    joinedload(PipelineTrigger.pipeline).selectinload(Pipeline.versions),
)


def fire(
    sessions: sessionmaker[Session],
    settings: Settings,
    trigger_id: int,
    key: str,
    *,
    detail: str = "",
    inputs: dict[str, Any] | None = None,
    triggered: dict[str, Any] | None = None,
    skip: str = "",
    also: tuple[str, ...] = (),
    strict: bool = False,
) -> Fired | None:
    """Record the event `key` of the trigger and queue its run; None if the event was recorded before (or
    the trigger is gone or paused). `skip` records it without a run (the reason). `also` are further keys
    recorded with it (a batch's files). With `strict`, a refused run raises (the webhook's 422) and
    nothing is recorded; otherwise the refusal is recorded as the event's reason."""
    try:
        with transaction(sessions) as db:
            return fire_in(
                db, settings, trigger_id, key, detail=detail, inputs=inputs, triggered=triggered,
                skip=skip, also=also, strict=strict,
            )  # fmt: skip
    except IntegrityError:
        return None  # another watcher, replica or an earlier life of this process fired it


def fire_in(
    db: Session,
    settings: Settings,
    trigger_id: int,
    key: str,
    *,
    detail: str = "",
    inputs: dict[str, Any] | None = None,
    triggered: dict[str, Any] | None = None,
    skip: str = "",
    also: tuple[str, ...] = (),
    strict: bool = False,
) -> Fired | None:
    """As `fire`, in the caller's transaction (which a duplicate makes fail with IntegrityError)."""
    # What the run needs (owner, pipeline, its versions) in one round trip instead of three lazy loads:
    # a watcher fires thousands of files a minute, each in its own transaction.
    trigger = db.get(PipelineTrigger, trigger_id, options=_WITH_RUN_NEEDS)
    if trigger is None or trigger.paused:
        return None
    key = key_of(key)
    event = TriggerEvent(trigger_id=trigger.id, event_key=key, detail=detail[:2000], skipped=skip)
    members = [
        TriggerEvent(trigger_id=trigger.id, event_key=key_of(other), detail=f"in {key}", skipped="")
        for other in also
    ]
    db.add_all([event, *members])
    db.flush()  # the unique (trigger, event key): a second firing of this event stops here
    if not skip:
        try:  # submit checks everything before it adds the run: a refusal leaves nothing to undo
            run = _submit(db, settings, trigger, merged(trigger.inputs, inputs))
        except DatalabsError as exc:
            if strict:
                raise
            event.skipped = exc.message[:2000]
            log.info("trigger %s: event %s started no run: %s", trigger.id, key, exc.message)
        else:
            run.triggered_by = {
                "trigger": trigger.id,
                "kind": trigger.kind,
                "name": trigger.name,
                "event": detail[:500] or key,
                **(triggered or {}),
            }
            for row in (event, *members):
                row.run_id = run.id
    db.flush()
    return Fired(event.id, event.run_id, event.skipped)


def _submit(db: Session, settings: Settings, trigger: PipelineTrigger, inputs: dict[str, Any]):
    """The run, as the trigger's owner: their permissions on the pipeline and the files, their clusters."""
    principal = runs.principal_of(db, trigger.owner)
    pipeline = registry.get_visible(db, principal, trigger.pipeline.name)
    return runs.submit(
        db,
        settings,
        principal,
        pipeline,
        inputs=inputs,
        version=trigger.version or None,
        output_space=trigger.output_space,
    )


def recent(db: Session, trigger: PipelineTrigger, limit: int = 20) -> list[TriggerEvent]:
    """The trigger's last events that are not a batch's member files."""
    return list(
        db.scalars(
            select(TriggerEvent)
            .where(TriggerEvent.trigger_id == trigger.id, ~TriggerEvent.detail.startswith("in batch:"))
            .order_by(TriggerEvent.id.desc())
            .limit(limit)
        )
    )


def seen(db: Session, trigger_id: int) -> set[str]:
    """Every event key the trigger has recorded (the watcher's memory at start)."""
    return set(db.scalars(select(TriggerEvent.event_key).where(TriggerEvent.trigger_id == trigger_id)))


def after_run(db: Session, run_id: str) -> list[dict[str, Any]]:
    """What the end of run `run_id` did to 'run finished' triggers: the runs it started or why not."""
    rows = db.execute(
        select(TriggerEvent, PipelineTrigger)
        .join(PipelineTrigger, PipelineTrigger.id == TriggerEvent.trigger_id)
        .where(TriggerEvent.event_key == f"run:{run_id}")
    ).all()
    return [
        {"trigger": t.id, "pipeline": t.pipeline.name, "run_id": e.run_id, "skipped": e.skipped}
        for e, t in rows
    ]
