"""A Slurm lab's job reports the port it serves the lab on (clusters with endpoint "port", slurm_port.py).

Not a user's route: no session and no API token opens it, only the job's single-use token for this start
of this lab. The body is `{"port": N}` and nothing else; any other field (a "host" above all: the host is
the one Slurm runs the job on) is refused, as is a port outside 1024-65535. The token is checked before
the body's fields are looked at, so a caller without it learns nothing about what the route would take.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session

from datalabs.config import Settings
from datalabs.deps import get_db, get_settings
from datalabs.errors import DatalabsError, Unauthorized
from datalabs.labs import port_reports
from datalabs.runtimes import slurm_port

router = APIRouter(prefix="/api/v1/labs", tags=["labs"], responses={401: {}, 403: {}})
CALLBACK_BODY = 1024  # bytes: `{"port": 65535}` is 15


class PortReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: StrictInt = Field(ge=1024, le=65535, description="The TCP port the lab's job listens on.")


class _Refused(DatalabsError):
    def __init__(self, refused: slurm_port.CallbackRefused) -> None:
        super().__init__(refused.message, code=refused.code)
        self.status = refused.status


def job_token(
    lab_id: str = Path(max_length=64),
    authorization: str | None = Header(None),
    db: Session = Depends(get_db),
) -> str:
    """The job's token from `Authorization: Bearer ...`, checked for this lab (401 without one, 403 if it
    is not this start's): by this process if it follows the start, else against the start's saved digest."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a lab's callback takes its job's token (Authorization: Bearer ...)")
    try:
        if slurm_port.CALLBACKS.expects(lab_id):
            slurm_port.CALLBACKS.check(lab_id, token.strip())
        else:
            port_reports.check(db, lab_id, token.strip())
    except slurm_port.CallbackRefused as exc:
        raise _Refused(exc) from None
    return token.strip()


@router.post("/{lab_id}/callback", status_code=204, max_body_size=CALLBACK_BODY)
def report_port(
    body: PortReport,
    lab_id: str = Path(max_length=64),
    token: str = Depends(job_token),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> None:
    """Take the port: here, if this process follows the lab's start, else (replicas) kept in the DB for the
    manager replica (labs/port_reports.py)."""
    try:
        if slurm_port.CALLBACKS.expects(lab_id):
            slurm_port.accept_port(lab_id, token, body.port)
        else:
            port_reports.accept(db, settings, lab_id, token, body.port)
    except slurm_port.CallbackRefused as exc:
        raise _Refused(exc) from None
