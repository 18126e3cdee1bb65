"""The pipeline editor's service side: open a CWL document from a workspace or a registered pipeline,
and "Push" the edited text — registering the pipeline on its first push, a new immutable version after.
Validation is the registry's own (`documents.load_text`), the same the API's validate endpoint runs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Pipeline
from datalabs.errors import Invalid
from datalabs.pipelines import documents, registry
from datalabs.pipelines.inputs import place_of
from datalabs.workspaces.paths import open_file

NEW_DOCUMENT = """cwlVersion: v1.2
class: CommandLineTool
label: My tool
doc: What this tool does, in a sentence or two.
baseCommand: [sh, -c, 'echo "$0" > out.txt']
arguments: [$(inputs.message)]
inputs:
  message:
    type: string
    default: hello
    label: Message to write
outputs:
  out:
    type: File
    outputBinding: {glob: out.txt}
"""
LIST_SPLIT = re.compile(r"[\s,]+")


@dataclass
class Draft:
    """Everything the editor shows and pushes; built from a form, a workspace file or a pipeline."""

    cwl: str = NEW_DOCUMENT
    filename: str = "pipeline.cwl"
    path: str = ""  # the workspace file it came from, if any
    name: str = ""
    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    allowed_users: list[str] = field(default_factory=list)
    allowed_groups: list[str] = field(default_factory=list)
    engine: str = "cwltool"
    version: str = "1.0"
    notes: str = ""
    system: bool = False

    @classmethod
    def from_form(cls, form: dict[str, str]) -> Draft:
        def words(key: str) -> list[str]:
            return [w for w in LIST_SPLIT.split(form.get(key, "").strip()) if w]

        return cls(
            cwl=form.get("cwl", "").replace("\r\n", "\n"),
            filename=form.get("filename", "").strip() or "pipeline.cwl",
            path=form.get("path", "").strip(),
            name=form.get("name", "").strip(),
            title=form.get("title", "").strip(),
            description=form.get("description", "").strip(),
            keywords=[k.strip() for k in form.get("keywords", "").split(",") if k.strip()],
            allowed_users=words("allowed_users"),
            allowed_groups=words("allowed_groups"),
            engine=form.get("engine", "cwltool"),
            version=form.get("version", "").strip(),
            notes=form.get("notes", "").strip(),
            system=bool(form.get("system")),
        )

    def details(self) -> registry.Details:
        return registry.Details(
            title=self.title,
            description=self.description,
            keywords=self.keywords,
            allowed_users=self.allowed_users,
            allowed_groups=self.allowed_groups,
            engine=self.engine,
        )


def next_version(version: str) -> str:
    """A suggestion for the next version: the last number counted up (1.0 -> 1.1, v2 -> v3)."""
    match = re.search(r"(\d+)(?!.*\d)", version)
    if not match:
        return f"{version}.1" if version else "1.0"
    return version[: match.start()] + str(int(match.group(1)) + 1) + version[match.end() :]


def from_pipeline(draft: Draft, pipeline: Pipeline) -> Draft:
    """The draft with a registered pipeline's details and newest source, ready for its next version."""
    latest = pipeline.versions[-1]
    draft.cwl = latest.source or draft.cwl
    draft.name, draft.title, draft.description = pipeline.name, pipeline.title, pipeline.description
    draft.keywords, draft.engine, draft.system = list(pipeline.keywords), pipeline.engine, pipeline.system
    draft.allowed_users, draft.allowed_groups = list(pipeline.allowed_users), list(pipeline.allowed_groups)
    draft.version, draft.filename = next_version(latest.version), f"{pipeline.name}.cwl"
    return draft


def from_workspace(db: Session, settings: Settings, principal: Principal, path: str) -> Draft:
    """A draft of the `.cwl` file `path` (me/..., team:<t>/...); its name suggested from the file name, and
    the details of the pipeline of that name when the user may push to it."""
    place = place_of(db, settings, principal, path)
    fd, st = open_file(place.root, place.parts)
    with os.fdopen(fd, "rb") as f:
        if st.st_size > documents.MAX_DOCUMENT:
            raise Invalid(f"{path}: larger than {documents.MAX_DOCUMENT // 1024} KiB", code="invalid_cwl")
        text = f.read().decode("utf-8", errors="replace")
    filename = place.parts[-1]
    stem = re.sub(r"[^a-z0-9_.-]", "-", filename.rsplit(".", 1)[0].lower()).strip("-.") or "pipeline"
    draft = Draft(filename=filename, path=path, name=stem[:64])
    existing = db.scalar(select(Pipeline).where(Pipeline.name == draft.name))
    if existing is not None and existing.versions and registry.may_change(existing, principal):
        from_pipeline(draft, existing)
    draft.cwl, draft.filename, draft.path = text, filename, path
    return draft


