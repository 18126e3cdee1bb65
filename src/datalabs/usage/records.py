"""What was used: each lab session and run as a span of time with its resources and cluster.

A lab session (a launch or restart, to its end) is written to `usage_records` when it ends (`record_end`),
so its usage outlives a restart or a destroy of the lab. On a Slurm cluster the record keeps the job id
and `reconcile` later replaces the platform's times and resources with sacct's (walltime kills
included), once per record, one sacct call per cluster for all records waiting; pages call `refresh`,
which reconciles at most every RECONCILE_EVERY seconds per process, so no view waits on sacct twice.

Running labs, ended labs from before records were kept, and pipeline runs are read from their own rows.
A run counts as one CPU and no GPU for its wall time: the resources of its steps are not recorded."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from datalabs.config import Settings
from datalabs.db.models import Lab, Pipeline, PipelineRun, UsageRecord, User
from datalabs.db.types import utcnow
from datalabs.runtimes.slurm_queue import run_slurm
from datalabs.usage import sacct

log = logging.getLogger(__name__)

ACTIVE = ("pending", "starting", "running", "stopping")  # as labs.service.ACTIVE (no import: a cycle)
RECONCILE_EVERY = 30.0  # seconds between sacct reconciliations of one process
GIVE_UP_AFTER = timedelta(days=7)  # a job sacct never knew (purged, another database): the platform's times


@dataclass(frozen=True)
class Span:
    """One lab session or run: who, what, where, with what, from when to when (end None: still going)."""

    kind: str  # lab | run
    ref: str  # lab or run id
    name: str  # datalab or pipeline name
    owner_id: int
    owner: str
    cluster: str
    cpu: float
    memory: int
    gpu: int
    start: datetime
    end: datetime | None
    state: str
    source: str  # sacct | platform
    job_id: str = ""

    def seconds_between(self, start: datetime, end: datetime, now: datetime) -> float:
        """Seconds of this span within [start, end)."""
        stop = min(self.end or now, end, now)
        return max(0.0, (stop - max(self.start, start)).total_seconds())


# ---- recording --------------------------------------------------------------------------------------


def record_end(db: Session, lab: Lab) -> None:
    """Keep the usage of the lab session that is ending (call as its state becomes stopped or failed,
    before its record may be reused by a restart or deleted). A session that never started is not usage,
    unless Slurm ran its job (sacct will say). Written once per session, in the caller's transaction."""
    job_id = str((lab.runtime_state or {}).get("job_id") or "") if lab.backend == "slurm" else ""
    if lab.started_at is None and not job_id:
        return
    started = lab.started_at or lab.ended_at or utcnow()
    exists = db.scalar(
        select(UsageRecord.id).where(UsageRecord.lab_id == lab.id, UsageRecord.opened_at == started)
    )
    if exists:
        return
    db.add(
        UsageRecord(
            lab_id=lab.id,
            owner_id=lab.owner_id,
            datalab=lab.datalab,
            cluster=lab.cluster,
            backend=lab.backend,
            cpu=lab.cpu,
            memory=lab.memory,
            gpu=lab.gpu,
            opened_at=started,
            started_at=started,
            ended_at=max(lab.ended_at or utcnow(), started),
            state=lab.state,
            job_id=job_id,
            accounted=not job_id,
        )
    )


_last_reconcile = 0.0
_reconcile_lock = threading.Lock()


def refresh(db: Session, settings: Settings) -> None:
    """Reconcile with sacct if this process has not in RECONCILE_EVERY seconds (the pages call this)."""
    global _last_reconcile
    with _reconcile_lock:
        if time.monotonic() - _last_reconcile < RECONCILE_EVERY:
            return
        _last_reconcile = time.monotonic()
    reconcile(db, settings)


def reconcile(db: Session, settings: Settings) -> int:
    """Replace the platform's times and resources of Slurm lab sessions with sacct's once their jobs are
    final; one sacct call per cluster. Returns how many records were accounted; commits them."""
    waiting = list(db.scalars(select(UsageRecord).where(UsageRecord.accounted.is_(False))))
    clusters = {cluster.name: cluster for cluster in settings.clusters}
    done = 0
    for name in sorted({record.cluster for record in waiting}):
        mine = [record for record in waiting if record.cluster == name]
        cluster = clusters.get(name)
        answer = (
            _ask_sacct(cluster.options.slurm_conf, mine) if cluster and cluster.backend == "slurm" else {}
        )
        for record in mine:
            row = answer.get(record.job_id)
            if row is not None and row.final:
                began = row.start or row.end  # never ran (cancelled while queued): no time used
                record.started_at, record.ended_at = began, began + row.elapsed
                record.state, record.accounted = row.state, True
                record.cpu, record.gpu = row.cpu or record.cpu, row.gpu
                record.memory = row.memory or record.memory
                done += 1
            elif utcnow() - record.ended_at > GIVE_UP_AFTER:
                record.accounted = True  # Slurm will not say: the platform's times stand
    db.commit()
    return done


