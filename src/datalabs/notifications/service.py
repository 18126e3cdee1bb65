"""Notices: short messages the platform leaves one user (a run ended, a review was decided, a workspace
is nearly full, a lab was stopped), with a link to where to look.

Every service that tells a user something writes through `add`; readers get only their own notices:
each query is bound to the caller's user id, so an id of another user's notice matches nothing (it is
neither shown nor marked, and a 404 does not tell whether it exists).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datalabs.db.models import Notice
from datalabs.db.types import utcnow
from datalabs.errors import NotFound

TEXT_MAX = 1000
PER_PAGE = 50


@dataclass(frozen=True)
class Page:
    items: list[Notice]
    total: int
    unread: int


def add(db: Session, user_id: int, text: str, link: str = "") -> Notice:
    """Leave `user_id` a notice (committed with the caller's transaction). `link` is a path on the
    platform ("/runs/<id>"): anything else is dropped, so a notice can never send its reader elsewhere."""
    notice = Notice(user_id=user_id, text=text[:TEXT_MAX], link=local_path(link))
    db.add(notice)
    return notice


def unread_count(db: Session, user_id: int) -> int:
    """One COUNT on the (user_id, read_at) index: cheap enough for every page's header."""
    return db.scalar(select(func.count(Notice.id)).where(Notice.user_id == user_id, Notice.read_at.is_(None)))


def page(db: Session, user_id: int, *, limit: int = PER_PAGE, offset: int = 0) -> Page:
    """The user's notices, newest first."""
    mine = Notice.user_id == user_id
    items = db.scalars(
        select(Notice).where(mine).order_by(Notice.id.desc()).limit(limit).offset(offset)
    ).all()
    total = db.scalar(select(func.count(Notice.id)).where(mine))
    return Page(items=list(items), total=total, unread=unread_count(db, user_id))


def mark_read(db: Session, user_id: int, ids: list[int] | None = None) -> int:
    """Mark the user's unread notices read: all of them, or those of `ids` that are theirs. Returns how
    many changed (ids of other users' notices count for nothing)."""
    query = update(Notice).where(Notice.user_id == user_id, Notice.read_at.is_(None))
    if ids is not None:
        if not ids:
            return 0
        query = query.where(Notice.id.in_(ids))
    return db.execute(query.values(read_at=utcnow())).rowcount


def follow(db: Session, user_id: int, notice_id: int) -> str:
    """Mark one of the user's notices read and return where it points (their notices page if nowhere)."""
    notice = db.scalar(select(Notice).where(Notice.id == notice_id, Notice.user_id == user_id))
    if notice is None:
        raise NotFound("no such notification", code="notice_not_found")
    if notice.read_at is None:
        notice.read_at = utcnow()
    return local_path(notice.link) or "/notifications"


def local_path(link: str) -> str:
    """`link` if it is a path on this platform, else "" (no scheme, host or protocol-relative '//')."""
    link = (link or "").strip()
    if not link.startswith("/") or link.startswith(("//", "/\\")) or any(c in link for c in "\r\n\\"):
        return ""
    return link
