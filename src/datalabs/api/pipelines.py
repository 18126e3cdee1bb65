"""Pipelines: the registry (list, register, versions, graph, code, validate), launching runs, schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.runs import RunRead
from datalabs.api.schemas import Strict
from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineSchedule, PipelineVersion
from datalabs.deps import get_db, get_settings, scope
from datalabs.errors import Invalid
from datalabs.pipelines import documents, graph, registry, runs, schedules
from datalabs.pipelines.inputs import place_of

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses={401: {}, 403: {}})
read, write = scope("pipelines:read"), scope("pipelines:write")


class Bundle(Strict):
    main: str = Field(max_length=1100, description="The document's path among `files`, optionally #process.")
    files: dict[str, str] = Field(description="Path below one folder -> content (base64).")


class Source(Strict):
    bundle: Bundle | None = Field(
        None, description="Or the document with the files it references (as `datalabs cwl-runner` sends)."
    )
    cwl: str | None = Field(
        None, max_length=documents.MAX_DOCUMENT, description="The CWL document (YAML/JSON)."
    )
    filename: str = Field("pipeline.cwl", max_length=255, description="Name used in error messages.")
    workspace_path: str | None = Field(
        None, max_length=4096, description="Or a .cwl file or folder in a workspace, e.g. me/cwl/main.cwl"
    )


class DetailsBody(Strict):
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=20000)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    allowed_users: list[str] = Field(default_factory=list, max_length=200)
    allowed_groups: list[str] = Field(default_factory=list, max_length=100)
    engine: str = Field("cwltool", max_length=32)


class PipelineCreate(Source, DetailsBody):
    name: str = Field(min_length=1, max_length=64)
    version: str = Field("1.0", max_length=64)
    notes: str = Field("", max_length=20000)
    system: bool = Field(False, description="Administrators: visible to everyone.")


class VersionCreate(Source):
    version: str = Field(min_length=1, max_length=64)
    notes: str = Field("", max_length=20000)
    details: DetailsBody | None = None


class RunCreate(Strict):
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(None, max_length=64)
    output_dir: str = Field("me", max_length=100, description="Workspace for outputs: 'me' or 'team:<name>'.")
    notify: dict[str, Any] | None = None
    timeout: int | None = Field(None, description="Seconds; default pipelines.default_timeout.")
    engine: str | None = Field(None, max_length=32, description="Override the pipeline's default engine.")
    cluster: str | None = Field(
        None,
        max_length=64,
        description="Configured cluster the run's jobs go to; default: the first of yours.",
    )
    ignore_unknown_inputs: bool = Field(
        False, description="Leave out input names the pipeline does not take (cwltool's job semantics)."
    )
    tracking_team: str | None = Field(
        None,
        max_length=64,
        description="A team of yours whose MLflow tracking server the run's tools log to "
        "(MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN); default: the first of your teams with one running.",
    )


class ScheduleCreate(Strict):
    cron: str = Field(max_length=100, description="minute hour day month weekday, UTC (e.g. '0 3 * * *')")
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(None, max_length=64, description="Empty: the newest version at each fire.")
    output_dir: str = Field("me", max_length=100)
    notify: dict[str, Any] | None = None
    cluster: str | None = Field(
        None, max_length=64, description="Cluster of the runs it makes; default: your first at each run."
    )


class VersionRead(BaseModel):
    version: str
    notes: str
    digest: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, v: PipelineVersion) -> VersionRead:
        return cls(
            version=v.version,
            notes=v.notes,
            digest=v.digest,
            created_by=v.created_by,
            created_at=v.created_at,
        )


class PipelineRead(BaseModel):
    name: str
    title: str
    description: str
    keywords: list[str]
    system: bool
    owner: str
    allowed_users: list[str]
    allowed_groups: list[str]
    engine: str
    latest: str
    versions: list[str]
    cwl_class: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    created_at: datetime

    @classmethod
    def of(cls, p: Pipeline, version: PipelineVersion | None = None) -> PipelineRead:
        version = version or p.versions[-1]
        doc = documents.describe(version.packed)
        return cls(
            name=p.name,
            title=p.title,
            description=p.description,
            keywords=p.keywords,
            system=p.system,
            owner=p.owner.name if p.owner else "",
            allowed_users=p.allowed_users,
            allowed_groups=p.allowed_groups,
            engine=p.engine,
            latest=p.versions[-1].version,
            versions=[v.version for v in p.versions],
            cwl_class=doc.cwl_class,
            inputs=[i.as_dict() for i in doc.inputs],
            outputs=[o.as_dict() for o in doc.outputs],
            created_at=p.created_at,
        )


class ScheduleRead(BaseModel):
    id: int
    pipeline: str
    version: str
    owner: str
    cron: str
    inputs: dict[str, Any]
    output_dir: str
    notify: dict[str, Any]
    cluster: str
    enabled: bool
    next_due: datetime
    missed_policy: str = schedules.POLICY

    @classmethod
    def of(cls, s: PipelineSchedule) -> ScheduleRead:
        return cls(
            id=s.id,
            pipeline=s.pipeline.name,
            version=s.version,
            owner=s.owner.name,
            cron=s.cron,
            inputs=s.inputs,
            output_dir=s.output_space,
            notify=s.notify,
            cluster=s.cluster,
            enabled=s.enabled,
            next_due=s.next_due,
        )


def load_source(db: Session, settings: Settings, principal: Principal, body: Source):
    """(document, source text) from inline CWL, a bundle or a workspace path; exactly one must be given."""
    if [body.cwl, body.workspace_path, body.bundle].count(None) != 2:
        raise Invalid("give one of 'cwl' (the document), 'bundle' or 'workspace_path'", code="bad_source")
    containers = settings.pipelines.containers
    if body.bundle is not None:
        files = _decoded(body.bundle.files)
        document = documents.load_bundle(body.bundle.main, files, containers)
        main = body.bundle.main.partition("#")[0]
        return document, files[main].decode(errors="replace")
    if body.cwl is not None:
        return documents.load_text(body.filename, body.cwl, containers), body.cwl
    place = place_of(db, settings, principal, body.workspace_path)
    return registry.document_from_tree(place.root, place.parts, body.workspace_path, containers)


def _decoded(files: dict[str, str]) -> dict[str, bytes]:
    import base64
    import binascii

    try:
        return {name: base64.b64decode(data, validate=True) for name, data in files.items()}
    except (binascii.Error, ValueError):
        raise Invalid("bundle.files: each content must be base64", code="bad_source") from None


def _details(body: DetailsBody) -> registry.Details:
    return registry.Details(**body.model_dump(include=set(DetailsBody.model_fields)))


@router.get("/pipelines", response_model=list[PipelineRead])
def list_pipelines(
    q: str = Query("", max_length=200),
    keyword: str = Query("", max_length=100),
    kind: str = Query("", pattern="^(|system|user)$"),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    return [PipelineRead.of(p) for p in registry.list_visible(db, principal, q=q, keyword=keyword, kind=kind)]


@router.post("/pipelines", status_code=201, response_model=PipelineRead, responses={409: {}, 422: {}})
def create_pipeline(
    body: PipelineCreate,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Register a pipeline from a CWL document (single file or packed) or a workspace file or folder."""
    document, source = load_source(db, settings, principal, body)
    pipeline = registry.create(
        db,
        principal,
        name=body.name,
        details=_details(body),
        system=body.system,
        version=body.version,
        notes=body.notes,
        document=document,
        source=source,
    )
    db.commit()
    return PipelineRead.of(pipeline)


