"""My datalabs: the list of a user's labs (all users' for admins), one lab's start/status page, its logs
(followed while the lab lasts), and the stop, restart and destroy forms. These go through the same code
as the API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import DatalabsError
from datalabs.labs import origins, service, shares
from datalabs.proxy import model_metrics
from datalabs.web import lab_view
from datalabs.web.lab_launch import LAUNCHED
from datalabs.web.render import fragment, page, read_flash, redirect, sentence
from datalabs.web.security import HtmlRoute, posting_user, require_user, safe_next

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/labs")
LOG_LINES = 500
RECENT_ENDED = 20  # ended labs listed under the active ones; older ones stay reachable through the API


@router.get("", name="labs_page")
def labs_page(
    request: Request,
    all: bool = Query(False, description="Admins: every user's labs."),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    everyone = all and principal.is_admin
    titles = lab_view.datalab_titles(request, db, principal)
    labs = [
        lab_view.describe(lab, principal, titles, request.app.state.settings)
        for lab in service.list_for(db, principal, everyone=everyone)
    ]
    active = [lab for lab in labs if lab["active"]]
    ended = sorted((lab for lab in labs if not lab["active"]), key=lambda x: x["when"], reverse=True)
    here = "/labs?all=1" if everyone else "/labs"
    shared = [  # running labs of others shared with the user: whose, in which mode
        {**lab_view.describe(lab, principal, titles), "mode": mode}
        for lab, mode in shares.shared_with(db, principal)
    ]
    return page(
        request,
        "labs.html",
        title="All users' datalabs" if everyone else "My datalabs",
        active="labs",
        active_labs=active,
        ended_labs=ended[:RECENT_ENDED],
        more_ended=max(0, len(ended) - RECENT_ENDED),
        everyone=everyone,
        shared_labs=shared,
        team_labs=[
            {**lab_view.describe(lab, principal, titles), "model": lab.model}
            for lab in service.team_labs_for(db, principal)
        ],
        here=here,
        limit=service.running_limit(request.app.state.settings, principal),
        own_active=sum(1 for lab in active if lab["own"]),
        launch_blocked=service.launch_block(db, request.app.state.settings, principal),
    )


CONTINUE_OPEN = "/explorer/open/continue"


def _file_url(lab_id: str, url: str) -> str:
    """`open`: a page inside this lab to go to once it runs (e.g. a file, from the explorer), or the
    explorer's page that goes on to make a notebook in this lab; anything else is dropped, so the
    parameter cannot send visitors elsewhere."""
    if url.startswith(CONTINUE_OPEN + "?"):  # rebuilt from its two parameters: nothing else passes
        query = parse_qs(url.split("?", 1)[1])
        asset = query.get("id", [""])[0]
        if query.get("lab_id") == [lab_id] and asset:
            return CONTINUE_OPEN + "?" + urlencode({"lab_id": lab_id, "id": asset})
        return ""
    path = url.split("?", 1)[0]
    inside = path.startswith(f"/datalabs/{lab_id}/") and "\\" not in url
    return url if inside and not {".", ".."} & set(path.split("/")) else ""


@router.get("/{lab_id}", name="lab_page")
def lab_page(
    request: Request,
    lab_id: str,
    open_url: str = Query("", alias="open", max_length=8192),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    settings = request.app.state.settings
    record = service.get(db, principal, lab_id)
    served = {"model": record.model, **model_metrics.summary(lab_id)} if record.model else None
    lab = lab_view.describe(
        record,
        principal,
        lab_view.datalab_titles(request, db, principal),
        settings,
    )
    progress, messages = lab_view.progress(request, lab_id)
    just_launched = any(m["kind"] == LAUNCHED for m in read_flash(request))
    open_url = _file_url(lab_id, open_url)
    return page(
        request,
        "lab.html",
        title=lab["name"],
        active="labs",
        lab=lab,
        progress=progress if lab["starting"] else 100,
        progress_messages=messages,
        # The page follows the start by itself (SSE with JavaScript, a refresh without) while it lasts.
        follow=lab["starting"] or lab["state"] == "stopping",
        auto_open=just_launched and lab["running"],
        just_launched=just_launched,
        open_url=open_url,
        # Links go to the lab's path here, which sends the browser on to the lab's own origin (with a
        # one-time code) whatever address it reached the platform at; the address shown is that origin.
        address=origins.lab_url(settings, lab_id),
        launch_blocked=service.launch_block(db, settings, principal) if lab["ended"] else "",
        served=served,  # a model-serving lab: its model and requests through this replica's proxy
        headers={"Cache-Control": "no-store"},
    )


@router.get("/{lab_id}/logs", name="lab_logs_page")
def lab_logs_page(
    request: Request, lab_id: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    lab = service.get(db, principal, lab_id)
    # Only the end of the file is read (events.tail_lines): a huge log costs no more than a small one.
    text = request.app.state.labs.logs(lab, LOG_LINES).replace("\x00", "")
    ctx = {
        "lab": lab_view.describe(lab, principal, lab_view.datalab_titles(request, db, principal)),
        "logs": text,
        "lines": LOG_LINES,
        "following": lab.state in service.ACTIVE,  # the page polls its log part until the lab ended
    }
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_lab_log.html", **ctx)
        response.headers["Cache-Control"] = "no-store"
        return response
    return page(
        request,
        "lab_logs.html",
        title=f"Logs of {lab.name}",
        active="labs",
        headers={"Cache-Control": "no-store"},
        **ctx,
    )


@router.post("/{lab_id}/stop")
async def stop_lab(
    request: Request,
    lab_id: str,
    next_url: str = Form("", alias="next", max_length=500),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    lab = service.get(db, principal, lab_id)
    if lab.state in service.ACTIVE:
        await request.app.state.labs.stop(lab_id, service.stop_reason(principal, lab))
    db.expire_all()
    lab = service.get(db, principal, lab_id)
    message = f"'{lab.name}' stopped." if lab.state == "stopped" else f"'{lab.name}' is {lab.state}."
    return redirect(request, safe_next(next_url or "/labs"), message)


@router.post("/{lab_id}/restart")
async def restart_lab(
    request: Request,
    lab_id: str,
    next_url: str = Form("", alias="next", max_length=500),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    state = request.app.state
    try:
        lab = service.restart(db, state.settings, state.catalogue, state.labs, principal, lab_id)
    except DatalabsError as exc:
        db.rollback()
        if exc.status == 404:
            raise  # not theirs, or gone: the not-found page, as for every other lab action
        # Said where the button was; the lab is as it was.
        return redirect(request, safe_next(next_url or f"/labs/{lab_id}"), sentence(exc.message), "error")
    return redirect(request, f"/labs/{lab.id}", f"Restarting '{lab.name}'.")


@router.get("/{lab_id}/destroy")
def confirm_destroy(
    request: Request,
    lab_id: str,
    next_url: str = Query("", alias="next", max_length=500),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    lab = lab_view.describe(
        service.get(db, principal, lab_id), principal, lab_view.datalab_titles(request, db, principal)
    )
    back = safe_next(next_url or lab["page"])
    return page(
        request,
        "lab_confirm.html",
        title=f"Destroy {lab['name']}",
        active="labs",
        lab=lab,
        cancel=back,
        next_url=back if back != lab["page"] else "/labs",
    )


@router.post("/{lab_id}/destroy")
async def destroy_lab(
    request: Request,
    lab_id: str,
    next_url: str = Form("", alias="next", max_length=500),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    name = service.get(db, principal, lab_id).name
    await request.app.state.labs.destroy(lab_id)
    target = safe_next(next_url or "/labs")
    if target.startswith(f"/labs/{lab_id}"):
        target = "/labs"  # that page is gone now
    return redirect(request, target, f"'{name}' destroyed: its record and logs are removed.")
