"""The app store: the store itself (live search; Featured, Running, Developed by me, Shared with me,
Published), one page per app (versions, sharing, submission, history) and the moderators' review queue.
The "Create datalab" wizard lives in `appstore_wizard` (its routes come first: `/appstore/new` must win
over `/appstore/{name}`).

Routers stay thin: `builder.service` decides who sees an app, `builder.publish` shares, submits, reviews
and unpublishes, exactly as for `/api/v1/apps`; refusals are shown next to the form that caused them."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder import publish, service
from datalabs.db.models import App, Group, User
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.labs import service as labs
from datalabs.notifications import service as notifications
from datalabs.web import appstore_view as view
from datalabs.web import appstore_wizard, forms
from datalabs.web.render import fragment, page, place_errors
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
router.include_router(appstore_wizard.router)
MAX_NAMES = 500  # users or groups suggested in the share form


# ---- the store ----------------------------------------------------------------------------------


def _sections(db: Session, principal: Principal, q: str) -> list[dict[str, Any]]:
    words = q.lower().split()
    readable = service.visible(db, principal)
    shown = {a.name: service.shown_versions(a, principal) for a in readable}
    apps = [a for a in readable if view.matches(shown[a.name], a.name, words)]
    running = {lab.datalab for lab in labs.list_for(db, principal, include_ended=False)}
    me = principal.user.id

    def published(a: App) -> bool:
        return any(v.published for v in a.versions)

    def shared(a: App) -> bool:
        return a.owner_id != me and (
            principal.name in a.shared_users or bool(principal.groups.intersection(a.shared_groups))
        )

    chosen = (
        (
            "featured",
            "Featured",
            "Chosen by the moderators.",
            lambda a: a.featured and published(a),
        ),
        ("running", "Running", "Datalabs you have a lab of right now.", lambda a: a.name in running),
        ("mine", "Developed by me", "Datalabs you build and publish.", lambda a: a.owner_id == me),
        ("shared", "Shared with me", "Shared with you or one of your groups.", shared),
        (
            "published",
            "Published",
            "Every datalab the moderators approved.",
            published,
        ),
    )
    return [
        {
            "key": key,
            "title": title,
            "help": help_,
            "cards": [
                view.card(a, shown[a.name], a.name in running, service.insider(a, principal))
                for a in apps
                if test(a)
            ],
        }
        for key, title, help_, test in chosen
    ]


@router.get("/appstore", name="appstore")
def store(
    request: Request,
    q: str = Query("", max_length=200),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    ctx = {"q": q, "sections": _sections(db, principal, q.strip())}
    headers = {"Vary": "HX-Request"}
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_appstore_results.html", **ctx)
        response.headers.update(headers)
        return response
    notices = notifications.page(db, principal.user.id, limit=5).items
    waiting = len(publish.queue(db, principal)) if principal.is_moderator else 0
    return page(
        request,
        "appstore.html",
        title="App store",
        active="appstore",
        headers=headers,
        notices=notices,
        waiting=waiting,
        **ctx,
    )


# ---- the moderators' queue ----------------------------------------------------------------------


def _review_page(request, db, principal, form=None, errors=None, status=200):
    submissions = []
    for app in publish.queue(db, principal):  # Forbidden (403) for everyone but moderators, as the API
        v = service.version_of(app, app.submitted_version)
        # An approval publishes this version beside (and as the new default over) those already public.
        published = [p.version for p in reversed(app.versions) if p.published]
        row = view.version_row(app, v, "submitted")
        submissions.append({"app": app, "meta": v.meta, "v": row, "published": published})
    return page(
        request,
        "appstore_review.html",
        title="Review queue",
        active="appstore",
        status=status,
        submissions=submissions,
        form=form or {},
        # A decision on a submission no longer waiting (another moderator was faster) shows on top.
        errors=place_errors(errors, {s["app"].name for s in submissions}),
    )


@router.get("/appstore/review")
def review_queue(
    request: Request, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return _review_page(request, db, principal)


@router.post("/appstore/{name}/review")
def review(
    request: Request,
    name: str,
    decision: str = Form("", max_length=10),
    comment: str = Form("", max_length=5000),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):

    def action():
        if decision not in ("approve", "reject"):
            raise DatalabsError("choose Approve or Reject")
        publish.review(db, request.app.state.settings, principal, name, decision == "approve", comment)

    again = forms.shown_again(partial(_review_page, request, db, principal), name, form={name: comment})
    verdict = "approved and published" if decision == "approve" else "rejected; the author is told why"
    return forms.submit(
        request, db, action, refused=again, to="/appstore/review", done=f"'{name}' {verdict}."
    )


# ---- one app ------------------------------------------------------------------------------------


def _app_page(request, db, principal, app: App, form=None, errors=None, status=200):
    is_author = app.owner_id == principal.user.id or principal.is_admin
    events = service.history(db, app, principal)
    shown = service.shown_versions(app, principal)
    built = [v.version for v in shown if v.state == "built"]
    published = [v.version for v in shown if v.published]
    # What may be submitted: built and not published already (a review publishes exactly that one).
    submittable = [v.version for v in shown if v.state == "built" and not v.published]
    ctx: dict[str, Any] = {}
    if is_author:
        ctx["user_names"] = db.scalars(select(User.name).order_by(User.name).limit(MAX_NAMES)).all()
        ctx["group_names"] = db.scalars(select(Group.name).order_by(Group.name).limit(MAX_NAMES)).all()
    # A refusal whose form this user is not shown (say, sharing someone else's app) goes above.
    can_unpublish = (is_author or principal.is_moderator) and (app.state == "submitted" or bool(published))
    places = {"share", "submit"} if is_author else set()
    places |= {"unpublish"} if can_unpublish else set()
    places |= {"feature"} if principal.is_moderator and published else set()
    defaults = {
        "users": ", ".join(app.shared_users),
        "groups": ", ".join(app.shared_groups),
        "version": submittable[-1] if submittable else "",
    }
    last = view.last_reviews(events)
    card = view.card(app, shown, insider=service.insider(app, principal))
    return page(
        request,
        "app.html",
        title=card["title"],
        active="appstore",
        status=status,
        app=app,
        card=card,
        meta=view.newest_meta(shown),
        versions=[view.version_row(app, v, last.get(v.version, "")) for v in reversed(shown)],
        built=list(reversed(built)),
        submittable=list(reversed(submittable)),
        published=list(reversed(published)),
        history=events,
        is_author=is_author,
        can_unpublish=can_unpublish,
        is_moderator=principal.is_moderator,
        form={**defaults, **(form or {})},
        errors=place_errors(errors, places),
        **ctx,
    )


@router.get("/appstore/{name}")
def app_page(
    request: Request, name: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return _app_page(request, db, principal, service.get(db, principal, name))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", ",").split(",") if n.strip()]


def _act(request, db, principal, name: str, where: str, form: dict[str, str], action, done: str):
    """Run a publishing action; on refusal show the app page again with the message at `where`."""

    def again(exc: DatalabsError):
        app = service.get(db, principal, name)
        return _app_page(request, db, principal, app, form, {where: exc.message}, exc.status)

    return forms.submit(request, db, action, refused=again, to=f"/appstore/{name}", done=done)


@router.post("/appstore/{name}/share")
def share(
    request: Request,
    name: str,
    users: str = Form("", max_length=20000),
    groups: str = Form("", max_length=20000),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    def action():
        publish.share(db, principal, name, _names(users), _names(groups))

    form = {"users": users, "groups": groups}
    return _act(request, db, principal, name, "share", form, action, "Sharing saved.")


@router.post("/appstore/{name}/submit")
def submit(
    request: Request,
    name: str,
    version: str = Form("", max_length=64),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    def action():
        publish.submit(db, principal, name, version or None)

    done = "Submitted for publication: a moderator will review it."
    return _act(request, db, principal, name, "submit", {"version": version}, action, done)


@router.post("/appstore/{name}/unpublish")
def unpublish(
    request: Request,
    name: str,
    version: str = Form("", max_length=64),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    """Without `version` everything is withdrawn (see `publish.unpublish`), with it that version only."""

    def action():
        publish.unpublish(db, request.app.state.settings, principal, name, version or None)

    done = f"{version} withdrawn." if version else "Unpublished: it is private again."
    return _act(request, db, principal, name, "unpublish", {}, action, done)


@router.post("/appstore/{name}/feature")
def feature(
    request: Request,
    name: str,
    featured: str = Form("", max_length=5),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    def action():
        publish.feature(db, principal, name, featured == "yes")

    done = "Featured in the app store." if featured == "yes" else "No longer featured."
    return _act(request, db, principal, name, "feature", {}, action, done)
