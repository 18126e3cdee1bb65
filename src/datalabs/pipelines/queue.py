"""The durable run queue, in the database. Every state change is one conditional UPDATE, so any number of
workers (threads or processes, on SQLite or PostgreSQL) agree on who holds a run:

- claim: the oldest queued run becomes `running`, leased to one worker (`FOR UPDATE SKIP LOCKED` on
  PostgreSQL; SQLite serialises writers, and the UPDATE re-checks `state = 'queued'`);
- heartbeat: the holder extends its lease; if the run is no longer its own (lease expired and re-queued,
  or cancelled) it learns so and stops the execution;
- reap: runs whose lease expired (their worker died, e.g. kill -9) go back to the queue, or fail once
  they used all their attempts: never lost, never held by two live workers;
- finish: only the holder can set the final state.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from datalabs.db.engine import transaction
from datalabs.db.models import PipelineRun
from datalabs.db.types import utcnow
from datalabs.pipelines import finished

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
FINAL = (SUCCEEDED, FAILED, CANCELLED)


def new_run_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Claim:
    run_id: str
    worker: str
    attempt: int


def claim(
    sessions: sessionmaker[Session], worker: str, lease: float, now: datetime | None = None
) -> Claim | None:
    """Lease the oldest ready run to `worker`, or None when the queue is empty."""
    now = now or utcnow()
    with transaction(sessions) as db:
        candidate = (
            select(PipelineRun.id)
            .where(PipelineRun.state == QUEUED)
            .where((PipelineRun.not_before.is_(None)) | (PipelineRun.not_before <= now))
            .order_by(PipelineRun.created_at, PipelineRun.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        run_id = db.scalar(
            update(PipelineRun)
            .where(PipelineRun.id == candidate.scalar_subquery(), PipelineRun.state == QUEUED)
            .values(
                state=RUNNING,
                worker=worker,
                lease_until=now + timedelta(seconds=lease),
                attempts=PipelineRun.attempts + 1,
                started_at=now,
            )
            .returning(PipelineRun.id)
        )
        if run_id is None:
            return None
        attempt = db.scalar(select(PipelineRun.attempts).where(PipelineRun.id == run_id))
    return Claim(run_id, worker, attempt)


def heartbeat(sessions: sessionmaker[Session], c: Claim, lease: float) -> str:
    """Extend the lease. Returns 'ok', 'cancel' (a cancel was asked for) or 'lost' (no longer ours)."""
    with transaction(sessions) as db:
        changed = db.execute(
            update(PipelineRun)
            .where(PipelineRun.id == c.run_id, PipelineRun.worker == c.worker, PipelineRun.state == RUNNING)
            .values(lease_until=utcnow() + timedelta(seconds=lease))
        ).rowcount
        if not changed:
            return "lost"
        wanted = db.scalar(select(PipelineRun.cancel_requested).where(PipelineRun.id == c.run_id))
    return "cancel" if wanted else "ok"


def finish(
    sessions: sessionmaker[Session],
    c: Claim,
    state: str,
    reason: str = "",
    outputs: dict | None = None,
    output_path: str = "",
) -> bool:
    """Set the final state if the run is still ours; False if it is not (nothing is changed then)."""
    values = {"state": state, "reason": reason[:4000], "ended_at": utcnow(), "lease_until": None}
    if outputs is not None:
        values.update(outputs=outputs, output_path=output_path)
    with transaction(sessions) as db:
        done = bool(
            db.execute(
                update(PipelineRun)
                .where(
                    PipelineRun.id == c.run_id, PipelineRun.worker == c.worker, PipelineRun.state == RUNNING
                )
                .values(**values)
            ).rowcount
        )
    if done:
        finished.announce(c.run_id)
    return done


def release(sessions: sessionmaker[Session], c: Claim, reason: str, delay: float = 5.0) -> str:
    """An infrastructure failure: back to the queue (after `delay` s) if attempts remain, else failed."""
    with transaction(sessions) as db:
        run = db.get(PipelineRun, c.run_id)
        if run is None or run.worker != c.worker or run.state != RUNNING:
            return "lost"
        if run.attempts < run.max_attempts and not run.cancel_requested:
            run.state, run.worker, run.lease_until = QUEUED, "", None
            run.not_before = utcnow() + timedelta(seconds=delay)
            run.reason = f"retrying after: {reason}"[:4000]
            return QUEUED
        run.state, run.reason, run.ended_at, run.lease_until = FAILED, reason[:4000], utcnow(), None
    finished.announce(c.run_id)
    return FAILED


def reap(sessions: sessionmaker[Session], now: datetime | None = None) -> list[tuple[str, str]]:
    """Runs whose worker stopped renewing the lease: re-queued or failed. Returns (run id, new state)."""
    now = now or utcnow()
    done = []
    with transaction(sessions) as db:
        expired = db.scalars(
            select(PipelineRun).where(PipelineRun.state == RUNNING, PipelineRun.lease_until < now)
        ).all()
        for run in expired:
            lost = f"worker {run.worker or '?'} stopped answering (attempt {run.attempts})"
            if run.cancel_requested:
                new, reason = CANCELLED, "cancelled (its worker was lost)"
            elif run.attempts < run.max_attempts:
                new, reason = QUEUED, f"re-queued: {lost}"
            else:
                new, reason = FAILED, f"failed: {lost}; no attempts left"
            changed = db.execute(
                update(PipelineRun)
                .where(
                    PipelineRun.id == run.id, PipelineRun.state == RUNNING, PipelineRun.worker == run.worker
                )
                .values(
                    state=new,
                    reason=reason,
                    worker="",
                    lease_until=None,
                    ended_at=None if new == QUEUED else now,
                )
            ).rowcount
            if changed:
                done.append((run.id, new))
    return done


def request_cancel(db: Session, run: PipelineRun) -> None:
    """Queued runs are cancelled at once; running ones are stopped by their worker at its next heartbeat."""
    if run.state == QUEUED:
        changed = db.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run.id, PipelineRun.state == QUEUED)
            .values(
                state=CANCELLED,
                reason="cancelled before it started",
                ended_at=utcnow(),
                cancel_requested=True,
            )
        ).rowcount
        if changed:
            return
    db.execute(update(PipelineRun).where(PipelineRun.id == run.id).values(cancel_requested=True))


def mark_notified(db: Session, run_id: str) -> bool:
    """True once per run: whoever flips the flag decides the notifications (once). In the caller's
    transaction, so what it records about them commits with the flag (pipelines/deliveries.py)."""
    return bool(
        db.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run_id, PipelineRun.notified.is_(False))
            .values(notified=True)
        ).rowcount
    )
