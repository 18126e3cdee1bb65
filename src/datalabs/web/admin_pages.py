"""Administration: users (create, role, activate, delete) and the catalogue (rejected files, reload,
datalabs that cannot be used and why, building their environments with the log followed live)."""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.catalogue import build_service
from datalabs.catalogue import service as catalogue_service
from datalabs.deps import forget_after_changes, get_db
from datalabs.errors import Conflict
from datalabs.labs import origins as lab_origins
from datalabs.sandbox import quota
from datalabs.web import forms
from datalabs.web.render import fragment, page, place_errors, redirect
from datalabs.web.security import HtmlRoute, posting_admin, require_admin
from datalabs.web.volume_pages import ago

# Role, activation and deletion change who may do what: cached principals are dropped after every POST.
router = APIRouter(
    route_class=HtmlRoute,
    include_in_schema=False,
    prefix="/admin",
    dependencies=[Depends(forget_after_changes)],
)
USERS = "/admin/users"


@router.get("")
def admin_home() -> RedirectResponse:
    return RedirectResponse(USERS, status_code=303)


def users_page(
    request: Request,
    db: Session,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict | None = None,
):
    users, total = accounts.list_users(db, limit=1000)
    errors = place_errors(errors, {"create"} | {f"user:{u.name}" for u in users})
    return page(
        request,
        "admin_users.html",
        title="Users",
        active="admin",
        section="users",
        status=status,
        users=users,
        total=total,
        roles=accounts.ROLES,
        errors=errors,
        form=form or {"name": "", "email": "", "full_name": "", "role": "user"},
    )


def _again(request: Request, db: Session, where: str, form: dict | None = None):
    """On a refusal: the users page again, the message at `where` (the create form or a user's row)."""
    return forms.shown_again(partial(users_page, request, db), where, form=form)


@router.get("/users")
def list_users(request: Request, _: Principal = Depends(require_admin), db: Session = Depends(get_db)):
    return users_page(request, db)


