"""Run pages: the list of a user's runs (every user's for admins who ask) with filters, and one run's page
with tabs Logs (followed live while the run lasts) / Parameters / Graph / Code / Outputs, and Cancel.
Runs are visible to their owner and to admins only: everyone else gets a 404, as from the API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import NotFound
from datalabs.pipelines import deliveries, graph, queue, registry, runs, trigger_events, views
from datalabs.web.render import fragment, page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user
from datalabs.web.workspace_pages import api_url, folder_url

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
TABS = (
    ("logs", "Logs", ""),
    ("parameters", "Parameters", "/parameters"),
    ("graph", "Graph", "/graph"),
    ("code", "Code", "/code"),
    ("outputs", "Outputs", "/outputs"),
)
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
PER_PAGE = 100


@router.get("/runs", name="runs_page")
def runs_page(
    request: Request,
    state: str = Query("", pattern="^(|queued|running|succeeded|failed|cancelled)$"),
    pipeline: str = Query("", max_length=64),
    all: bool = Query(False, description="Admins: every user's runs."),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    everyone = all and principal.is_admin
    found = runs.list_for(db, principal, pipeline=pipeline, state=state, everyone=everyone, limit=PER_PAGE)
    ctx = {
        "runs": [views.run_summary(r) for r in found],
        "state": state,
        "pipeline": pipeline,
        "everyone": everyone,
        "states": STATES,
        "pipelines": [p.name for p in registry.list_visible(db, principal)],
        "per_page": PER_PAGE,
        "refresh_url": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    headers = {"Vary": "HX-Request", "Cache-Control": "no-store"}
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_run_results.html", **ctx)
        response.headers.update(headers)
        return response
    return page(request, "runs.html", title="Pipeline runs", active="pipelines", headers=headers, **ctx)


def _run_page(request: Request, db: Session, principal: Principal, run, tab: str, **ctx):
    summary = views.run_summary(run)
    return page(
        request,
        "run.html",
        title=f"Run {run.id} of {run.pipeline.name}",
        active="pipelines",
        run=summary,
        tabs=TABS,
        tab=tab,
        own=run.owner_id == principal.user.id,
        notified=deliveries.for_run(db, run.id),  # what was sent where, and how it went
        unsent=deliveries.unsent(run),
        started_by=run.triggered_by,  # the trigger and event that started it, and what its end started
        chained=trigger_events.after_run(db, run.id) if run.state in queue.FINAL else [],
        headers={"Cache-Control": "no-store"},
        **ctx,
    )


@router.get("/runs/{run_id}", name="run_page")
def run_page(
    request: Request, run_id: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    run = runs.get(db, principal, run_id)
    log = runs.read_log(request.app.state.settings, run)
    # While the run lasts, the page's JavaScript follows the log stream from where the page's text ends.
    active = run.state not in queue.FINAL
    events = f"/api/v1/runs/{run.id}/logs?follow=true&offset={len(log)}" if active else ""
    return _run_page(request, db, principal, run, "logs", log=log.decode(errors="replace"), events=events)


@router.get("/runs/{run_id}/{tab}", name="run_tab_page")
def run_tab_page(
    request: Request,
    run_id: str,
    tab: str,
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    run = runs.get(db, principal, run_id)
    if tab == "parameters":
        ctx = {"parameters": views.parameters(run)}
    elif tab == "graph":
        ctx = {"graph_svg": Markup(graph.svg(graph.graph(run.version.packed)))}
    elif tab == "code":
        ctx = {"code": run.version.source or ""}
    elif tab == "outputs":
        ctx = _outputs(run, run.owner_id == principal.user.id)
    else:
        raise NotFound(f"a run has no '{tab}' tab", code="not_found")
    return _run_page(request, db, principal, run, tab, **ctx)


def _outputs(run, own: bool) -> dict:
    """Links into the owner's workspace (only for the owner: "me" means the viewer's own workspace)."""
    files = views.output_files(run.outputs)
    for f in files:
        space, path = views.split_ref(f["ref"])
        f["href"] = (
            (folder_url(space, path) if f["class"] == "Directory" else api_url(space, path)) if own else ""
        )
    folder = ""
    if run.output_path and own:
        space, path = views.split_ref(run.output_path)
        folder = folder_url(space, path)
    return {"files": files, "folder": folder}


@router.post("/runs/{run_id}/cancel", name="run_cancel")
def cancel_run(
    request: Request, run_id: str, principal: Principal = Depends(posting_user), db: Session = Depends(get_db)
):
    run = runs.get(db, principal, run_id)
    runs.cancel(db, run)
    db.commit()
    db.refresh(run)
    message = (
        "Run cancelled." if run.state == "cancelled" else "Cancel requested: the run stops within seconds."
    )
    return redirect(request, f"/runs/{run_id}", message)
