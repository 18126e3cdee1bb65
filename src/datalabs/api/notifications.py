"""My notifications: the list (paged, with the unread count) and marking them read. Every query is bound
to the caller, so another user's notice ids change nothing and reveal nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db, scope
from datalabs.notifications import service

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses={401: {}, 403: {}})
read, write = scope("notifications:read"), scope("notifications:write")
MAX_IDS = 1000
NoticeId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # the column's range on every database


class NoticeRead(BaseModel):
    id: int
    text: str
    link: str = Field(description="A path on the platform to look at, or empty.")
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, n) -> NoticeRead:
        return cls(id=n.id, text=n.text, link=n.link, created_at=n.created_at, read_at=n.read_at)


class NoticePage(BaseModel):
    total: int
    unread: int
    items: list[NoticeRead]


class MarkRead(BaseModel):
    ids: list[NoticeId] | None = Field(
        None, max_length=MAX_IDS, description="The notices to mark read; omitted or null: all of mine."
    )


class Marked(BaseModel):
    marked: int = Field(description="How many of my unread notices were marked read.")
    unread: int


@router.get("/notifications", response_model=NoticePage)
def list_notifications(
    limit: int = Query(service.PER_PAGE, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    """My notifications, newest first, and how many are unread."""
    found = service.page(db, principal.user.id, limit=limit, offset=offset)
    return NoticePage(total=found.total, unread=found.unread, items=[NoticeRead.of(n) for n in found.items])


@router.post("/notifications/read", response_model=Marked)
def mark_read(body: MarkRead, principal: Principal = Depends(write), db: Session = Depends(get_db)):
    """Mark all my notifications read, or those of `ids` (ids that are not mine are ignored)."""
    marked = service.mark_read(db, principal.user.id, body.ids)
    db.commit()
    return Marked(marked=marked, unread=service.unread_count(db, principal.user.id))


@router.get("/notices", response_model=list[NoticeRead], deprecated=True)
def notices(principal: Principal = Depends(scope("apps:read")), db: Session = Depends(get_db)):
    """My latest 100 notifications, newest first (the app store's older call: use /notifications)."""
    return [NoticeRead.of(n) for n in service.page(db, principal.user.id, limit=100).items]
