"""Sources waiting for their metadata: what the "Create datalab" wizard uploaded, cloned or copied from a
workspace, kept per app until its author builds them into a version (or brings other sources).

The wizard takes sources first and asks for metadata second (pre-filled from their `datalab-meta.yml`),
while `service.add_version` needs both at once. A draft bridges the two: it is written through the same
`Staging` checks as a version's sources (paths, links, sizes, zip bombs), so nothing is accepted here
that a version would refuse, and `build` hands it to `add_version` unchanged.

Layout: `$DATALABS_HOME/apps/<name>/.draft/{sources/, info.json}`; replaced whole (rename), never edited.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.builder import meta as metadata
from datalabs.builder import service
from datalabs.builder.sources import DEFAULT_LIMITS, Limits, Staging, copy_tree, flatten_single_folder
from datalabs.catalogue.loader import LoadError
from datalabs.config import Settings
from datalabs.db.models import App, AppVersion
from datalabs.errors import Invalid

MAX_LISTED = 200  # files named on the wizard's page; the rest are counted


@dataclass(frozen=True)
class Draft:
    sources: Path
    kind: str  # upload | git | workspace
    ref: str  # file names, URL@commit or workspace path: the version's `source_ref`
    files: list[str]
    file_count: int
    meta: dict[str, Any]  # the sources' datalab-meta.yml (dotted keys undone); {} if absent or unreadable
    meta_problem: str  # why the file there could not be read, or ""
    requirements: list[str]


def draft_dir(settings: Settings, app: str) -> Path:
    return service.apps_dir(settings) / app / ".draft"


def stage(
    settings: Settings,
    app: App,
    fill: Callable[[Staging], str],
    kind: str,
    limits: Limits = DEFAULT_LIMITS,
) -> Draft:
    """Replace the app's draft by the sources `fill` writes (it returns their reference). A rejected
    source leaves the previous draft as it was."""
    parent = service.apps_dir(settings) / app.name
    parent.mkdir(parents=True, exist_ok=True)
    fresh = parent / f".draft-{uuid.uuid4().hex[:12]}"
    staging = Staging(fresh / "sources", limits)
    try:
        ref = fill(staging)
        flatten_single_folder(staging.root)
        (fresh / "info.json").write_text(json.dumps({"kind": kind, "ref": ref}))
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    target = draft_dir(settings, app.name)
    old = parent / f".draft-old-{uuid.uuid4().hex[:12]}"
    if target.exists():
        target.rename(old)
    fresh.rename(target)  # atomic: the draft is the old one or the new one, never a mix
    shutil.rmtree(old, ignore_errors=True)
    return load(settings, app)  # type: ignore[return-value]


def load(settings: Settings, app: App) -> Draft | None:
    root = draft_dir(settings, app.name)
    try:
        info = json.loads((root / "info.json").read_text())
    except (OSError, ValueError):
        return None
    sources = root / "sources"
    names = sorted(p.relative_to(sources).as_posix() for p in sources.rglob("*") if p.is_file())
    data, problem = {}, ""
    if (sources / metadata.META_FILE).is_file():  # no file is no problem: the form describes the datalab
        try:
            data = metadata.read_yaml(sources / metadata.META_FILE)
        except LoadError as exc:
            problem = metadata.problems_text(exc)
    return Draft(
        sources=sources,
        kind=str(info.get("kind", "upload")),
        ref=str(info.get("ref", "")),
        files=names[:MAX_LISTED],
        file_count=len(names),
        meta=data,
        meta_problem=problem,
        requirements=metadata.recipe(sources).requirements,
    )


def build(
    db: Session, settings: Settings, principal: Principal, app: App, overrides: dict[str, Any]
) -> AppVersion:
    """Make a version of the draft with the form's metadata `overrides` (queued; the caller commits,
    submits the build and then `discard`s the draft)."""
    draft = load(settings, app)
    if draft is None:
        raise Invalid("bring the sources first (upload, git or workspace folder)", code="no_sources")

    def fill(staging: Staging) -> str:
        copy_tree(staging, draft.sources, "the sources")
        if not (draft.sources / metadata.META_FILE).is_file():
            # Sources without a datalab-meta.yml are described by the form alone: the version keeps that
            # description as its file, so its sources (and an export of them) stand on their own.
            text = yaml.safe_dump(overrides, sort_keys=False, allow_unicode=True)
            staging.write(metadata.META_FILE, io.BytesIO(text.encode()))
        return draft.ref

    return service.add_version(
        db, settings, principal, app, fill, source_kind=draft.kind, overrides=overrides
    )


def discard(settings: Settings, app: str) -> None:
    shutil.rmtree(draft_dir(settings, app), ignore_errors=True)