@router.post("/users")
def create_user(
    request: Request,
    name: str = Form("", max_length=64),
    password: str = Form("", max_length=1000),
    role: str = Form("user", max_length=16),
    email: str = Form("", max_length=254),
    full_name: str = Form("", max_length=200),
    _: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    form = {"name": name, "email": email, "full_name": full_name, "role": role}
    return forms.submit(
        request,
        db,
        lambda: accounts.create_user(
            db, name.strip(), password, role=role, email=email.strip(), full_name=full_name
        ),
        refused=_again(request, db, "create", form),
        to=USERS,
        done=f"User '{name.strip()}' created.",
    )


def _not_self(principal: Principal, name: str, what: str) -> None:
    # An admin locking themselves out leaves nobody to undo it.
    if principal.user.name == name:
        raise Conflict(f"you cannot {what} your own account", code="self_change")


@router.post("/users/{name}/role")
def change_role(
    request: Request,
    name: str,
    role: str = Form("", max_length=16),
    principal: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):

    def action():
        if role != "admin":
            _not_self(principal, name, "remove the admin role from")
        accounts.update_user(db, name, role=role)

    refused = _again(request, db, f"user:{name}")
    return forms.submit(request, db, action, refused=refused, to=USERS, done=f"'{name}' is now {role}.")


@router.post("/users/{name}/active")
def set_active(
    request: Request,
    name: str,
    active: str = Form("", max_length=5),
    principal: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    on = active == "1"

    def action():
        if not on:
            _not_self(principal, name, "deactivate")
        accounts.update_user(db, name, active=on)

    done = f"'{name}' {'activated' if on else 'deactivated'}."
    return forms.submit(request, db, action, refused=_again(request, db, f"user:{name}"), to=USERS, done=done)


@router.get("/users/{name}/delete")
def confirm_delete_user(
    request: Request, name: str, _: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    user = accounts.get_user(db, name)
    return page(
        request,
        "admin_confirm.html",
        title=f"Delete user {user.name}",
        active="admin",
        section="users",
        action=f"/admin/users/{user.name}/delete",
        question=f"Delete the user '{user.name}'?",
        consequence="Their account, sessions, API tokens and group memberships are removed. "
        "This cannot be undone; deactivating keeps the account and can be reversed.",
        cancel=USERS,
        button="Delete user",
    )


@router.post("/users/{name}/delete")
def delete_user(
    request: Request,
    name: str,
    principal: Principal = Depends(posting_admin),
    db: Session = Depends(get_db),
):
    return forms.submit(
        request,
        db,
        lambda: accounts.delete_user(db, name, acting=principal.user),
        refused=_again(request, db, f"user:{name}"),
        to=USERS,
        done=f"User '{name}' deleted.",
    )


# ---- catalogue -------------------------------------------------------------------------------------


@router.get("/catalogue")
def catalogue_admin(
    request: Request, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    settings = request.app.state.settings
    entries = request.app.state.catalogue.entries(db)
    return page(
        request,
        "admin_catalogue.html",
        title="Catalogue administration",
        active="admin",
        section="catalogue",
        problems=catalogue_service.problems(db),
        entries=entries,
        unavailable=[e for e in entries if not e.available],
        builds={b.name: b for b in build_service.pending(db, settings, principal)},
        dirs=[str(path) for path, _ in catalogue_service.sources(settings)],
    )


@router.post("/catalogue/reload")
def reload_catalogue(request: Request, _: Principal = Depends(posting_admin), db: Session = Depends(get_db)):
    problems = catalogue_service.reload(db, request.app.state.settings)
    db.commit()
    if problems:
        message = f"Catalogue reloaded; {len(problems)} definition file(s) rejected (see below)."
        return redirect(request, "/admin/catalogue", message, "warning")
    return redirect(request, "/admin/catalogue", "Catalogue reloaded; every definition file is valid.")


def _build_url(name: str) -> str:
    return f"/admin/catalogue/{quote(name)}/build"


@router.post("/catalogue/{name}/build")
def build_datalab(
    request: Request, name: str, principal: Principal = Depends(posting_admin), db: Session = Depends(get_db)
):
    """Build now: the datalab's environment is built in the background; its page follows the log."""
    state = request.app.state
    try:
        view = build_service.start(db, state.settings, state.sessions, principal, name)
    except Conflict as exc:  # one build of it runs already (follow it), or it has nothing to build
        where = _build_url(name) if exc.code == "build_running" else "/admin/catalogue"
        return redirect(request, where, exc.message, "error")
    return redirect(request, _build_url(name), f"Building the environment of '{name}' {view.version}.")


@router.get("/catalogue/{name}/build")
def datalab_build(
    request: Request, name: str, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    view = build_service.view(db, request.app.state.settings, principal, name)
    return page(
        request,
        "admin_catalogue_build.html",
        title=f"Building {name} · Administration",
        active="admin",
        section="catalogue",
        build=view,
        status_url=_build_url(name) + "/status",
        ago=ago,
    )


@router.get("/catalogue/{name}/build/status")
def datalab_build_status(
    request: Request, name: str, principal: Principal = Depends(require_admin), db: Session = Depends(get_db)
):
    """The live part of the build page, polled by htmx while the build is queued or running."""
    view = build_service.view(db, request.app.state.settings, principal, name)
    url = _build_url(name) + "/status"
    return fragment(request, "_catalogue_build_status.html", build=view, status_url=url, ago=ago)


# ---- security --------------------------------------------------------------------------------------


@router.get("/security")
def security_page(request: Request, _: Principal = Depends(require_admin)):
    """What this host enforces, each with how it was checked when the platform started."""
    settings = request.app.state.settings
    facts = [(f.name, f.enforced, f.how) for f in getattr(request.app.state, "isolation", [])]
    quota_ok, quota_how = quota.admin_line(settings)
    origin_ok, origin_how = lab_origins.status(settings)
    facts += [
        ("Workspace quotas inside labs", quota_ok, quota_how),
        ("A web origin per lab", origin_ok, origin_how),
    ]
    return page(
        request,
        "admin_security.html",
        title="Security",
        active="admin",
        section="security",
        facts=facts,
        failing=sum(1 for _, ok, _ in facts if not ok),
    )
