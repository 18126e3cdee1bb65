"""Administration of groups (teams): create, delete, add and remove members with their roles."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.deps import forget_after_changes, get_db
from datalabs.web import forms
from datalabs.web.render import page, place_errors
from datalabs.web.security import HtmlRoute, posting_admin, require_admin

# Memberships decide what a principal may see: cached principals are dropped after every POST.
router = APIRouter(
    route_class=HtmlRoute,
    include_in_schema=False,
    prefix="/admin/groups",
    dependencies=[Depends(forget_after_changes)],
)
GROUPS = "/admin/groups"


def groups_page(
    request: Request,
    db: Session,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict | None = None,
):
    users, _ = accounts.list_users(db, limit=1000)
    groups = accounts.list_groups(db)
    errors = place_errors(errors, {"create"} | {f"group:{g.name}" for g in groups})
    return page(
        request,
        "admin_groups.html",
        title="Groups",
        active="admin",
        section="groups",
        status=status,
        groups=groups,
        user_names=[u.name for u in users],
        member_roles=accounts.MEMBER_ROLES,
        errors=errors,
        form=form or {"name": "", "description": ""},
    )


def _again(request: Request, db: Session, where: str, form: dict | None = None):
    """On a refusal: the groups page again, the message at `where` (the create form or a group's row)."""
    return forms.shown_again(partial(groups_page, request, db), where, form=form)


@router.get("")
def list_groups(request: Request, _: Principal = Depends(require_admin), db: Session = Depends(get_db)):
    return groups_page(request, db)


@router.post("")
def create_group(
    request: Request,
    name: str = Form("", max_length=64),
    description: str = Form("", max_length=2000),
    _: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    return forms.submit(
        request,
        db,
        lambda: accounts.create_group(db, name.strip(), description.strip()),
        refused=_again(request, db, "create", {"name": name, "description": description}),
        to=GROUPS,
        done=f"Group '{name.strip()}' created.",
    )


@router.post("/{group}/members")
def add_member(
    request: Request,
    group: str,
    user: str = Form("", max_length=64),
    role: str = Form("member", max_length=16),
    _: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    return forms.submit(
        request,
        db,
        lambda: accounts.set_member(db, group, user.strip(), role),
        refused=_again(request, db, f"group:{group}"),
        to=GROUPS,
        done=f"'{user.strip()}' is now {role} of '{group}'.",
    )


@router.post("/{group}/members/{user}/remove")
def remove_member(
    request: Request,
    group: str,
    user: str,
    _: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    return forms.submit(
        request,
        db,
        lambda: accounts.remove_member(db, group, user),
        refused=_again(request, db, f"group:{group}"),
        to=GROUPS,
        done=f"'{user}' removed from '{group}'.",
    )


@router.get("/{group}/delete")
def confirm_delete_group(
    request: Request, group: str, _: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    found = accounts.get_group(db, group)
    return page(
        request,
        "admin_confirm.html",
        title=f"Delete group {found.name}",
        active="admin",
        section="groups",
        action=f"{GROUPS}/{found.name}/delete",
        question=f"Delete the group '{found.name}' ({len(found.memberships)} member(s))?",
        consequence="Its members lose what the group gave them, such as access to datalabs restricted to "
        "it. The user accounts themselves are kept. This cannot be undone.",
        cancel=GROUPS,
        button="Delete group",
    )


@router.post("/{group}/delete")
def delete_group(
    request: Request,
    group: str,
    _: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    return forms.submit(
        request,
        db,
        lambda: accounts.delete_group(db, group),
        refused=_again(request, db, f"group:{group}"),
        to=GROUPS,
        done=f"Group '{group}' deleted.",
    )
