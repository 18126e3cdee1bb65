"""Open in Datalab from the explorer: a dialog (htmx fragment, or a page without JavaScript) listing the
user's running labs and the datalabs that can open files; choosing one posts a plain form, answered by
a redirect to the file in the lab, or, for a launched lab, to its start page, which then opens the file."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets import opening
from datalabs.assets import service as assets_service
from datalabs.assets.base import AssetRecord
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.labs import service as labs_service
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
    error, status = "Choose one of your running labs, or a datalab to launch.", 422
    if lab_id or datalab:
        try:
            opened = await opening.open_file(
                state, db, principal, asset_id, lab_id=lab_id or None, datalab=None if lab_id else datalab
            )
        except DatalabsError as exc:
            error, status = exc.message, exc.status
        else:
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


def _after_open(request: Request, opened: opening.Opened):
    """A JupyterLab opens the file from its URL: go there (a launched one through its start page, which
    goes on to the file; the one-shot "launched" message makes it do so even if the lab is already up).
    A launched JupyterLab that makes a notebook goes on to `continue_open` instead, and a launched
    desktop, started with the file, to itself. A running desktop cannot be told to open a file: say
    where it is in the lab, with the way to the lab."""
    if opened.notice:  # the notebook was made but its cell failed: said here, the notebook one click away
        return page(
            request,
            "explorer_open.html",
            title="Open in Datalab",
            active="explorer",
            opened=opened,
            notebook_url=opened.url,
            error=f"The notebook was made, but {opened.notice}.",
        )
    launched = f"You launched a lab to open '{opened.path}'."
    if opened.how == "command":  # launched with the file: its start page goes into it once it runs
        return redirect(request, f"/labs/{opened.lab_id}", launched, kind=LAUNCHED)
    if opened.how == "notebook" and opened.launched:  # once it runs, make the notebook there
        target = "/explorer/open/continue?" + urlencode({"lab_id": opened.lab_id, "id": opened.asset_id})
    elif opened.how in ("file", "notebook") and opened.url != opened.lab_url:
        target = opened.url
    else:
        return page(request, "explorer_open.html", title="Open in Datalab", active="explorer", opened=opened)
    if not opened.launched:
        return redirect(request, target)
    start = f"/labs/{opened.lab_id}?" + urlencode({"open": target})
    return redirect(request, start, launched, kind=LAUNCHED)
