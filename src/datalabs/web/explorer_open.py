"""Open in Datalab from the explorer: a dialog (htmx fragment, or a page without JavaScript) listing the
user's running labs and the datalabs that can open files; choosing one posts a plain form, answered by
a redirect to the file in the lab, or, for a launched lab, to its start page, which then opens the file."""

from __future__ import annotations

from urllib.parse import urlencode

from anyio import to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.deps import get_db
from datalabs.assets import notebooks, opening
from datalabs.assets import service as assets_service
from datalabs.assets.base import AssetRecord
from datalabs.errors import DatalabsError
from datalabs.labs import service as labs_service
from datalabs.labs.jupyter import Jupyter, JupyterError
from datalabs.web.lab_launch import LAUNCHED
from datalabs.web.render import fragment, page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


def _choices(request: Request, db: Session, principal: Principal, record: AssetRecord) -> dict:
    running, launchable = opening.choices(db, request.app.state.catalogue, principal, record)
    # At the running limit the Launch buttons are disabled with the reason (the server refuses anyway).
    blocked = labs_service.launch_block(db, request.app.state.settings, principal)
    return {"asset": record, "running": running, "launchable": launchable, "launch_blocked": blocked}


def _dialog(request: Request, ctx: dict, *, error: str = "", status: int = 200):
    if request.headers.get("hx-request"):
        response = fragment(request, "_explorer_open.html", error=error, **ctx)
        response.status_code = status
        return response
    return page(
        request,
        "explorer_open.html",
        title="Open in Datalab",
        active="explorer",
        status=status,
        error=error,
        **ctx,
    )


@router.get("/explorer/open")
def open_dialog(
    request: Request,
    asset_id: str = Query(..., alias="id", max_length=5000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    record = request.app.state.assets.get(asset_id, assets_service.visible_collections(db, principal))
    return _dialog(request, _choices(request, db, principal, record))


@router.post("/explorer/open")
async def open_in_lab(
    request: Request,
    asset_id: str = Form(..., alias="id", max_length=5000),
    lab_id: str = Form("", max_length=32),
    datalab: str = Form("", max_length=64),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    state = request.app.state

    def run() -> opening.Opened:
        opened = opening.open_asset(
            db,
            state.settings,
            state.catalogue,
            state.assets,
            state.usage,
            principal,
            asset_id,
            lab_id=lab_id or None,
            datalab=None if lab_id else (datalab or None),
        )
        db.commit()
        return opened

    error, status = "Choose one of your running labs, or a datalab to launch.", 422
    if lab_id or datalab:
        try:
            opened = await to_thread.run_sync(run)
        except DatalabsError as exc:
            db.rollback()
            error, status = exc.message, exc.status
        else:
            if opened.launched:
                state.labs.spawn(opened.lab_id, opened.token, open_command=list(opened.command) or None)
            elif opened.how == "notebook":
                return await _notebook(request, opened)
            return _after_open(request, opened)
    record = state.assets.get(asset_id, assets_service.visible_collections(db, principal))
    return _dialog(request, _choices(request, db, principal, record), error=error, status=status)


@router.get("/explorer/open/continue")
def continue_open(
    request: Request,
    asset_id: str = Query(..., alias="id", max_length=5000),
    lab_id: str = Query(..., max_length=32),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    """Where a lab launched to open a file as a notebook goes once it runs: a page that posts the open
    (with JavaScript at once, else with a click), since making the notebook is not for a GET."""
    record = request.app.state.assets.get(asset_id, assets_service.visible_collections(db, principal))
    return page(
        request, "explorer_open.html", title="Open in Datalab", active="explorer", resume=lab_id, asset=record
    )


async def _notebook(request: Request, opened: opening.Opened):
    """Make the notebook that loads the file in the running lab, run its first cell, and go there; if
    its cell could not run, the notebook is still there: go there with the reason said first."""
    route = await request.app.state.routes.get_route(opened.lab_id)
    if route is None:
        return page(
            request,
            "explorer_open.html",
            title="Open in Datalab",
            active="explorer",
            status=409,
            opened=opened,
            error="The lab is not reachable yet; try again in a moment.",
        )
    try:
        prepared = await notebooks.open_as_notebook(
            Jupyter(route, opened.lab_url), opened.media_type, opened.path, opening.notebook_folder(opened)
        )
    except JupyterError as exc:
        return page(
            request,
            "explorer_open.html",
            title="Open in Datalab",
            active="explorer",
            status=502,
            opened=opened,
            error=f"The notebook could not be made in the lab: {exc}",
        )
    url = opening.lab_file_url(opened, prepared.path)
    if prepared.error:  # said here, not in the lab: the notebook with its traceback is one click away
        return page(
            request,
            "explorer_open.html",
            title="Open in Datalab",
            active="explorer",
            opened=opened,
            notebook_url=url,
            error=f"The notebook was made, but {prepared.error}.",
        )
    return redirect(request, url)


def _after_open(request: Request, opened: opening.Opened):
    """A JupyterLab opens the file from its URL: go there (a launched one through its start page, which
    goes on to the file; the one-shot "launched" message makes it do so even if the lab is already up).
    A launched JupyterLab that makes a notebook goes on to `continue_open` instead. Other labs cannot be
    told to open a file: say where it is in the lab, with the way to the lab."""
    if opened.how == "notebook":  # launched: once it runs, make the notebook there
        target = "/explorer/open/continue?" + urlencode({"lab_id": opened.lab_id, "id": opened.asset_id})
    elif opened.how == "file" and opened.url != opened.lab_url:
        target = opened.url
    else:
        return page(request, "explorer_open.html", title="Open in Datalab", active="explorer", opened=opened)
    if not opened.launched:
        return redirect(request, target)
    start = f"/labs/{opened.lab_id}?" + urlencode({"open": target})
    return redirect(request, start, f"You launched a lab to open '{opened.path}'.", kind=LAUNCHED)
