"""Pipeline pages: the catalogue (live search, filters), one page per pipeline with tabs Graph / Code /
Launch, the launch form generated from the CWL inputs (file picker, schedule, notifications), and the
schedules a user made. Runs have their own pages (`run_pages`), the editor too (`pipeline_editor`)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastPath
from markupsafe import Markup
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.clusters import service as clusters
from datalabs.db.models import Pipeline, PipelineVersion
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.pipelines import form, graph, picker, registry, runs, schedules, views
from datalabs.pipelines.documents import describe
from datalabs.web import forms, pipeline_editor, run_pages, trigger_pages
from datalabs.web.pipeline_editor import posted_form
from datalabs.web.render import fragment, page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user
from datalabs.workspaces import service as workspaces

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
# The editor's fixed paths (/pipelines/editor...) must be matched before /pipelines/{name}.
router.include_router(pipeline_editor.router)
router.include_router(run_pages.router)
router.include_router(trigger_pages.router)  # its /pipelines/-/... page before /pipelines/{name}
TABS = (("graph", "Graph", ""), ("code", "Code", "/code"), ("launch", "Launch", "/launch"))


@router.get("/pipelines", name="pipelines_page")
def pipelines_page(
    request: Request,
    q: str = Query("", max_length=200),
    source: str = Query("", pattern="^(|system|mine|shared)$"),
    keyword: str = Query("", max_length=100),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    everything = registry.list_visible(db, principal, q=q.strip())
    shown = views.filter_source(everything, principal, source)
    keywords = views.keyword_counts(shown)
    if keyword:
        shown = [p for p in shown if keyword.lower() in (k.lower() for k in p.keywords)]
        if keyword not in dict(keywords):
            keywords.append((keyword, 0))  # stays visible so it can be unticked
    ctx = {
        "q": q,
        "source": source,
        "keyword": keyword,
        "sources": views.SOURCES,
        "keywords": keywords,
        "cards": [views.card(p, principal) for p in shown],
    }
    headers = {"Vary": "HX-Request"}
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_pipeline_results.html", **ctx)
        response.headers.update(headers)
        return response
    return page(request, "pipelines.html", title="Pipelines", active="pipelines", headers=headers, **ctx)


@router.get("/pipelines/-/files", name="pipeline_file_picker")
def file_picker(
    request: Request,
    target: str = Query(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$"),
    ref: str = Query("", max_length=4096),
    kind: str = Query("File", pattern="^(File|Directory)$"),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    """One folder of the picker (an htmx fragment): choosing a file fills the field `target`."""
    settings = request.app.state.settings
    try:
        shown = picker.folder(db, settings, principal, ref)
        problem = ""
    except DatalabsError as exc:
        shown, problem = picker.roots(db, settings, principal), exc.message
    return fragment(request, "_pipeline_picker.html", folder=shown, target=target, kind=kind, problem=problem)


def _context(pipeline: Pipeline, version: PipelineVersion, principal: Principal, tab: str) -> dict:
    return {
        "pipeline": pipeline,
        "card": views.card(pipeline, principal),
        "pversion": version,  # not "version": the layout shows the platform's version under that name
        "latest": version.id == pipeline.versions[-1].id,
        "versions": list(reversed(pipeline.versions)),
        "tabs": TABS,
        "tab": tab,
        "query": f"?{urlencode({'version': version.version})}"
        if version.id != pipeline.versions[-1].id
        else "",
        "may_change": registry.may_change(pipeline, principal),
    }


@router.get("/pipelines/{name}", name="pipeline_page")
def pipeline_page(
    request: Request,
    name: str,
    version: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    return show_pipeline(request, db, principal, name, version)


def show_pipeline(request: Request, db: Session, principal: Principal, name: str, version: str = "", **extra):
    """The pipeline's page; `extra` for what one answer adds (a new webhook trigger's secret, once)."""
    pipeline = registry.get_visible(db, principal, name)
    row = registry.version_of(pipeline, version or None)
    doc = describe(row.packed)
    return page(
        request,
        "pipeline.html",
        title=pipeline.title or pipeline.name,
        active="pipelines",
        graph_svg=Markup(graph.svg(graph.graph(row.packed))),  # every label is escaped by graph.svg
        document=doc,
        **trigger_pages.section(db, principal, pipeline),
        **_context(pipeline, row, principal, "graph"),
        **{"new_secret": None, **extra},
    )


@router.get("/pipelines/{name}/code", name="pipeline_code_page")
def pipeline_code_page(
    request: Request,
    name: str,
    version: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    pipeline = registry.get_visible(db, principal, name)
    row = registry.version_of(pipeline, version or None)
    return page(
        request,
        "pipeline_code.html",
        title=f"Code of {pipeline.title or pipeline.name}",
        active="pipelines",
        code=row.source or "",
        **_context(pipeline, row, principal, "code"),
    )


def _launch_page(
    request: Request,
    db: Session,
    principal: Principal,
    pipeline: Pipeline,
    row: PipelineVersion,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    settings = request.app.state.settings
    doc = describe(row.packed)
    spaces = [s for s in workspaces.list_spaces(db, settings, principal) if s.writable]
    return page(
        request,
        "pipeline_launch.html",
        title=f"Launch {pipeline.title or pipeline.name}",
        active="pipelines",
        status=status,
        fields=form.fields(doc.inputs, typed),
        typed=typed or {},
        errors=errors or {},
        spaces=spaces,
        engines=registry.ENGINES,
        clusters=clusters.visible(settings, principal),
        policy=schedules.POLICY,
        own_email=principal.user.email or "",
        mail=bool(request.app.state.settings.pipelines.smtp_host),
        my_schedules=schedules.list_for(db, principal, pipeline),
        **_context(pipeline, row, principal, "launch"),
    )


@router.get("/pipelines/{name}/launch", name="pipeline_launch_page")
def pipeline_launch_page(
    request: Request,
    name: str,
    version: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    pipeline = registry.get_visible(db, principal, name)
    return _launch_page(request, db, principal, pipeline, registry.version_of(pipeline, version or None))


@router.post("/pipelines/{name}/launch", name="pipeline_launch")
def launch(
    request: Request,
    name: str,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    pipeline = registry.get_visible(db, principal, name)
    row = registry.version_of(pipeline, posted.get("version") or None)
    params = describe(row.packed).inputs
    inputs, errors = form.parse(params, posted)
    try:
        notify = form.notify_of(posted, principal.user.email or "")
    except DatalabsError as exc:
        errors["notify"] = exc.message
    if errors:
        return _launch_page(request, db, principal, pipeline, row, typed=posted, errors=errors, status=422)
    settings = request.app.state.settings
    output = posted.get("output", "me")
    scheduled = posted.get("when") == "schedule"

    def action():
        if scheduled:
            return schedules.create(
                db,
                settings,
                principal,
                pipeline,
                cron=posted.get("cron", ""),
                inputs=inputs,
                version=row.version if posted.get("pin") else None,
                output_space=output,
                notify=notify,
                cluster=posted.get("cluster") or None,
            )
        return runs.submit(
            db,
            settings,
            principal,
            pipeline,
            inputs=inputs,
            version=row.version,
            output_space=output,
            notify=notify,
            engine=posted.get("engine") or None,
            cluster=posted.get("cluster") or None,
        )

    def made(done):
        if scheduled:
            due = done.next_due.strftime("%Y-%m-%d %H:%M UTC")
            return redirect(
                request, f"/pipelines/{name}/launch", f"Schedule '{done.cron}' created: first run {due}."
            )
        if (worker := getattr(request.app.state, "pipeline_worker", None)) is not None:
            worker.wake()
        return redirect(request, f"/runs/{done.id}", f"Run {done.id} of {pipeline.name} queued.")

    def again(exc: DatalabsError):
        place = form.error_place(exc.message, {p.id for p in params})
        errors = {place: exc.message}
        return _launch_page(
            request, db, principal, pipeline, row, typed=posted, errors=errors, status=exc.status
        )

    return forms.submit(request, db, action, refused=again, then=made)


@router.post("/pipelines/{name}/schedules/{schedule_id}/delete", name="pipeline_schedule_delete")
def delete_schedule(
    request: Request,
    name: str,
    schedule_id: int = FastPath(ge=1, le=2**31 - 1),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    registry.get_visible(db, principal, name)
    schedules.delete(db, principal, schedule_id)
    db.commit()
    return redirect(request, f"/pipelines/{name}/launch", f"Schedule {schedule_id} deleted.")
