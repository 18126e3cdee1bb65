"""Sharing a running lab (issue 19): its owner opens it to a named user or a team, view or collaborate.

Only the owner shares (not administrators, not team members), only a running lab, and never a team-scoped
lab (already open to its whole team). A share names an existing user or "team:<group>"; sharing again with
the same grantee changes the mode. Unknown labs and other people's labs are NotFound alike. A "view" share
is given only for a lab that enforces it (`enforces_view`); any other lab is shared to collaborate or not
at all.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import NAME_RE
from datalabs.db.models import Datalab, DatalabVersion, Group, Lab, LabShare, User
from datalabs.errors import Conflict, Invalid, NotFound

MODES = ("view", "collaborate")
TEAM_PREFIX = "team:"
AUTHORIZER = "datalabs.labs.jupyter_identity.DatalabsAuthorizer"
AUTHORIZER_FLAG = f"--ServerApp.authorizer_class={AUTHORIZER}"


def enforces_view(meta: dict | None) -> bool:
    """Whether a lab of this datalab version definition (DatalabVersion.meta; None: the version is gone from
    the catalogue) keeps a "view" guest from changing anything.

    The proxy only tells the lab "X-Datalabs-Share: view" and injects the lab's own token, so a guest gets
    whatever the app lets the token do: the owner's full rights unless the lab itself enforces view. Two kinds
    do: a desktop (the proxy's VNC filter drops a viewer's input, proxy/rfb_input.py) and a web lab whose
    command loads the platform's JupyterLab authorizer (labs/jupyter_identity.py), as its own argument and
    not overridden by a later authorizer_class setting (traitlets keeps the last). Any other web lab (MLflow,
    a site's or an app-store web app, a JupyterLab without the flag) and an unknown definition: no.
    """
    runtime = (meta or {}).get("runtime")
    if not isinstance(runtime, dict):
        return False
    if runtime.get("kind") == "desktop":
        return True
    command = runtime.get("command")
    if runtime.get("kind") != "web" or not isinstance(command, list):
        return False
    settings = [arg for arg in command if isinstance(arg, str) and "authorizer_class" in arg]
    return bool(settings) and settings[-1] == AUTHORIZER_FLAG


def _own_lab(db: Session, principal: Principal, lab_id: str) -> Lab:
    lab = None if "\x00" in lab_id else db.get(Lab, lab_id)  # PostgreSQL refuses a NUL in a query
    if lab is None or lab.owner_id != principal.user.id:
        raise NotFound(f"no lab '{lab_id}'", code="lab_not_found")
    return lab


def _check_grantee(db: Session, principal: Principal, grantee: str) -> str:
    # A name no user or team can have is not looked up (PostgreSQL refuses a NUL in a query: a 500).
    if grantee.startswith(TEAM_PREFIX):
        team = grantee[len(TEAM_PREFIX) :]
        if not NAME_RE.fullmatch(team) or db.scalar(select(Group.id).where(Group.name == team)) is None:
            raise NotFound(f"no team '{team}'", code="team_not_found")
        return grantee
    if grantee == principal.user.name:
        raise Invalid("a lab is not shared with its own owner", code="share_with_self")
    if not NAME_RE.fullmatch(grantee) or db.scalar(select(User.id).where(User.name == grantee)) is None:
        raise NotFound(f"no user '{grantee}'", code="user_not_found")
    return grantee


def _check_view(db: Session, lab: Lab) -> None:
    meta = db.scalar(
        select(DatalabVersion.meta)
        .join(Datalab)
        .where(Datalab.name == lab.datalab, DatalabVersion.version == lab.version)
    )
    if not enforces_view(meta):
        raise Conflict(
            f"the datalab '{lab.datalab}' cannot keep a viewer from changing things, so it is not shared "
            "view only: share it to collaborate instead",
            code="view_not_enforced",
        )


def share(db: Session, principal: Principal, lab_id: str, grantee: str, mode: str) -> LabShare:
    """Open the owner's running lab to `grantee` (user name or "team:<name>") in `mode`; commits."""
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}", code="invalid_mode")
    lab = _own_lab(db, principal, lab_id)
    if lab.team is not None:
        raise Conflict("a team lab is already open to its whole team", code="team_lab_not_shareable")
    if lab.state != "running":
        raise Conflict("only a running lab can be shared", code="lab_not_running")
    _check_grantee(db, principal, grantee)
    if mode == "view":
        _check_view(db, lab)
    found = db.get(LabShare, (lab_id, grantee))
    if found is None:
        found = LabShare(lab_id=lab_id, grantee=grantee, mode=mode, created_by=principal.user.name)
        db.add(found)
    else:
        found.mode = mode
    db.commit()
    return found


def unshare(db: Session, principal: Principal, lab_id: str, grantee: str) -> None:
    """Revoke one share of the owner's lab; NotFound when there was none. Commits."""
    _own_lab(db, principal, lab_id)
    found = None if "\x00" in grantee else db.get(LabShare, (lab_id, grantee))
    if found is None:
        raise NotFound(f"lab '{lab_id}' is not shared with '{grantee}'", code="share_not_found")
    db.delete(found)
    db.commit()


def list_shares(db: Session, principal: Principal, lab_id: str) -> list[LabShare]:
    """The owner's lab's shares, by grantee."""
    _own_lab(db, principal, lab_id)
    return list(db.scalars(select(LabShare).where(LabShare.lab_id == lab_id).order_by(LabShare.grantee)))


def owned(db: Session, principal: Principal, lab_id: str) -> tuple[Lab, list[LabShare]]:
    """The owner's lab and its shares (its share page); NotFound for anyone else's, admins' included."""
    return _own_lab(db, principal, lab_id), list_shares(db, principal, lab_id)


def guest_view(db: Session, principal: Principal, lab_id: str) -> tuple[Lab, str]:
    """A running lab of someone else shared with `principal`, and the mode it holds; NotFound otherwise
    (not shared, revoked, ended, or the principal's own: as for a lab that does not exist)."""
    found = next((pair for pair in shared_with(db, principal) if pair[0].id == lab_id), None)
    if found is None:
        raise NotFound(f"no lab '{lab_id}' shared with you", code="lab_not_found")
    return found


def mode_for(db: Session, lab_id: str, user: str, groups: frozenset[str]) -> str | None:
    """The share mode `user` (member of `groups`) holds on lab `lab_id`, or None. A direct share and a
    team share together: the wider ("collaborate") wins."""
    grantees = [user, *(TEAM_PREFIX + g for g in groups)]
    modes = set(
        db.scalars(select(LabShare.mode).where(LabShare.lab_id == lab_id, LabShare.grantee.in_(grantees)))
    )
    if "collaborate" in modes:
        return "collaborate"
    return "view" if modes else None


def shared_with(db: Session, principal: Principal) -> list[tuple[Lab, str]]:
    """The running labs of others shared with `principal` (directly or through one of their teams), each
    with the mode it holds (a direct and a team share together: "collaborate" wins), newest first."""
    grantees = [principal.user.name, *(TEAM_PREFIX + g for g in principal.groups)]
    rows = db.execute(
        select(Lab, LabShare.mode)
        .join(LabShare, LabShare.lab_id == Lab.id)
        .where(LabShare.grantee.in_(grantees), Lab.state == "running", Lab.owner_id != principal.user.id)
        .order_by(Lab.created_at.desc())
    ).all()
    modes: dict[str, tuple[Lab, str]] = {}
    for lab, mode in rows:
        if lab.id not in modes or mode == "collaborate":
            modes[lab.id] = (lab, mode)
    return sorted(modes.values(), key=lambda found: found[0].created_at, reverse=True)
