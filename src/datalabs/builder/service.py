"""Apps (datalabs built by users): creation, visibility, versions from sources, history.

Each version's sources live in `$DATALABS_HOME/apps/<name>/versions/<version>/sources`, written once
(staged in a private folder, validated, then renamed into place) and never changed afterwards.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder import meta as metadata
from datalabs.builder.sources import DEFAULT_LIMITS, Limits, Staging, flatten_single_folder
from datalabs.catalogue.loader import LoadError
from datalabs.catalogue.schema import NAME_RE, DatalabMeta
from datalabs.config import Settings
from datalabs.db.models import App, AppEvent, AppVersion, Datalab, DatalabVersion, User
from datalabs.errors import Conflict, Forbidden, Invalid, NotFound
from datalabs.workspaces import inflight

TERMINAL = ("built", "failed")
# The app store's own pages (/appstore/new, /appstore/review) sit where an app of that name would.
RESERVED_NAMES = frozenset({"new", "review"})


@dataclass(frozen=True)
class SourceProblem:
    file: str
    key: str
    reason: str


class MetaInvalid(Invalid):
    """The sources' datalab-meta.yml does not validate: `problems` lists file, key and reason (+ line)."""

    def __init__(self, problems: list[SourceProblem]):
        text = "; ".join(f"{p.file}: {p.key + ': ' if p.key else ''}{p.reason}" for p in problems)
        super().__init__(f"datalab-meta.yml is not valid: {text}", code="invalid_meta")
        self.problems = problems


def apps_dir(settings: Settings) -> Path:
    return settings.home / "apps"


def envs_dir(settings: Settings) -> Path:
    return settings.home / "envs"


def version_dir(settings: Settings, app: str, version: str) -> Path:
    return apps_dir(settings) / app / "versions" / version


def log_path(settings: Settings, app: str, version: str) -> Path:
    return version_dir(settings, app, version) / "build.log"


def record(db: Session, app: App, actor: str, kind: str, detail: str = "", version: str = "") -> None:
    db.add(AppEvent(app_id=app.id, actor=actor, kind=kind, detail=detail, version=version))


# ---- apps and who may see them ---------------------------------------------------------------------


def create(db: Session, principal: Principal, name: str, base: str = "jupyterlab") -> App:
    if not re.match(NAME_RE, name or ""):
        raise Invalid(
            f"'{name}' is not a valid datalab name: lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters",
            code="bad_name",
        )
    if name in RESERVED_NAMES:
        raise Conflict(f"'{name}' is reserved by the app store; choose another name", code="name_taken")
    if db.scalar(select(App.id).where(App.name == name)) or db.scalar(
        select(Datalab.id).where(Datalab.name == name)
    ):
        raise Conflict(f"a datalab named '{name}' already exists; choose another name", code="name_taken")
    base_meta(db, base)
    app = App(name=name, owner_id=principal.user.id, base=base)
    db.add(app)
    db.flush()
    record(db, app, principal.name, "created", f"based on {base}")
    return app


def base_meta(db: Session, base: str) -> DatalabMeta:
    """The newest version of the base datalab (a file-defined one: the platform's JupyterLab by default)."""
    datalab = db.scalar(select(Datalab).where(Datalab.name == base, Datalab.source != "db"))
    if datalab is None or not datalab.versions:
        raise Invalid(f"no base datalab '{base}' on this platform", code="bad_base")
    from datalabs.catalogue.entries import version_key

    newest = max(datalab.versions, key=lambda v: version_key(v.version))
    return DatalabMeta.model_validate(newest.meta)


def under_review(app: App, version: AppVersion) -> bool:
    return app.state == "submitted" and app.submitted_version == version.version


def sees_all_versions(app: App, principal: Principal) -> bool:
    """The author, admins and those it is shared with see every version, published or not."""
    return (
        principal.user.role == "admin"
        or app.owner_id == principal.user.id
        or principal.name in app.shared_users
        or bool(principal.groups.intersection(app.shared_groups))
    )


def insider(app: App, principal: Principal) -> bool:
    """Follows the app's review (which version is submitted, rejected): those who see every version, and
    moderators. Everyone else knows only its published versions."""
    return sees_all_versions(app, principal) or principal.is_moderator


def shown_versions(app: App, principal: Principal) -> list[AppVersion]:
    """The versions the principal may see: all (see `sees_all_versions`), else the published ones and,
    for moderators, the one under (or last through) review. Unreviewed builds stay hidden."""
    if sees_all_versions(app, principal):
        return list(app.versions)
    return [
        v
        for v in app.versions
        if v.published or (principal.is_moderator and v.version == app.submitted_version)
    ]


def can_read(app: App, principal: Principal) -> bool:
    return (
        sees_all_versions(app, principal)
        or any(v.published for v in app.versions)
        or (principal.is_moderator and app.state in ("submitted", "published", "rejected"))
    )