def push(db: Session, principal: Principal, draft: Draft) -> tuple[Pipeline, bool]:
    """(pipeline, created?): registers `draft.name` on its first push, else publishes a new version."""
    document = documents.load_text(draft.filename, draft.cwl)
    existing = db.scalar(select(Pipeline).where(Pipeline.name == draft.name))
    if existing is None or not registry.visible(existing, principal):
        # Someone else's private pipeline of that name: create() says the name is taken, and no more.
        pipeline = registry.create(
            db,
            principal,
            name=draft.name,
            details=draft.details(),
            system=draft.system,
            version=draft.version,
            notes=draft.notes,
            document=document,
            source=draft.cwl,
        )
        return pipeline, True
    registry.add_version(
        db,
        principal,
        existing,
        version=draft.version,
        notes=draft.notes,
        document=document,
        source=draft.cwl,
        details=draft.details(),
    )
    return existing, False


# Where the editor shows a service's refusal, by the error's code (CWL problems go next to the text).
PLACES = {
    "invalid_pipeline_name": "name",
    "pipeline_exists": "name",
    "not_owner": "name",
    "invalid_version": "version",
    "version_exists": "version",
    "unknown_engine": "engine",
    "user_not_found": "allowed_users",
    "group_not_found": "allowed_groups",
    "not_admin": "system",
    "invalid_cwl": "cwl",
    "unsupported_requirement": "cwl",
}


def error_place(code: str) -> str:
    return PLACES.get(code, "page")


def draft_pipeline_name(user: str, name: str) -> str:
    """The private pipeline that holds a user's test runs of a draft (never shared, named as such)."""
    base = re.sub(r"[^a-z0-9_.-]", "-", f"draft.{user}.{name or 'pipeline'}".lower())
    return base[:64].rstrip("-.")


def push_test(db: Session, principal: Principal, draft: Draft) -> Pipeline:
    """The draft as a new version of the user's private draft pipeline, so a test run goes through the
    same queue, engine and sandbox as any run."""
    document = documents.load_text(draft.filename, draft.cwl)
    name = draft_pipeline_name(principal.name, draft.name)
    pipeline = db.scalar(select(Pipeline).where(Pipeline.name == name))
    details = registry.Details(
        title=f"Draft of {draft.name or 'a new pipeline'}",
        description="Test runs from the pipeline editor.",
        keywords=["draft"],
        engine=draft.engine if draft.engine in registry.ENGINES else "cwltool",
    )
    if pipeline is None:
        return registry.create(
            db,
            principal,
            name=name,
            details=details,
            system=False,
            version="draft-1",
            notes="",
            document=document,
            source=draft.cwl,
        )
    if pipeline.versions and pipeline.versions[-1].digest == document.digest:
        return pipeline  # unchanged since the last test: reuse that version
    registry.add_version(
        db,
        principal,
        pipeline,
        version=f"draft-{len(pipeline.versions) + 1}",
        notes="",
        document=document,
        source=draft.cwl,
        details=details,
    )
    return pipeline


async def save(db: Session, settings: Settings, principal: Principal, usage, path: str, text: str) -> str:
    """Write the edited text to the workspace file `path` (atomically, within the quota); returns the
    reference it was saved as. Data volumes are read-only."""
    from anyio import to_thread

    from datalabs.workspaces import service as workspaces
    from datalabs.workspaces.paths import parts_of
    from datalabs.workspaces.upload import upload

    space_id, _, rest = path.strip().partition("/")
    if not rest.strip("/"):
        raise Invalid("give the file to save to, e.g. me/cwl/tool.cwl", code="bad_path")
    if space_id.startswith("volume:"):
        raise Invalid("data volumes are read-only: save into me/... or team:<team>/...", code="read_only")
    space = workspaces.resolve(db, settings, principal, space_id, write=True)
    parts = parts_of(rest)
    data = text.encode()

    async def body():
        yield data

    free = await to_thread.run_sync(usage.free, space)
    done = await upload(
        space.tree, parts, body(), free=free, declared=len(data), fsync=settings.workspaces.fsync
    )
    usage.add(space, done.added)
    return f"{space.id}/{'/'.join(parts)}"