def _ask_sacct(slurm_conf: str, records: list[UsageRecord]) -> dict[str, sacct.Accounted]:
    try:
        argv = sacct.command([record.job_id for record in records])
    except ValueError:
        return {}
    rc, out, err = asyncio.run(run_slurm(slurm_conf, *argv))
    if rc != 0:
        log.warning("usage: sacct failed (%s): %s", rc, err.strip()[:500])
        return {}
    return sacct.parse(out)


# ---- reading ----------------------------------------------------------------------------------------


def spans(
    db: Session, start: datetime, end: datetime, *, owner_ids: list[int] | None = None, cluster: str = ""
) -> list[Span]:
    """Every lab session and run overlapping [start, end), of `owner_ids` (None: everyone), on `cluster`
    ("" : every cluster)."""
    names = dict(db.execute(select(User.id, User.name)).all())
    found = _recorded(db, start, end, owner_ids, cluster, names)
    found += _labs(db, start, end, owner_ids, cluster, names)
    found += _runs(db, start, end, owner_ids, cluster, names)
    return sorted(found, key=lambda span: span.start)


def _recorded(db, start, end, owner_ids, cluster, names) -> list[Span]:
    query = select(UsageRecord).where(UsageRecord.started_at < end, UsageRecord.ended_at > start)
    if owner_ids is not None:
        query = query.where(UsageRecord.owner_id.in_(owner_ids))
    if cluster:
        query = query.where(UsageRecord.cluster == cluster)
    return [
        Span(
            kind="lab",
            ref=r.lab_id,
            name=r.datalab,
            owner_id=r.owner_id,
            owner=names.get(r.owner_id, "?"),
            cluster=r.cluster,
            cpu=r.cpu,
            memory=r.memory,
            gpu=r.gpu,
            start=r.started_at,
            end=r.ended_at,
            state=r.state,
            source="sacct" if r.job_id and r.accounted else "platform",
            job_id=r.job_id,
        )
        for r in db.scalars(query)
    ]


def _labs(db, start, end, owner_ids, cluster, names) -> list[Span]:
    """Labs that run now, and ended labs without any record (ended before records were kept: since, every
    session of a lab is recorded as it ends)."""
    recorded = select(UsageRecord.id).where(UsageRecord.lab_id == Lab.id).exists()
    query = select(Lab).where(
        Lab.started_at.is_not(None),
        Lab.started_at < end,
        or_(Lab.state.in_(ACTIVE), and_(Lab.ended_at.is_not(None), Lab.ended_at > start, ~recorded)),
    )
    if owner_ids is not None:
        query = query.where(Lab.owner_id.in_(owner_ids))
    if cluster:
        query = query.where(Lab.cluster == cluster)
    return [
        Span(
            kind="lab",
            ref=lab.id,
            name=lab.datalab,
            owner_id=lab.owner_id,
            owner=names.get(lab.owner_id, "?"),
            cluster=lab.cluster,
            cpu=lab.cpu,
            memory=lab.memory,
            gpu=lab.gpu,
            start=lab.started_at,
            end=None if lab.state in ACTIVE else lab.ended_at,
            state=lab.state,
            source="platform",
            job_id=str((lab.runtime_state or {}).get("job_id") or ""),
        )
        for lab in db.scalars(query)
    ]


def _runs(db, start, end, owner_ids, cluster, names) -> list[Span]:
    query = (
        select(PipelineRun, Pipeline.name)
        .join(Pipeline, Pipeline.id == PipelineRun.pipeline_id)
        .where(
            PipelineRun.started_at.is_not(None),
            PipelineRun.started_at < end,
            or_(PipelineRun.ended_at.is_(None), PipelineRun.ended_at > start),
        )
    )
    if owner_ids is not None:
        query = query.where(PipelineRun.owner_id.in_(owner_ids))
    if cluster:
        query = query.where(PipelineRun.cluster == cluster)
    return [
        Span(
            kind="run",
            ref=run.id,
            name=pipeline,
            owner_id=run.owner_id,
            owner=names.get(run.owner_id, "?"),
            cluster=run.cluster,
            cpu=1.0,
            memory=0,
            gpu=0,
            start=run.started_at,
            end=run.ended_at if run.state not in ("queued", "running") else None,
            state=run.state,
            source="platform",
        )
        for run, pipeline in db.execute(query)
    ]