def get(db: Session, principal: Principal, name: str, *, write: bool = False) -> App:
    """The app as the principal may use it; NotFound when they may not see it (its existence stays hidden),
    Forbidden when they see it but may not change it."""
    app = db.scalar(select(App).where(App.name == name))
    if app is None or not can_read(app, principal):
        raise NotFound(f"no app '{name}'", code="app_not_found")
    if write and not (app.owner_id == principal.user.id or principal.user.role == "admin"):
        raise Forbidden(f"only the author of '{name}' may change it", code="not_author")
    return app


def mine(db: Session, principal: Principal) -> list[App]:
    return list(db.scalars(select(App).where(App.owner_id == principal.user.id).order_by(App.name)))


def visible(db: Session, principal: Principal) -> list[App]:
    return [a for a in db.scalars(select(App).order_by(App.name)) if can_read(a, principal)]


def version_of(app: App, version: str, principal: Principal | None = None) -> AppVersion:
    """The version; with `principal`, NotFound also when they may not see it (see `shown_versions`)."""
    candidates = shown_versions(app, principal) if principal is not None else app.versions
    for v in candidates:
        if v.version == version:
            return v
    raise NotFound(f"app '{app.name}' has no version '{version}'", code="version_not_found")


def newest(app: App) -> AppVersion | None:
    return app.versions[-1] if app.versions else None


# ---- versions from sources -------------------------------------------------------------------------


def add_version(
    db: Session,
    settings: Settings,
    principal: Principal,
    app: App,
    fill: Callable[[Staging], str],
    *,
    source_kind: str,
    overrides: dict | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> AppVersion:
    """Stage sources with `fill` (which returns a reference: file names, URL@commit, workspace path),
    validate their metadata, move them into place and record a queued version. Nothing is kept when
    anything is wrong."""
    staging_root = apps_dir(settings) / app.name / f".staging-{uuid.uuid4().hex[:12]}"
    staging_root.parent.mkdir(parents=True, exist_ok=True)
    # Recorded while it exists: a crash mid-way leaves it to start-up recovery (workspaces/inflight.py).
    with inflight.journal(settings).hold_path(staging_root, remove=False):
        staging = Staging(staging_root, limits)
        try:
            ref = fill(staging)
            flatten_single_folder(staging.root)
            data = metadata.read_yaml(staging.root / metadata.META_FILE)
            number = next_version(app, metadata.base_version(data))
            meta = metadata.validate(staging.root, app.name, number, base_meta(db, app.base), overrides)
            recipe = metadata.recipe(staging.root)
            target = version_dir(settings, app.name, number)
            target.mkdir(parents=True, exist_ok=False)
            staging.root.rename(target / "sources")  # atomic: the sources appear complete or not at all
        except LoadError as exc:
            staging.discard()
            raise MetaInvalid([SourceProblem(p.path, p.key, p.reason) for p in exc.problems]) from None
        except BaseException:
            staging.discard()
            raise
    stored = meta.model_dump(mode="json", by_alias=True)
    version = AppVersion(
        app=app,
        version=number,
        source_kind=source_kind,
        source_ref=ref,
        sources_path=str(target / "sources"),
        meta=stored,
        requirements=recipe.requirements,
        created_by=principal.name,
    )
    db.add(version)
    db.flush()
    record(db, app, principal.name, "sources", f"{source_kind}: {ref}"[:500], number)
    return version


def next_version(app: App, base: str) -> str:
    """`0.1.0-0`, `0.1.0-1`, ...: the build number counts up per base version."""
    taken = {v.version for v in app.versions}
    n = sum(1 for v in taken if v.rsplit("-", 1)[0] == base)
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def delete_app(db: Session, settings: Settings, principal: Principal, app: App) -> None:
    """Remove the app, its catalogue entry and its sources (built environments are shared: kept)."""
    from datalabs.builder import publish

    name = app.name
    publish.remove_from_catalogue(db, name)
    db.delete(app)
    db.flush()
    shutil.rmtree(apps_dir(settings) / name, ignore_errors=True)


def history(db: Session, app: App, principal: Principal) -> list[AppEvent]:
    """The app's history, newest first; without the steps of versions the principal may not see (their
    sources, builds and review are the author's business until the version is published)."""
    events = db.scalars(select(AppEvent).where(AppEvent.app_id == app.id).order_by(AppEvent.id.desc())).all()
    if sees_all_versions(app, principal):
        return list(events)
    shown = {v.version for v in shown_versions(app, principal)}
    return [e for e in events if not e.version or e.version in shown]


def author(db: Session, app: App) -> User:
    return db.get(User, app.owner_id)


def catalogue_row(db: Session, app: App, version: str) -> DatalabVersion | None:
    return db.scalar(
        select(DatalabVersion)
        .join(Datalab)
        .where(Datalab.name == app.name, DatalabVersion.version == version)
    )
