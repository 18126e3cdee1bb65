"""Building the environments of catalogue datalabs, for administrators: on request from the admin page
and the API (in the background, its log followed live), and in the foreground for `datalabs admin
build-datalabs` and `seed-demo`. What is built, where its state lives and the rules: catalogue/builds.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from datalabs.accounts.principal import Principal
from datalabs.catalogue import builds
from datalabs.catalogue.entries import version_key
from datalabs.catalogue.generation import bump
from datalabs.catalogue.schema import DatalabMeta
from datalabs.catalogue.service import reload
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Datalab, DatalabVersion
from datalabs.errors import Conflict, NotFound
from datalabs.runtimes import gpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildView:
    """One catalogue version's build as the admin page and the API show it."""

    name: str
    version: str
    status: builds.Status
    log: list[str]

    def as_dict(self) -> dict:
        return {**self.status.as_dict(), "log": self.log}


def _row(db: Session, name: str, version: str | None) -> DatalabVersion:
    datalab = db.scalar(select(Datalab).where(Datalab.name == name))
    if datalab is None:
        raise NotFound(f"no datalab '{name}'", code="datalab_not_found")
    if datalab.source == "db":
        raise Conflict(
            f"'{name}' is built in the app store: build it from its app's page", code="app_datalab"
        )
    rows = sorted(datalab.versions, key=lambda v: version_key(v.version), reverse=True)
    row = next((r for r in rows if version in (None, r.version)), None)
    if row is None:
        raise NotFound(f"datalab '{name}' has no version '{version}'", code="version_not_found")
    return row


def _plan(settings: Settings, row: DatalabVersion) -> builds.Plan | None:
    meta = DatalabMeta.model_validate(row.meta)
    return builds.plan(settings, meta, Path(row.source_path).parent)


def _needs_absent_gpus(row: DatalabVersion) -> bool:
    """A datalab needing more GPUs than this host has (it cannot run here)."""
    return bool(gpus.shortfall(DatalabMeta.model_validate(row.meta).runtime.resources.default.gpu))


def _buildable(db: Session, settings: Settings, name: str, version: str | None) -> builds.Plan:
    row = _row(db, name, version)
    p = _plan(settings, row)
    if p is None:
        raise Conflict(
            f"'{name}' {row.version} runs on the platform's environment: it has nothing to build",
            code="nothing_to_build",
        )
    return p


def refresh(db: Session, settings: Settings, name: str, version: str) -> None:
    """Store the version's current build state with it in the catalogue (and tell every replica)."""
    row = db.scalar(
        select(DatalabVersion).join(Datalab).where(Datalab.name == name, DatalabVersion.version == version)
    )
    if row is None:
        return
    meta = dict(row.meta)
    folder = Path(row.source_path).parent
    mirrored = builds.mirror(settings, DatalabMeta.model_validate(meta), folder)
    if mirrored == meta.get("_build"):
        return
    if mirrored is None:
        meta.pop("_build", None)
    else:
        meta["_build"] = mirrored
    row.meta = meta
    db.flush()
    bump(db)


def _refresh_in(sessions: sessionmaker[Session], settings: Settings, name: str, version: str) -> None:
    try:
        with transaction(sessions) as db:
            refresh(db, settings, name, version)
    except Exception:  # the files hold the truth; the next catalogue load mirrors them again
        log.exception("could not record the build state of %s %s in the catalogue", name, version)


# ---- for administrators, in the background ---------------------------------------------------------


def start(
    db: Session,
    settings: Settings,
    sessions: sessionmaker[Session],
    principal: Principal,
    name: str,
    version: str | None = None,
) -> BuildView:
    """Start building datalab `name` (its newest version by default) in the background; Conflict when
    it has nothing to build or a build of it runs already."""
    principal.require_admin()
    p = _buildable(db, settings, name, version)
    lock = builds.claim(settings, p.name, p.version)
    try:
        status = builds.queue(settings, p, principal.name)
    except BaseException:
        lock.close()
        raise

    def run() -> None:
        try:
            builds.build(
                settings,
                p,
                lock,
                principal.name,
                started=lambda: _refresh_in(sessions, settings, p.name, p.version),
            )
        finally:
            _refresh_in(sessions, settings, p.name, p.version)

    threading.Thread(target=run, name=f"build-{p.name}", daemon=True).start()
    return BuildView(p.name, p.version, status, [])


def view(
    db: Session, settings: Settings, principal: Principal, name: str, version: str | None = None
) -> BuildView:
    """The last or current build of datalab `name` (its newest version by default), with its log."""
    principal.require_admin()
    p = _buildable(db, settings, name, version)
    status = builds.read_status(settings, p.name, p.version)
    return BuildView(p.name, p.version, status, builds.read_log(settings, p.name, p.version))


def pending(db: Session, settings: Settings, principal: Principal) -> list[BuildView]:
    """The newest version of every catalogue datalab that needs a build, with its build's state."""
    principal.require_admin()
    return [
        BuildView(p.name, p.version, builds.read_status(settings, p.name, p.version), [])
        for p in _plans(db, settings)
    ]


def _plans(db: Session, settings: Settings, names: tuple[str, ...] = ()) -> list[builds.Plan]:
    plans = []
    for name in names or db.scalars(
        select(Datalab.name).where(Datalab.source != "db").order_by(Datalab.name)
    ):
        row = _row(db, name, None)
        if not names and _needs_absent_gpus(row):
            continue  # its environment (CUDA libraries: gigabytes) is built here only when named
        p = _plan(settings, row)
        if p is not None:
            plans.append(p)
        elif names:
            raise Conflict(f"'{name}' runs on the platform's environment: it has nothing to build")
    return plans


# ---- on the host, in the foreground ----------------------------------------------------------------


def build_all(
    settings: Settings,
    sessions: sessionmaker[Session],
    names: tuple[str, ...] = (),
    say: Callable[[str], None] = print,
    by: str = "cli",
) -> list[builds.Status]:
    """Load the catalogue, then build the newest version of each datalab named (default: every one that
    needs a build), one after the other, each line of their logs to `say`. A failed build does not stop
    the others (its status says why); one running elsewhere is skipped."""
    with transaction(sessions) as db:
        reload(db, settings)
        plans = _plans(db, settings, names)
    done = []
    for p in plans:
        try:
            lock = builds.claim(settings, p.name, p.version)
        except Conflict as exc:
            say(f"{p.name} {p.version}: skipped, {exc.message}")
            continue
        status = builds.build(settings, p, lock, by, say=lambda line, p=p: say(f"[{p.name}] {line}"))
        _refresh_in(sessions, settings, p.name, p.version)
        done.append(status)
    return done