@router.post("/pipelines/validate", responses={422: {}})
def validate(
    body: Source,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Check a document without registering it (the editor's messages as you type)."""
    document, _ = load_source(db, settings, principal, body)
    return {
        "valid": True,
        "class": document.cwl_class,
        "inputs": [i.as_dict() for i in document.inputs],
        "outputs": [o.as_dict() for o in document.outputs],
        "graph": graph.graph(document.packed),
    }


@router.get("/pipelines/{name}", response_model=PipelineRead, responses={404: {}})
def get_pipeline(
    name: str,
    version: str | None = Query(None, max_length=64),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    pipeline = registry.get_visible(db, principal, name)
    return PipelineRead.of(pipeline, registry.version_of(pipeline, version))


@router.get("/pipelines/{name}/versions", response_model=list[VersionRead], responses={404: {}})
def list_versions(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return [VersionRead.of(v) for v in registry.get_visible(db, principal, name).versions]


@router.post("/pipelines/{name}/versions", status_code=201, response_model=PipelineRead, responses={404: {}})
def push_version(
    name: str,
    body: VersionCreate,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Publish a new immutable version (owners; admins for system pipelines)."""
    pipeline = registry.get_visible(db, principal, name)
    document, source = load_source(db, settings, principal, body)
    details = _details(body.details) if body.details else None
    row = registry.add_version(
        db,
        principal,
        pipeline,
        version=body.version,
        notes=body.notes,
        document=document,
        source=source,
        details=details,
    )
    db.commit()
    return PipelineRead.of(pipeline, row)


@router.get("/pipelines/{name}/graph", responses={404: {}})
def get_graph(
    name: str,
    version: str | None = Query(None, max_length=64),
    format: str = Query("json", pattern="^(json|svg)$"),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    row = registry.version_of(registry.get_visible(db, principal, name), version)
    g = graph.graph(row.packed)
    if format == "svg":
        return PlainTextResponse(graph.svg(g), media_type="image/svg+xml")
    return g


@router.get("/pipelines/{name}/code", response_class=PlainTextResponse, responses={404: {}})
def get_code(
    name: str,
    version: str | None = Query(None, max_length=64),
    packed: bool = Query(False, description="The packed document engines run, instead of the source."),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
):
    import json

    row = registry.version_of(registry.get_visible(db, principal, name), version)
    return json.dumps(row.packed, indent=2) if packed or not row.source else row.source


@router.post("/pipelines/{name}/runs", status_code=202, response_model=RunRead, responses={404: {}, 422: {}})
def launch_run(
    name: str,
    body: RunCreate,
    request: Request,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Queue a run. Inputs, files and the output workspace are checked first: on error nothing is queued."""
    pipeline = registry.get_visible(db, principal, name)
    run = runs.submit(
        db,
        settings,
        principal,
        pipeline,
        inputs=body.inputs,
        version=body.version,
        output_space=body.output_dir,
        notify=body.notify,
        timeout=body.timeout,
        engine=body.engine,
        cluster=body.cluster,
        ignore_unknown_inputs=body.ignore_unknown_inputs,
        tracking_team=body.tracking_team,
    )
    db.commit()
    if (worker := getattr(request.app.state, "pipeline_worker", None)) is not None:
        worker.wake()
    return RunRead.of(run)


@router.get("/pipelines/{name}/schedules", response_model=list[ScheduleRead], responses={404: {}})
def list_schedules(name: str, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return [
        ScheduleRead.of(s)
        for s in schedules.list_for(db, principal, registry.get_visible(db, principal, name))
    ]


@router.post("/pipelines/{name}/schedules", status_code=201, response_model=ScheduleRead, responses={404: {}})
def create_schedule(
    name: str,
    body: ScheduleCreate,
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    pipeline = registry.get_visible(db, principal, name)
    schedule = schedules.create(
        db,
        settings,
        principal,
        pipeline,
        cron=body.cron,
        inputs=body.inputs,
        version=body.version,
        output_space=body.output_dir,
        notify=body.notify,
        cluster=body.cluster,
    )
    db.commit()
    return ScheduleRead.of(schedule)


@router.delete("/schedules/{schedule_id}", status_code=204, responses={404: {}})
def delete_schedule(
    schedule_id: int = FastPath(ge=1, le=2**31 - 1),
    principal: Principal = Depends(write),
    db: Session = Depends(get_db),
):
    schedules.delete(db, principal, schedule_id)
    db.commit()
