"""Trigger pages: a pipeline's triggers (the Triggers section of its page: create, pause, resume, test,
delete), and "new data" triggers made from the explorer's current search. A webhook's secret is shown on
the page that answers its creation, once; it never travels in a URL or a flash cookie."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastPath
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets.base import FACETS
from datalabs.deps import get_db
from datalabs.errors import DatalabsError, Invalid
from datalabs.pipelines import registry, trigger_events, trigger_watch, triggers
from datalabs.pipelines.documents import describe
from datalabs.volumes import service as volumes
from datalabs.web import forms
from datalabs.web.pipeline_editor import posted_form
from datalabs.web.render import page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
SEARCH_FIELDS = ("q", "from", "to", "bbox")


def section(db: Session, principal: Principal, pipeline) -> dict[str, Any]:
    """The Triggers section's context on the pipeline's page."""
    mine = triggers.list_for(db, principal, pipeline)
    return {
        "triggers": [{"t": t, "events": trigger_events.recent(db, t, 5)} for t in mine],
        "pipeline_names": [p.name for p in registry.list_visible(db, principal)],
    }


def _config(kind: str, posted: dict[str, str]) -> dict[str, Any]:
    if kind == "new_data":
        config: dict[str, Any] = {"watch": posted.get("watch", ""), "mode": posted.get("mode", "per_file")}
        for key in ("pattern", "input"):
            if posted.get(key):
                config[key] = posted[key]
        if posted.get("window"):
            try:
                config["window"] = int(posted["window"])
            except ValueError:
                raise Invalid("window: whole seconds", code="bad_trigger_config") from None
        if posted.get("search"):
            try:
                config["search"] = json.loads(posted["search"])
            except ValueError:
                raise Invalid("search: not a saved search", code="bad_trigger_config") from None
        return config
    if kind == "run_finished":
        pairs = [p.partition("=") for p in posted.get("map", "").replace(",", " ").split() if p]
        return {
            "after": posted.get("after", ""),
            "on": ["succeeded", "failed"] if posted.get("on_failed") else ["succeeded"],
            "map": {i.strip(): o.strip() for i, _, o in pairs},
        }
    return {}


@router.post("/pipelines/{name}/triggers", name="pipeline_trigger_create")
def create(
    request: Request,
    name: str,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    pipeline = registry.get_visible(db, principal, name)
    settings = request.app.state.settings
    kind = posted.get("kind", "")

    def action():
        return triggers.create(
            db, settings, principal, pipeline, kind=kind, config=_config(kind, posted),
            name=posted.get("name", ""), output_space=posted.get("output") or "me",
        )  # fmt: skip

    def made(done):
        trigger, secret = done
        trigger_watch.wake()  # a new folder or search is looked at now, not at the next scan
        if not secret:
            return redirect(request, f"/pipelines/{name}#triggers", f"Trigger {trigger.id} ({kind}) created.")
        from datalabs.web.pipeline_pages import show_pipeline  # the page again, with the secret once

        return show_pipeline(request, db, principal, name, new_secret={"trigger": trigger, "secret": secret})

    def refused(exc: DatalabsError):
        return redirect(request, f"/pipelines/{name}#triggers", f"No trigger created: {exc.message}", "error")

    return forms.submit(request, db, action, refused=refused, then=made)


@router.post("/pipelines/{name}/triggers/{trigger_id}/{action}", name="pipeline_trigger_action")
def act(
    request: Request,
    name: str,
    action: str = FastPath(pattern="^(pause|resume|delete|test)$"),
    trigger_id: int = FastPath(ge=1, le=2**31 - 1),
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    registry.get_visible(db, principal, name)
    back = f"/pipelines/{name}#triggers"
    if action == "test":
        settings = request.app.state.settings
        try:
            fired = triggers.test(
                request.app.state.sessions, settings, principal, trigger_id, file=posted.get("file", "")
            )
        except DatalabsError as exc:
            return redirect(request, back, f"Test of trigger {trigger_id}: {exc.message}", "error")
        if (worker := getattr(request.app.state, "pipeline_worker", None)) is not None:
            worker.wake()
        if fired.run_id:
            return redirect(
                request, f"/runs/{fired.run_id}", f"Trigger {trigger_id} fired: run {fired.run_id} queued."
            )
        return redirect(request, back, f"Trigger {trigger_id} fired without a run: {fired.skipped}", "error")
    change = {"pause": triggers.pause, "resume": triggers.resume, "delete": triggers.delete}[action]
    change(db, principal, trigger_id)
    db.commit()
    if action == "resume":
        trigger_watch.wake()
    done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[action]
    return redirect(request, back, f"Trigger {trigger_id} {done}.")


def saved_search(request: Request) -> dict[str, Any]:
    """The explorer's query parameters as a trigger's saved search (collection, facets, text, bbox, time)."""
    query = request.query_params
    facets = {
        f: vs[:50] for f in FACETS if (vs := [v for v in query.getlist(f) if v.strip()]) and f != "collection"
    }
    search: dict[str, Any] = {}
    if collections := [c for c in query.getlist("collection") if c.strip()]:
        search["collection"] = collections[0] if len(collections) == 1 else collections
    if facets:
        search["facets"] = facets
    if query.get("q", "").strip():
        search["q"] = query["q"].strip()[:200]
    if query.get("bbox", "").strip():
        search["bbox"] = query["bbox"].strip()[:200]
    if query.get("from") or query.get("to"):
        search["datetime"] = f"{query.get('from') or '..'}/{query.get('to') or '..'}"
    return search


@router.get("/pipelines/-/new-data-trigger", name="new_data_trigger_page")
def new_data_trigger_page(
    request: Request,
    pipeline: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    """From the explorer: start a pipeline when new files matching this search land."""
    search = saved_search(request)
    watch = ""
    collection = search.get("collection")
    if isinstance(collection, str):
        try:
            watch = f"volume:{volumes.get_visible(db, principal, collection).name}"
        except DatalabsError:
            watch = ""
    choices = []
    for p in registry.list_visible(db, principal):
        if not p.versions:
            continue
        files = [i.id for i in describe(p.versions[-1].packed).inputs if "File" in str(i.type)]
        if files:
            choices.append({"name": p.name, "title": p.title or p.name, "inputs": files})
    return page(
        request,
        "trigger_new_data.html",
        title="Start a pipeline on new data",
        active="explorer",
        search=search,
        search_json=json.dumps(search),
        watch=watch,
        choices=choices,
        chosen=pipeline,
    )


@router.post("/pipelines/-/new-data-trigger", name="new_data_trigger_create")
def new_data_trigger_create(
    request: Request,
    principal: Principal = Depends(posting_user),
    posted: dict[str, str] = Depends(posted_form),
    db: Session = Depends(get_db),
):
    name = posted.get("pipeline", "")
    pipeline = registry.get_visible(db, principal, name)
    settings = request.app.state.settings

    def action():
        config = _config("new_data", posted)
        return triggers.create(db, settings, principal, pipeline, kind="new_data", config=config,
                               name=posted.get("name", "") or "new data from the explorer")  # fmt: skip

    def refused(exc: DatalabsError):
        return redirect(request, "/explorer", f"No trigger created: {exc.message}", "error")

    def made(done):
        trigger = done[0]
        trigger_watch.wake()
        watch = trigger.config["watch"]
        where = f"new files in {watch}" if watch else "new matches of the search"
        done_text = f"Trigger {trigger.id} created: {where} start {name}."
        return redirect(request, f"/pipelines/{name}#triggers", done_text)

    return forms.submit(request, db, action, refused=refused, then=made)
