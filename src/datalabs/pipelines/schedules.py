"""Cron schedules (croniter, UTC) that create runs with fixed inputs.

Exactly once: every fire inserts a row keyed (schedule, due time) under a unique constraint in the same
transaction that queues the run and advances `next_due`. A second scheduler (another worker, or this one
after a restart) that reaches the same due time fails the insert and rolls back: no second run.

Missed fires (POLICY): when no scheduler ran through several due times, the most recent one fires once
when scheduling resumes; the older ones are recorded as skipped and never run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineSchedule, ScheduleFire
from datalabs.db.types import utcnow
from datalabs.errors import DatalabsError, Invalid
from datalabs.pipelines import owned, placement, registry, runs

log = logging.getLogger(__name__)

POLICY = (
    "Times missed while no scheduler was running are coalesced: when scheduling resumes, the most recent "
    "missed time fires once and older missed times are skipped."
)
MAX_CATCHUP = 10_000  # due times walked to find the latest missed one (a per-minute rule over a week)


def check_cron(cron: str) -> str:
    cron = " ".join((cron or "").split())
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise Invalid(
            f"'{cron}' is not a cron rule: five fields, minute hour day month weekday (e.g. '0 3 * * *')",
            code="bad_cron",
        )
    return cron


def next_after(cron: str, moment: datetime) -> datetime:
    return croniter(cron, moment.astimezone(UTC)).get_next(datetime).astimezone(UTC)


def create(
    db: Session,
    settings: Settings,
    principal: Principal,
    pipeline: Pipeline,
    *,
    cron: str,
    inputs: Any,
    version: str | None = None,
    output_space: str = "me",
    notify: dict | None = None,
    cluster: str | None = None,
    now: datetime | None = None,
) -> PipelineSchedule:
    cron = check_cron(cron)
    runs.prepare_inputs(db, settings, principal, pipeline, version, inputs)  # refuse now, not at 3 a.m.
    runs.check_output_space(db, settings, principal, output_space)
    if cluster is not None:  # checked now; without one, each run goes to the owner's first at its fire
        cluster = placement.cluster_for_run(settings, principal, cluster).name
    schedule = PipelineSchedule(
        pipeline_id=pipeline.id,
        version=version or "",
        owner_id=principal.user.id,
        cron=cron,
        inputs=inputs or {},
        output_space=output_space,
        cluster=cluster or "",
        notify=runs.check_notify(
            notify, settings.pipelines.webhook_allow_networks, mail_server=bool(settings.pipelines.smtp_host)
        ),
        next_due=next_after(cron, now or utcnow()),
    )
    db.add(schedule)
    db.flush()
    return schedule


def list_for(db: Session, principal: Principal, pipeline: Pipeline) -> list[PipelineSchedule]:
    return owned.listed(db, principal, PipelineSchedule, pipeline)


def get(db: Session, principal: Principal, schedule_id: int) -> PipelineSchedule:
    return owned.fetch(db, principal, PipelineSchedule, schedule_id, "schedule")


def delete(db: Session, principal: Principal, schedule_id: int) -> None:
    db.delete(get(db, principal, schedule_id))
    db.flush()


def tick(sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> list[str]:
    """Fire every schedule due at `now` (default: the clock); returns the ids of the runs queued."""
    now = now or utcnow()
    with sessions() as db:
        due = list(
            db.scalars(
                select(PipelineSchedule.id).where(PipelineSchedule.enabled, PipelineSchedule.next_due <= now)
            )
        )
    queued = []
    for schedule_id in due:
        try:
            run_id = _fire(sessions, settings, schedule_id, now)
        except Exception:
            log.exception("schedule %s could not fire", schedule_id)
            continue
        if run_id:
            queued.append(run_id)
    return queued


def _fire(sessions: sessionmaker[Session], settings: Settings, schedule_id: int, now: datetime) -> str | None:
    try:
        with sessions() as db, db.begin():
            schedule = db.get(PipelineSchedule, schedule_id)
            if schedule is None or not schedule.enabled or schedule.next_due > now:
                return None
            first = schedule.next_due
            latest, skipped = _latest_due(schedule.cron, first, now)
            for missed in skipped:
                db.add(ScheduleFire(schedule_id=schedule.id, due_at=missed, skipped=True))
            fire = ScheduleFire(schedule_id=schedule.id, due_at=latest)
            db.add(fire)
            db.flush()  # the unique (schedule, due time) key: a second scheduler stops here
            fire.run_id = _queue_run(db, settings, schedule)
            advanced = db.execute(
                update(PipelineSchedule)
                .where(PipelineSchedule.id == schedule.id, PipelineSchedule.next_due == first)
                .values(next_due=next_after(schedule.cron, now))
            ).rowcount
            if not advanced:
                raise IntegrityError("next_due moved meanwhile", None, Exception())
            return fire.run_id
    except IntegrityError:
        return None  # another scheduler fired this due time


def _latest_due(cron: str, first: datetime, now: datetime) -> tuple[datetime, list[datetime]]:
    """The most recent due time <= now starting at `first`, and the earlier ones that were missed."""
    times = [first]
    it = croniter(cron, first)
    for _ in range(MAX_CATCHUP):
        nxt = it.get_next(datetime).astimezone(UTC)
        if nxt > now:
            break
        times.append(nxt)
    return times[-1], times[:-1][-50:]  # record the last 50 skipped times at most


def _queue_run(db: Session, settings: Settings, schedule: PipelineSchedule) -> str | None:
    principal = runs.principal_of(db, schedule.owner)
    try:
        pipeline = registry.get_visible(db, principal, schedule.pipeline.name)
        run = runs.submit(
            db,
            settings,
            principal,
            pipeline,
            inputs=schedule.inputs,
            version=schedule.version or None,
            output_space=schedule.output_space,
            notify=schedule.notify,
            cluster=schedule.cluster or None,
            schedule_id=schedule.id,
        )
    except DatalabsError as exc:  # e.g. an input file was deleted: the fire is recorded, without a run
        log.warning("schedule %s fired but could not queue a run: %s", schedule.id, exc.message)
        return None
    return run.id


def recent_fires(db: Session, schedule: PipelineSchedule, limit: int = 20) -> list[ScheduleFire]:
    return list(
        db.scalars(
            select(ScheduleFire)
            .where(ScheduleFire.schedule_id == schedule.id)
            .order_by(ScheduleFire.due_at.desc())
            .limit(limit)
        )
    )
