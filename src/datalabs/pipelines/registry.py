"""The pipeline registry: who sees which pipeline, registering pipelines and their immutable versions.

System pipelines are visible to everyone and changed by admins only. A user pipeline is visible to its
owner, its allowed users, members of its allowed groups and admins; everyone else is told it does not
exist (404, as for labs)."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Group, Pipeline, PipelineVersion, User
from datalabs.errors import Conflict, Forbidden, Invalid, NotFound
from datalabs.pipelines import documents
from datalabs.pipelines.documents import Document

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
ENGINES = ("cwltool", "toil")
# Names the web UI uses for its own pages under /pipelines/ (a pipeline of that name would be unreachable).
RESERVED = frozenset({"editor"})


@dataclass
class Details:
    """What describes a pipeline besides its documents (the editor's Details tab)."""

    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    allowed_users: list[str] = field(default_factory=list)
    allowed_groups: list[str] = field(default_factory=list)
    engine: str = "cwltool"


def visible(pipeline: Pipeline, principal: Principal) -> bool:
    return (
        pipeline.system
        or principal.is_admin
        or pipeline.owner_id == principal.user.id
        or principal.name in pipeline.allowed_users
        or bool(principal.groups.intersection(pipeline.allowed_groups))
    )


def may_change(pipeline: Pipeline, principal: Principal) -> bool:
    if principal.is_admin:
        return True
    return not pipeline.system and pipeline.owner_id == principal.user.id


def list_visible(
    db: Session, principal: Principal, *, q: str = "", keyword: str = "", kind: str = ""
) -> list[Pipeline]:
    rows = db.scalars(select(Pipeline).options(selectinload(Pipeline.versions)).order_by(Pipeline.name))
    words = q.lower().split()
    found = []
    for p in rows:
        if not visible(p, principal) or not p.versions:
            continue
        if kind and kind != ("system" if p.system else "user"):
            continue
        if keyword and keyword.lower() not in (k.lower() for k in p.keywords):
            continue
        text = " ".join([p.name, p.title, p.description, *p.keywords]).lower()
        if all(w in text for w in words):
            found.append(p)
    return found


def get_visible(db: Session, principal: Principal, name: str) -> Pipeline:
    pipeline = db.scalar(select(Pipeline).where(Pipeline.name == name))
    if pipeline is None or not visible(pipeline, principal):
        raise NotFound(f"no pipeline '{name}' available to you", code="pipeline_not_found")
    return pipeline


def version_of(pipeline: Pipeline, version: str | None) -> PipelineVersion:
    """The named version, or the newest."""
    if not pipeline.versions:
        raise NotFound(f"pipeline '{pipeline.name}' has no version yet", code="version_not_found")
    if not version:
        return pipeline.versions[-1]
    for v in pipeline.versions:
        if v.version == version:
            return v
    known = ", ".join(v.version for v in pipeline.versions)
    raise NotFound(
        f"pipeline '{pipeline.name}' has no version '{version}' (versions: {known})", code="version_not_found"
    )


def _check_details(db: Session, details: Details) -> None:
    if details.engine not in ENGINES:
        raise Invalid(f"engine '{details.engine}' is not one of: {', '.join(ENGINES)}", code="unknown_engine")
    if users := sorted(set(details.allowed_users)):
        known = set(db.scalars(select(User.name).where(User.name.in_(users))))
        if missing := [u for u in users if u not in known]:
            raise Invalid(
                f"allowed_users: no user named {', '.join(map(repr, missing))}", code="user_not_found"
            )
    if groups := sorted(set(details.allowed_groups)):
        known = set(db.scalars(select(Group.name).where(Group.name.in_(groups))))
        if missing := [g for g in groups if g not in known]:
            raise Invalid(
                f"allowed_groups: no group named {', '.join(map(repr, missing))}", code="group_not_found"
            )


def _check_version(version: str) -> str:
    if not VERSION_RE.fullmatch(version or ""):
        raise Invalid(
            f"version '{version}' is not valid: letters, digits, '.', '_', '+', '-' (e.g. 1.0.2)",
            code="invalid_version",
        )
    return version


def create(
    db: Session,
    principal: Principal,
    *,
    name: str,
    details: Details,
    system: bool,
    version: str,
    notes: str,
    document: Document,
    source: str,
) -> Pipeline:
    if not NAME_RE.fullmatch(name or ""):
        raise Invalid(
            f"pipeline name '{name}' is not valid: 1-64 lower-case letters, digits, '.', '_', '-'",
            code="invalid_pipeline_name",
        )
    if name in RESERVED:
        raise Invalid(f"pipeline name '{name}' is reserved: choose another", code="invalid_pipeline_name")
    if system and not principal.is_admin:
        raise Forbidden("only administrators can register system pipelines", code="not_admin")
    _check_details(db, details)
    _check_version(version)
    if db.scalar(select(Pipeline.id).where(Pipeline.name == name)) is not None:
        raise Conflict(
            f"a pipeline named '{name}' already exists: push a new version to it instead",
            code="pipeline_exists",
        )
    pipeline = Pipeline(
        name=name,
        title=details.title or document.label or name,
        description=details.description or document.doc,
        keywords=sorted(set(details.keywords)),
        system=system,
        owner_id=principal.user.id,
        allowed_users=sorted(set(details.allowed_users)),
        allowed_groups=sorted(set(details.allowed_groups)),
        engine=details.engine,
    )
    _insert(
        db,
        pipeline,
        Conflict(
            f"a pipeline named '{name}' already exists: push a new version to it instead",
            code="pipeline_exists",
        ),
    )
    add_version(db, principal, pipeline, version=version, notes=notes, document=document, source=source)
    return pipeline


def add_version(
    db: Session,
    principal: Principal,
    pipeline: Pipeline,
    *,
    version: str,
    notes: str,
    document: Document,
    source: str,
    details: Details | None = None,
) -> PipelineVersion:
    """Publish a new version (published versions never change); optionally update the details."""
    if not may_change(pipeline, principal):
        who = "administrators" if pipeline.system else "its owner and administrators"
        raise Forbidden(f"only {who} can push versions of '{pipeline.name}'", code="not_owner")
    _check_version(version)
    if any(v.version == version for v in pipeline.versions):
        raise Conflict(
            f"version '{version}' of '{pipeline.name}' is already published; versions are immutable, "
            "choose a new version number",
            code="version_exists",
        )
    if details is not None:
        _check_details(db, details)
        pipeline.title = details.title or pipeline.title
        pipeline.description = details.description or pipeline.description
        pipeline.keywords = sorted(set(details.keywords))
        pipeline.allowed_users = sorted(set(details.allowed_users))
        pipeline.allowed_groups = sorted(set(details.allowed_groups))
        pipeline.engine = details.engine
    row = PipelineVersion(
        pipeline_id=pipeline.id,
        version=version,
        notes=notes,
        source=source,
        packed=document.packed,
        files=document.files or None,
        digest=document.digest,
        created_by=principal.name,
    )
    conflict = f"version '{version}' of '{pipeline.name}' was just published by another request"
    _insert(db, row, Conflict(conflict, code="version_exists"))
    db.refresh(pipeline, ["versions"])
    return row


def _insert(db: Session, row, conflict: Conflict) -> None:
    """Add `row`, or raise `conflict` if its unique key is taken: two requests may pass the checks before
    it at once (twin cwl-runner commands register one content-named pipeline), so the database decides."""
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError:
        raise conflict from None


def document_from_tree(
    tree_root: Path, parts: tuple[str, ...], display: str, containers: str = "refuse"
) -> tuple[Document, str]:
    """A document from a workspace: a `.cwl` file (its neighbours may be referenced) or a folder holding
    `main.cwl` or exactly one workflow. The folder is copied first through the workspace's no-follow walk,
    so nothing outside it can be read while validating."""
    from datalabs.workspaces.tree import Tree

    tree = Tree(tree_root)
    entry = tree.stat(parts)
    folder, main = (parts, None) if entry.type == "dir" else (parts[:-1], parts[-1])
    with tempfile.TemporaryDirectory(prefix="datalabs-cwl-") as tmp:
        copy = Path(tmp) / "src"
        _copy_cwl_files(tree, folder, copy)
        if main is None:
            main = _pick_main(copy, display)
        path = copy / main
        if not path.is_file():
            raise Invalid(f"{display}: '{main}' is not a CWL file", code="invalid_cwl")
        document = documents.load_file(path, main, containers=containers)
        return document, path.read_text()


def _copy_cwl_files(tree, folder: tuple[str, ...], dest: Path, depth: int = 0) -> None:
    dest.mkdir(parents=True)
    count = 0
    for entry in tree.listdir(folder, limit=500).entries:
        if entry.type == "dir" and depth < 4:
            _copy_cwl_files(tree, (*folder, entry.name), dest / entry.name, depth + 1)
        elif entry.type == "file" and entry.size <= documents.MAX_DOCUMENT:
            fd, _ = tree.open((*folder, entry.name))
            with open(fd, "rb") as src, open(dest / entry.name, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
        if count > 200:
            raise Invalid("the pipeline folder holds more than 200 files", code="invalid_cwl")


def _pick_main(folder: Path, display: str) -> str:
    if (folder / "main.cwl").is_file():
        return "main.cwl"
    candidates = sorted(p.name for p in folder.glob("*.cwl"))
    workflows = [n for n in candidates if "Workflow" in (folder / n).read_text(errors="replace")]
    if len(workflows) == 1:
        return workflows[0]
    if len(candidates) == 1:
        return candidates[0]
    raise Invalid(
        f"{display}: cannot tell which CWL file is the pipeline: name it main.cwl or give the file's path",
        code="invalid_cwl",
    )


def system_pipelines_dir() -> Path:
    return Path(__file__).parent / "system"


_SHIPPED: dict[tuple[str, float], Document] = {}


def _shipped(path: Path) -> Document:
    """Shipped documents are validated once per process (every app start, e.g. in tests, reuses them)."""
    key = (str(path), path.stat().st_mtime)
    if key not in _SHIPPED:
        _SHIPPED[key] = documents.load_file(path)
    return _SHIPPED[key]


def sync_system(db: Session, settings: Settings, admin: User | None = None) -> list[str]:
    """Register the system pipelines shipped with Datalabs (`system/<name>/pipeline.yml` + CWL), adding
    a version when the shipped one is new; returns the names registered or updated."""
    from datalabs.accounts.principal import Principal
    from datalabs.sandbox import parsing

    principal = Principal(user=admin or User(id=None, name="system", role="admin"), groups=frozenset())
    changed = []
    for meta_path in sorted(system_pipelines_dir().glob("*/pipeline.yml")):
        meta = parsing.read_yaml(meta_path, f"{meta_path.parent.name}/{meta_path.name}")
        cwl = meta_path.parent / meta.get("main", "main.cwl")
        document = _shipped(cwl)
        details = Details(
            title=meta.get("title", ""),
            description=meta.get("description", ""),
            keywords=list(meta.get("keywords", [])),
            engine=meta.get("engine", "cwltool"),
        )
        version, name = str(meta["version"]), meta_path.parent.name
        existing = db.scalar(select(Pipeline).where(Pipeline.name == name))
        if existing is None:
            pipeline = create(
                db,
                principal,
                name=name,
                details=details,
                system=True,
                version=version,
                notes=meta.get("notes", ""),
                document=document,
                source=cwl.read_text(),
            )
            pipeline.owner_id = None
            changed.append(name)
        elif not any(v.version == version for v in existing.versions):
            add_version(
                db,
                principal,
                existing,
                version=version,
                notes=meta.get("notes", ""),
                document=document,
                source=cwl.read_text(),
                details=details,
            )
            changed.append(name)
    return changed
