"""Sharing a running lab (issue 19): its owner opens it to a user or a team, view or collaborate.

Only the lab's owner sees or changes its shares; anyone else (administrators and team members included)
gets 404 `lab_not_found`, exactly as for a lab that does not exist. The rules live in `labs.shares`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.db.models import LabShare
from datalabs.deps import get_db, scope
from datalabs.labs import shares

router = APIRouter(prefix="/api/v1/labs", tags=["labs"], responses={401: {}, 403: {}, 404: {}})
read, write = scope("labs:read"), scope("labs:write")
Grantee = Path(
    min_length=1,
    max_length=70,
    description="A user name, or `team:<name>` for every member of that team.",
)


class ShareSet(Strict):
    mode: Literal["view", "collaborate"] = Field(
        description="`view`: the guest sees the lab, read only. `collaborate`: the guest also edits and "
        "runs code, as the owner, inside that lab."
    )


class ShareRead(BaseModel):
    lab_id: str
    grantee: str
    mode: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, found: LabShare) -> ShareRead:
        return cls(
            lab_id=found.lab_id,
            grantee=found.grantee,
            mode=found.mode,
            created_by=found.created_by,
            created_at=found.created_at,
        )


@router.get("/{lab_id}/shares", response_model=list[ShareRead])
def list_shares(lab_id: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    """The owner's lab's shares, by grantee."""
    return [ShareRead.of(s) for s in shares.list_shares(db, principal, lab_id)]


class GuestRead(BaseModel):
    user: str
    mode: str
    since: datetime


@router.get("/{lab_id}/guests", response_model=list[GuestRead])
def list_guests(
    lab_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
):
    """Who is connected to the owner's lab through a share right now (open WebSockets: Jupyter kernels,
    desktops), oldest first, as this replica's proxy sees them (behind several replicas: the one that
    answers)."""
    shares.list_shares(db, principal, lab_id)  # the owner's lab, or 404 as for none
    connected = request.app.state.proxy.guests.connected(lab_id)
    return [
        GuestRead(user=g.user, mode=g.mode, since=datetime.fromtimestamp(g.since, UTC)) for g in connected
    ]


@router.put("/{lab_id}/shares/{grantee}", response_model=ShareRead, responses={409: {}, 422: {}})
def put_share(
    lab_id: str,
    body: ShareSet,
    grantee: str = Grantee,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
):
    """Share the caller's running lab with `grantee` in `mode`; sharing again changes the mode.
    409 for a lab that is not running or a team-scoped lab (already open to its team); 404 for an unknown
    user or team; 422 for sharing with oneself."""
    return ShareRead.of(shares.share(db, principal, lab_id, grantee, body.mode))


@router.delete("/{lab_id}/shares/{grantee}", status_code=204)
def delete_share(
    lab_id: str,
    grantee: str = Grantee,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
):
    """Revoke a share; the guest's next request to the lab is refused (404) within a couple of seconds."""
    shares.unshare(db, principal, lab_id, grantee)
