"""Sharing, review and publication of apps, and their mirror in the catalogue.

Publication is per version: a moderator approves exactly the version submitted, and a version built
later stays private until it is submitted and approved in turn (an earlier published one stays public
meanwhile). The catalogue lists an app's built versions as a datalab (source "db") whose versions'
metadata carry `_app` (who may see that version) and `_build` (the environment a lab of it uses). An
unpublished version is seen by the app's author, the users and groups it is shared with, admins, and
moderators while that version is under review.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder.service import author, get, record, under_review, version_of
from datalabs.catalogue import generation
from datalabs.config import Settings
from datalabs.db.models import App, AppVersion, Datalab, DatalabVersion, Group, User
from datalabs.errors import Conflict, Forbidden, Invalid
from datalabs.notifications import service as notifications

log = logging.getLogger(__name__)


def access(app: App, version: AppVersion, owner: str) -> dict:
    """Who may see one version in the catalogue (read by `catalogue.entries.version_visible`)."""
    return {
        "owner": owner,
        "public": version.published,
        "review": under_review(app, version),
        "users": sorted(app.shared_users),
        "groups": sorted(app.shared_groups),
    }


def settle(app: App, *, review_open: bool, rejected: bool = False) -> None:
    """Keep `App.state` the summary the model documents, after any change of review or publication."""
    if review_open:
        app.state = "submitted"
    elif any(v.published for v in app.versions):
        app.state = "published"
    else:
        app.state = "rejected" if rejected else "private"


def sync_catalogue(db: Session, app: App) -> None:
    """Make the catalogue's datalab `app.name` list exactly the app's built versions, each with its access."""
    built = [v for v in app.versions if v.state == "built"]
    datalab = db.scalar(select(Datalab).where(Datalab.name == app.name))
    if datalab is not None and datalab.source != "db":
        raise Conflict(f"'{app.name}' is also defined by a catalogue file", code="name_taken")
    if not built:
        remove_from_catalogue(db, app.name)
        return
    if datalab is None:
        datalab = Datalab(name=app.name, source="db")
        db.add(datalab)
    owner = author(db, app).name
    rows = {r.version: r for r in datalab.versions}
    for v in built:
        meta = {
            **v.meta,
            "_app": access(app, v, owner),
            "_build": {"builder": app.builder, "env": v.env_path},
            "_thumbnail_path": "",
        }
        source_path = f"{v.sources_path}/datalab-meta.yml"
        row = rows.pop(v.version, None)
        if row is None:
            datalab.versions.append(DatalabVersion(version=v.version, meta=meta, source_path=source_path))
        elif row.meta != meta:
            row.meta, row.source_path = meta, source_path
    for row in rows.values():
        datalab.versions.remove(row)
    db.flush()
    generation.bump(db)


def remove_from_catalogue(db: Session, name: str) -> None:
    datalab = db.scalar(select(Datalab).where(Datalab.name == name, Datalab.source == "db"))
    if datalab is not None:
        db.delete(datalab)
        db.flush()
        generation.bump(db)


# ---- sharing --------------------------------------------------------------------------------------


def share(db: Session, principal: Principal, name: str, users: list[str], groups: list[str]) -> App:
    """Set who the (unpublished) app is shared with; unknown users or groups are refused by name."""
    app = get(db, principal, name, write=True)
    known_users = set(db.scalars(select(User.name).where(User.name.in_(users))))
    known_groups = set(db.scalars(select(Group.name).where(Group.name.in_(groups))))
    missing = [f"user '{u}'" for u in users if u not in known_users]
    missing += [f"group '{g}'" for g in groups if g not in known_groups]
    if missing:
        raise Invalid(f"cannot share with unknown {', '.join(missing)}", code="unknown_principal")
    app.shared_users, app.shared_groups = sorted(set(users)), sorted(set(groups))
    detail = f"users: {', '.join(app.shared_users) or '-'}; groups: {', '.join(app.shared_groups) or '-'}"
    record(db, app, principal.name, "shared", detail)
    sync_catalogue(db, app)
    return app


# ---- review ---------------------------------------------------------------------------------------


def submit(db: Session, principal: Principal, name: str, version: str | None) -> App:
    """Ask for a review of one built version (the newest built by default); one review at a time."""
    app = get(db, principal, name, write=True)
    built = [v for v in app.versions if v.state == "built"]
    chosen = version_of(app, version) if version else (built[-1] if built else None)
    if chosen is None or chosen.state != "built":
        raise Conflict("only a built version can be submitted; build one first", code="not_built")
    license_ = (chosen.meta.get("distribution") or {}).get("license", "")
    if not str(license_).strip():
        raise Invalid(
            "distribution.license is required to publish: set a licence (e.g. MIT, BSD-3-Clause, CC-BY-4.0) "
            "in datalab-meta.yml and build again",
            code="license_required",
        )
    if app.state == "submitted":
        raise Conflict(
            f"'{name}' {app.submitted_version} is already waiting for review; withdraw it first to submit "
            "another version",
            code="already_submitted",
        )
    if chosen.published:
        raise Conflict(f"'{name}' {chosen.version} is already published", code="already_published")
    app.submitted_version = chosen.version
    settle(app, review_open=True)
    record(db, app, principal.name, "submitted", "", chosen.version)
    sync_catalogue(db, app)
    return app


def queue(db: Session, principal: Principal) -> list[App]:
    _moderator(principal)
    return list(db.scalars(select(App).where(App.state == "submitted").order_by(App.id)))


def review(
    db: Session, settings: Settings, principal: Principal, name: str, approve: bool, comment: str
) -> App:
    """A moderator's decision on the open submission: approval publishes exactly the submitted version
    (the app's other versions keep their own state). The author is told (in-app, and by e-mail when
    the platform sends mail). Authors never review their own app."""
    _moderator(principal)
    app = get(db, principal, name)
    if app.state != "submitted":
        raise Conflict(f"'{name}' has no submission waiting for review", code="not_submitted")
    if app.owner_id == principal.user.id:
        raise Forbidden(
            "you cannot review your own submission; another moderator must", code="own_submission"
        )
    if not approve and not comment.strip():
        raise Invalid("say why in a comment when rejecting", code="comment_required")
    submitted = version_of(app, app.submitted_version)
    if approve:
        submitted.published = True
    settle(app, review_open=False, rejected=not approve)
    verdict = "approved" if approve else "rejected"
    record(db, app, principal.name, verdict, comment, submitted.version)
    sync_catalogue(db, app)
    text = f"Your datalab '{name}' {submitted.version} was {verdict} by {principal.name}"
    notify(db, settings, author(db, app), text + (f": {comment}" if comment else "."), f"/appstore/{name}")
    return app


def unpublish(
    db: Session, settings: Settings, principal: Principal, name: str, version: str | None = None
) -> App:
    """Withdraw from the public. Without `version`: every published version and any open submission,
    so the app is private again. Unpublishing is a take-down (a licence problem, a broken or harmful
    datalab): withdrawing only the newest would quietly make an older version the public default,
    which neither the author nor a moderator asked for. With `version`: that version only (published,
    or its submission withdrawn); other published versions stay public. When a moderator does it, the
    author is told, as for a review."""
    app = get(db, principal, name)
    if not (app.owner_id == principal.user.id or principal.is_moderator):
        raise Forbidden("only the author or a moderator may unpublish", code="not_author")
    reviewing = [v for v in app.versions if under_review(app, v)]
    if version is None:
        withdrawn = [v for v in app.versions if v.published]
    else:
        chosen = version_of(app, version)
        withdrawn = [chosen] if chosen.published else []
        reviewing = [v for v in reviewing if v is chosen]
    if not withdrawn and not reviewing:
        what = f"'{name}' {version}" if version else f"'{name}'"
        raise Conflict(f"{what} is neither published nor waiting for review", code="not_published")
    for v in withdrawn:
        v.published = False
        record(db, app, principal.name, "unpublished", "", v.version)
    for v in reviewing:
        record(db, app, principal.name, "withdrawn", "submission withdrawn before review", v.version)
    settle(app, review_open=app.state == "submitted" and not reviewing)
    sync_catalogue(db, app)
    if app.owner_id != principal.user.id:
        what = ", ".join(v.version for v in withdrawn + reviewing)
        text = f"Your datalab '{name}' {what} was unpublished by {principal.name}."
        notify(db, settings, author(db, app), text, f"/appstore/{name}")
    return app


def feature(db: Session, principal: Principal, name: str, featured: bool) -> App:
    _moderator(principal)
    app = get(db, principal, name)
    app.featured = featured
    record(db, app, principal.name, "featured" if featured else "unfeatured")
    return app


def _moderator(principal: Principal) -> None:
    if not principal.is_moderator:
        raise Forbidden("moderators only", code="moderators_only")


def notify(db: Session, settings: Settings, user: User, text: str, link: str) -> None:
    notifications.add(db, user.id, text, link)
    if not (settings.pipelines.smtp_host and user.email):
        return
    from datalabs.pipelines.notify import EmailNotifier  # the platform's one mail sender

    try:
        EmailNotifier(settings).send({"to": [user.email], "subject": text[:120], "text": text, "run": None})
    except Exception:  # mail trouble must not undo the review; the in-app notice is there
        log.exception("could not e-mail %s", user.name)
