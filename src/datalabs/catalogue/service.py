"""The catalogue: definitions synced from directories into the DB, their versions and load problems.
Search and visibility are in `search` and `entries`."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from datalabs.catalogue import builds
from datalabs.catalogue.generation import bump
from datalabs.catalogue.loader import BUILTIN_DIR, Loaded, Problem, load_directories
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import CatalogueProblem, Datalab, DatalabVersion


def sources(settings: Settings) -> list[tuple[Path, str]]:
    builtin = [(BUILTIN_DIR, "builtin")] if settings.catalogue.builtin else []
    return builtin + [(Path(d), "dir") for d in settings.catalogue.dirs]


def reload(db: Session, settings: Settings) -> list[Problem]:
    """Load every configured directory into the DB; returns (and stores) the problems found."""
    loaded, problems = load_directories(sources(settings))
    sync(db, loaded, problems, settings)
    return problems


def reload_at_start(sessions: sessionmaker[Session], settings: Settings) -> list[Problem]:
    """`reload` in a transaction of its own. Replicas starting together sync the same files: of two
    inserting one datalab, one commits and the other's unique key fails; it tries again and finds it."""
    for attempt in range(5):
        try:
            with transaction(sessions) as db:
                return reload(db, settings)
        except IntegrityError:
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def sync(
    db: Session, loaded: list[Loaded], problems: list[Problem], settings: Settings | None = None
) -> None:
    """Make the file-sourced definitions in the DB match `loaded`; DB-sourced ones are left alone.
    With `settings`, versions built by the platform carry their build's state (`builds.mirror`)."""
    existing = {d.name: d for d in db.scalars(select(Datalab).options(selectinload(Datalab.versions)))}
    wanted: dict[str, dict[str, Loaded]] = {}
    for item in loaded:
        wanted.setdefault(item.meta.name, {})[item.meta.version] = item
    for name, versions in wanted.items():
        datalab = existing.get(name)
        if datalab is None:
            datalab = Datalab(name=name, source=next(iter(versions.values())).source)
            db.add(datalab)
        elif datalab.source == "db":
            problems.append(
                Problem(
                    str(next(iter(versions.values())).path),
                    "name",
                    f"'{name}' is already a datalab built on the platform; file ignored",
                )
            )
            continue
        current = {v.version: v for v in datalab.versions}
        for version, item in versions.items():
            meta = _stored_meta(item, settings)
            row = current.get(version)
            if row is None:
                datalab.versions.append(
                    DatalabVersion(version=version, meta=meta, source_path=str(item.path))
                )
            elif row.meta != meta or row.source_path != str(item.path):
                row.meta, row.source_path = meta, str(item.path)
        for version, row in current.items():
            if version not in versions:
                datalab.versions.remove(row)
    for name, datalab in existing.items():
        if datalab.source != "db" and name not in wanted:
            db.delete(datalab)
    db.execute(delete(CatalogueProblem))
    db.add_all(CatalogueProblem(path=p.path, key=p.key, reason=p.reason) for p in problems)
    db.flush()
    bump(db)


def _stored_meta(item: Loaded, settings: Settings | None = None) -> dict:
    meta = item.meta.model_dump(mode="json", by_alias=True)
    thumb = item.thumbnail_path
    meta["_thumbnail_path"] = str(thumb) if thumb else ""
    meta.pop("_build", None)  # only the platform says what was built, never a definition file
    if settings is not None and (build := builds.mirror(settings, item.meta, item.path.parent)):
        meta["_build"] = build
    return meta


def problems(db: Session) -> list[CatalogueProblem]:
    return list(db.scalars(select(CatalogueProblem).order_by(CatalogueProblem.path, CatalogueProblem.id)))
