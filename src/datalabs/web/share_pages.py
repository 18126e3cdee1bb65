"""Sharing a running lab from the labs page (issue 19): the owner's share page (add a user or a team in a
mode, see and revoke the shares, see who is connected now) and a guest's page of a lab shared with them
(whose lab it is, in which mode, a link to open it). The rules live in `labs.shares`; anyone but the owner
gets the not-found page at the owner's addresses, as for a lab that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.deps import get_db
from datalabs.errors import Invalid
from datalabs.labs import origins, shares
from datalabs.web import forms, lab_view
from datalabs.web.render import page, place_errors
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
KINDS = ("user", "team")


def grantee_of(kind: str, name: str) -> str:
    """The service's grantee for the form's two fields: a user name, or "team:<name>"."""
    if kind not in KINDS:
        raise Invalid("choose whether to share with a user or a team", code="invalid_grantee_kind")
    name = name.strip()
    if not name:
        raise Invalid(f"name the {kind} to share the lab with", code="grantee_missing")
    return shares.TEAM_PREFIX + name if kind == "team" else name


def grantee_text(grantee: str) -> str:
    """ "team:astro" -> "team astro"; a user name as it is."""
    if grantee.startswith(shares.TEAM_PREFIX):
        return "team " + grantee[len(shares.TEAM_PREFIX) :]
    return grantee


def connected(request: Request, lab_id: str) -> list[dict]:
    """Who is connected to the lab through a share now (this replica's open guest WebSockets)."""
    proxy = getattr(request.app.state, "proxy", None)
    guests = proxy.guests.connected(lab_id) if proxy is not None else []
    return [{"user": g.user, "mode": g.mode, "since": datetime.fromtimestamp(g.since, UTC)} for g in guests]


def share_page(
    request: Request,
    db: Session,
    principal: Principal,
    lab_id: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict | None = None,
):
    lab, found = shares.owned(db, principal, lab_id)
    card = lab_view.describe(lab, principal, lab_view.datalab_titles(request, db, principal))
    return page(
        request,
        "lab_share.html",
        title=f"Share {card['name']}",
        active="labs",
        status=status,
        lab=card,
        shareable=lab.state == "running" and lab.team is None,
        team_lab=lab.team is not None,
        shares=[
            {"grantee": s.grantee, "who": grantee_text(s.grantee), "mode": s.mode, "since": s.created_at}
            for s in found
        ],
        guests=connected(request, lab_id),
        teams=sorted(principal.groups),
        modes=shares.MODES,
        errors=place_errors(errors, {"add"} | {f"share:{s.grantee}" for s in found}),
        form=form or {"kind": "user", "name": "", "mode": "view"},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/labs/{lab_id}/share", name="lab_share_page")
def lab_share_page(
    request: Request, lab_id: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return share_page(request, db, principal, lab_id)


@router.post("/labs/{lab_id}/shares")
def add_share(
    request: Request,
    lab_id: str,
    kind: str = Form("user", max_length=8),
    name: str = Form("", max_length=64),
    mode: str = Form("view", max_length=16),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    shares.owned(db, principal, lab_id)  # someone else's lab: the not-found page, not this form again
    form = {"kind": kind, "name": name, "mode": mode}
    return forms.submit(
        request,
        db,
        lambda: shares.share(db, principal, lab_id, grantee_of(kind, name), mode),
        refused=forms.shown_again(partial(share_page, request, db, principal, lab_id), "add", form=form),
        to=f"/labs/{lab_id}/share",
        done=f"Shared with {kind} '{name.strip()}' ({mode}).",
    )


@router.post("/labs/{lab_id}/shares/revoke")
def revoke_share(
    request: Request,
    lab_id: str,
    grantee: str = Form("", max_length=70),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    shares.owned(db, principal, lab_id)
    return forms.submit(
        request,
        db,
        lambda: shares.unshare(db, principal, lab_id, grantee),
        refused=forms.shown_again(partial(share_page, request, db, principal, lab_id), f"share:{grantee}"),
        to=f"/labs/{lab_id}/share",
        done=f"No longer shared with {grantee_text(grantee)}: their next request to the lab is refused.",
    )


@router.get("/shared/{lab_id}", name="shared_lab_page")
def shared_lab_page(
    request: Request, lab_id: str, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    lab, mode = shares.guest_view(db, principal, lab_id)
    card = lab_view.describe(lab, principal, lab_view.datalab_titles(request, db, principal))
    return page(
        request,
        "lab_shared.html",
        title=f"{card['owner']}'s {card['name']}",
        active="labs",
        lab=card,
        mode=mode,
        address=origins.lab_url(request.app.state.settings, lab_id),
        headers={"Cache-Control": "no-store"},
    )
