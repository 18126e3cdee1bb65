"""The notification centre: the user's notices newest first (paged), following one (marks it read and
goes where it points), and "Mark all read". The header's bell links here (render.unread_notices)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.notifications import service
from datalabs.web.render import page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/notifications", name="notifications_page")
def notifications_page(
    request: Request,
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    per_page = service.PER_PAGE
    found = service.page(db, principal.user.id, limit=per_page, offset=(page_number - 1) * per_page)
    pages = max(1, -(-found.total // per_page))
    return page(
        request,
        "notifications.html",
        title="Notifications",
        active="notifications",
        headers={"Cache-Control": "no-store"},
        notices=found.items,
        total=found.total,
        unread=found.unread,
        page_number=page_number,
        pages=pages,
    )


@router.get("/notifications/{notice_id}", name="notification_follow")
def follow(
    request: Request,
    notice_id: int = Path(ge=1, le=2**31 - 1),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    """Marks the notice read and goes to its link. A GET, so links work from anywhere; what a forged
    visit can do is mark one of the visitor's own notices read, and the target is always a local path."""
    target = service.follow(db, principal.user.id, notice_id)
    db.commit()
    return redirect(request, target)


@router.post("/notifications/read", name="notifications_read")
def mark_all_read(
    request: Request, principal: Principal = Depends(posting_user), db: Session = Depends(get_db)
):
    marked = service.mark_read(db, principal.user.id)
    db.commit()
    message = (
        f"Marked {marked} notification{'' if marked == 1 else 's'} read." if marked else "Nothing was unread."
    )
    return redirect(request, "/notifications", message)
