"""Usage: CPU-, GPU- and memory-hours of labs and runs, the caller's own; administrators' anyone's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.deps import get_db, get_settings, scope
from datalabs.usage import report

router = APIRouter(prefix="/api/v1/usage", tags=["usage"], responses={401: {}, 403: {}, 404: {}, 422: {}})


class TotalsRead(BaseModel):
    sessions: int
    hours: float
    cpu_hours: float
    gpu_hours: float
    memory_gb_hours: float


class RowRead(TotalsRead):
    key: str


class SessionRead(BaseModel):
    kind: str
    id: str
    name: str
    user: str
    cluster: str
    start: datetime
    end: datetime | None
    state: str
    cpu: float
    memory: int
    gpu: int
    hours: float
    cpu_hours: float
    gpu_hours: float
    source: str
    slurm_job: str


class UsageRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    by: str
    totals: TotalsRead
    rows: list[RowRead]
    sessions: list[SessionRead]


@router.get("", response_model=UsageRead)
def get_usage(
    from_: date | None = Query(None, alias="from", description="First day (UTC); default: this month's."),
    to: date | None = Query(None, description="Last day, included; default: this month's last."),
    by: Literal["cluster", "datalab", "user", "group", "day"] = Query("cluster"),
    user: str = Query("", max_length=64, description="Administrators: this user's usage."),
    group: str = Query("", max_length=64, description="Administrators: the group's members' usage."),
    all: bool = Query(False, description="Administrators: everyone's usage."),
    principal: Principal = Depends(scope("labs:read")),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> dict:
    period = report.date_period(from_, to)
    found = report.for_principal(db, settings, principal, period, user=user, group=group, everyone=all)
    return {
        "from_": period.start.date(),
        "to": period.days[-1],
        "by": by,
        "totals": found.totals.as_dict(),
        "rows": [{"key": key, **totals.as_dict()} for key, totals in found.by(by)],
        "sessions": [
            {
                "kind": span.kind,
                "id": span.ref,
                "name": span.name,
                "user": span.owner,
                "cluster": span.cluster,
                "start": span.start,
                "end": span.end,
                "state": span.state,
                "cpu": span.cpu,
                "memory": span.memory,
                "gpu": span.gpu,
                "hours": round(hours, 4),
                "cpu_hours": round(span.cpu * hours, 4),
                "gpu_hours": round(span.gpu * hours, 4),
                "source": span.source,
                "slurm_job": span.job_id,
            }
            for span, hours in found.spans
        ],
    }
