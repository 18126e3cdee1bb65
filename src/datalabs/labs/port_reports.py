"""A Slurm lab's port report (runtimes/slurm_port.py) that reaches a replica which does not follow the
lab's start: checked there as the following process would (the token against the start's digest saved
in the lab's runtime state, bound to its job, the cluster's port range, one report per start), kept in
the database, and handed to the start by the manager replica at its next round."""

from __future__ import annotations

import hashlib
import hmac

from anyio import to_thread
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from datalabs.clusters.settings import port_bounds
from datalabs.config import Settings
from datalabs.db.models import Lab, LabPortReport
from datalabs.runtimes import slurm_port
from datalabs.runtimes.slurm_port import CallbackRefused

_NOTHING = "0" * 64  # compared against when nothing is expected: the same work either way
ALREADY = "this start of the lab has reported its port already"


def check(db: Session, lab_id: str, token: str) -> Lab:
    """The lab, if `token` is its current start's (compared in constant time); CallbackRefused (403) if
    it is not, or no start of the lab waits for a port."""
    lab = db.get(Lab, lab_id)
    state = (lab.runtime_state or {}) if lab is not None and lab.state == "starting" else {}
    expected = str(state.get("callback") or "")
    presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
    matches = hmac.compare_digest(expected or _NOTHING, presented)
    if not (matches and expected and state.get("job_id")):
        raise CallbackRefused(403, "forbidden", "not a valid callback token for this lab")
    return lab


def accept(db: Session, settings: Settings, lab_id: str, token: str, port: int) -> None:
    """Keep `port` for the lab's current start if `token` is that start's; CallbackRefused otherwise (403
    as `check`, 409 reported already, 422 outside the cluster's ports)."""
    lab = check(db, lab_id, token)
    state = lab.runtime_state
    if state.get("port") is not None:
        raise CallbackRefused(409, "conflict", ALREADY)
    cluster = next((c for c in settings.clusters if c.name == lab.cluster), None)
    low, high = (port_bounds(cluster.options.port_range) if cluster is not None else None) or (1, 65535)
    if not low <= port <= high:
        raise CallbackRefused(422, "invalid", f"port {port} is outside the cluster's ports {low}-{high}")
    db.add(LabPortReport(lab_id=lab_id, digest=state["callback"], job_id=str(state["job_id"]), port=port))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise CallbackRefused(409, "conflict", ALREADY) from None


async def hand_over(sessions: sessionmaker[Session]) -> int:
    """The manager's round: give each kept report to the start it belongs to, if this process follows
    it; reports of starts nobody follows any more go. Returns how many were taken."""

    def run() -> int:
        taken, done = 0, []
        callbacks = slurm_port.CALLBACKS
        with sessions() as db:
            for report in db.scalars(select(LabPortReport)).all():
                lab = db.get(Lab, report.lab_id)
                if callbacks.take_reported(report.lab_id, report.digest, report.job_id, report.port):
                    taken += 1
                    done.append(report.lab_id)
                elif lab is None or lab.state != "starting" or not callbacks.expects(report.lab_id):
                    done.append(report.lab_id)  # spent, or for a start that is over
            if done:
                db.execute(delete(LabPortReport).where(LabPortReport.lab_id.in_(done)))
                db.commit()
        return taken

    return await to_thread.run_sync(run)
