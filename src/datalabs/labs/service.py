"""Lab records: launch requests checked against the catalogue and limits, visibility, state changes.

Synchronous DB logic only; `labs.manager` drives the runtime and calls these."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.catalogue.schema import DatalabMeta, Resources
from datalabs.catalogue.search import Catalogue
from datalabs.clusters import service as clusters
from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.db.models import ApiToken, Lab, User
from datalabs.db.types import utcnow
from datalabs.errors import Conflict, DatalabsError, Forbidden, Invalid, NotFound, TooManyRequests
from datalabs.labs import team_labs
from datalabs.runtimes import gpus
from datalabs.usage import quota, records
from datalabs.volumes import service as volume_service

ACTIVE = ("pending", "starting", "running", "stopping")
ENDED = ("stopped", "failed")
LAB_TOKEN_SCOPES = [
    "catalogue:read",
    "labs:read",
    "files:read",
    "files:write",
    "volumes:read",
    "assets:read",
    "pipelines:read",
    "pipelines:write",
]


@dataclass(frozen=True)
class LaunchRequest:
    datalab: str
    version: str | None = None
    name: str = ""
    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    volumes: tuple[str, ...] = ()
    cluster: str | None = None  # a configured cluster's name; None: the first the principal may use
    team: str | None = None  # a team-scoped datalab: the team it serves; else the tracking team chosen
    model: str | None = None  # a model-serving datalab: models:/<name>/<version>


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def running_limit(settings: Settings, principal: Principal) -> int:
    overrides = [settings.labs.group_limits[g] for g in principal.groups if g in settings.labs.group_limits]
    return max([settings.labs.max_running_per_user, *overrides])


def create(
    db: Session, settings: Settings, catalogue: Catalogue, principal: Principal, req: LaunchRequest
) -> tuple[Lab, str]:
    """Check the request and record a pending lab; returns it and its API token (for DATALABS_TOKEN).
    A team-scoped datalab already active for the team: that lab, and "" (nothing to start)."""
    entry = catalogue.get(db, principal, req.datalab)
    version = req.version or entry.versions[0]
    meta = DatalabMeta.model_validate(catalogue.version(db, principal, req.datalab, version))
    team = team_labs.check_team(db, principal, meta, req.team)
    model = team_labs.check_model(req.datalab, req.model)
    if meta.runtime.scope == "team" and (running := team_labs.active_team_lab(db, req.datalab, team, model)):
        return running, ""
    if version == entry.versions[0] and not entry.available:
        raise Invalid(
            f"'{entry.meta.title}' cannot be launched: {entry.unavailable_reason}", code="unavailable"
        )
    cluster = clusters.for_launch(settings, principal, req.cluster)
    resources = _resources(meta, req, cluster)
    volumes = volume_service.check_choice(db, settings, principal, req.volumes)
    _check_limit(db, settings, principal)
    _check_host_gpus(db, settings, cluster, resources.gpu)
    quota.check_quota(
        db,
        settings,
        principal,
        cluster.name,
        cpu=resources.cpu,
        memory=resources.memory_bytes,
        gpu=resources.gpu,
    )
    lab = Lab(
        id=secrets.token_hex(8),
        owner_id=principal.user.id,
        name=req.name or meta.title,
        datalab=req.datalab,
        version=version,
        kind=meta.runtime.kind,
        state="pending",
        cpu=resources.cpu,
        memory=resources.memory_bytes,
        gpu=resources.gpu,
        volumes=volumes,
        cluster=cluster.name,
        backend=cluster.backend,
        team=team if meta.runtime.scope == "team" else None,
        model=model,
        tracking_team=None
        if meta.runtime.scope == "team"
        else team or team_labs.default_tracking_team(db, principal),
    )
    lab.token_id, secret = _lab_token(db, settings, principal, lab.id)
    # Written before the savepoint: pysqlite opens the transaction only at the first write, and a SAVEPOINT
    # issued outside one is a transaction of its own that its RELEASE commits, checks or not.
    db.flush()
    try:
        with db.begin_nested():  # a savepoint: a lost race leaves the caller's transaction usable
            db.add(lab)
            db.flush()
    except IntegrityError:
        # Another member launched the team's lab at the same time (the unique index of migration 0021).
        running = lab.team and team_labs.active_team_lab(db, req.datalab, lab.team, model)
        if not running:
            raise
        return running, ""
    return lab, secret


def _lab_token(db: Session, settings: Settings, principal: Principal, lab_id: str) -> tuple[str, str]:
    token, secret = auth.create_token(db, settings, principal.user, f"lab {lab_id}", LAB_TOKEN_SCOPES)
    return token.id, secret


def renew_token(db: Session, settings: Settings, lab_id: str) -> str | None:
    """A new API token for a lab about to start on the manager replica (the one made at launch stayed with
    the replica that took the request): the old one is revoked. None if the lab is gone."""
    lab = db.get(Lab, lab_id)
    if lab is None:
        return None
    if lab.token_id:
        db.execute(delete(ApiToken).where(ApiToken.id == lab.token_id))
    token, secret = auth.create_token(db, settings, lab.owner, f"lab {lab_id}", LAB_TOKEN_SCOPES)
    lab.token_id = token.id
    return secret


def launch_block(db: Session, settings: Settings, principal: Principal) -> str:
    """Why the principal cannot launch (or restart) a lab right now, as the pages show it beside a
    disabled Launch button; "" when they can. The services enforce the same limit (`_check_limit`)."""
    active = _active_count(db, principal)
    limit = running_limit(settings, principal)
    if active < limit:
        return ""
    if limit == 0:
        return "Your account may not run datalabs."
    return f"You have {active} of {limit} lab{'' if limit == 1 else 's'} running: stop one to launch another."


def _active_count(db: Session, principal: Principal, besides: str = "") -> int:
    return db.scalar(
        select(func.count(Lab.id)).where(
            Lab.owner_id == principal.user.id, Lab.state.in_(ACTIVE), Lab.id != besides
        )
    )


def _check_limit(db: Session, settings: Settings, principal: Principal, besides: str = "") -> None:
    """TooManyRequests if the principal runs as many labs as they may (not counting lab `besides`)."""
    # Two launches (or restarts) of one user at once must not both pass the count, so the count is made
    # holding a write lock until the transaction ends: a no-op UPDATE of the owner's row locks that row on
    # PostgreSQL and, on SQLite, begins the transaction and takes the database's write lock (a SELECT ...
    # FOR UPDATE would lock nothing there: of 20 launches at once, 15 passed a limit of 2).
    db.execute(
        update(User)
        .where(User.id == principal.user.id)
        .values(id=User.id)
        .execution_options(synchronize_session=False)
    )
    active = _active_count(db, principal, besides)
    if active >= running_limit(settings, principal):
        raise TooManyRequests(
            f"you already have {active} datalab(s) running, the most your account may run at "
            "once; stop one to launch another",
            retry_after=60,
            code="too_many_labs",
        )


def _check_host_gpus(
    db: Session, settings: Settings, cluster: ClusterSettings, asked: int, besides: str = ""
) -> None:
    """Conflict, before anything is recorded, if this server has fewer free GPUs than a lab on one of its
    local clusters asks for (free: not held by an active local lab). The runtime's allocator
    (runtimes/gpus.py) remains the guard at start; this tells the user at once, in the form, why."""
    if not asked or cluster.backend != "local":
        return
    total = len(gpus.discover(settings.labs.gpu_device_root))
    held = db.scalar(
        select(func.coalesce(func.sum(Lab.gpu), 0)).where(
            Lab.backend == "local", Lab.state.in_(ACTIVE), Lab.id != besides
        )
    )
    if asked > total - held:
        raise Conflict(gpus.refusal(asked, max(0, total - held), total), code="no_free_gpu")


class Starter(Protocol):
    """What starts a committed lab in the background (labs.manager.LabManager)."""

    def spawn(
        self, lab_id: str, token: str, *, restarted: bool = False, open_command: list[str] | None = None
    ) -> None: ...


def launch(
    db: Session,
    settings: Settings,
    catalogue: Catalogue,
    starter: Starter,
    principal: Principal,
    req: LaunchRequest,
) -> Lab:
    """Launch a lab, the whole user action: check and record it, commit, then start it — a start never
    runs for a record that was not committed. The API, the pages and the CLI launch through here
    (Open in Datalab too, through assets/opening, which places a file between the two)."""
    lab, token = create(db, settings, catalogue, principal, req)
    if not token:  # the team's running lab of a team-scoped datalab
        return lab
    db.commit()
    starter.spawn(lab.id, token)
    return lab


def restart(
    db: Session, settings: Settings, catalogue: Catalogue, starter: Starter, principal: Principal, lab_id: str
) -> Lab:
    """Restart a stopped or failed lab, the whole user action: `reopen` it, commit, start it again."""
    lab, token = reopen(db, settings, catalogue, principal, lab_id)
    db.commit()
    starter.spawn(lab.id, token, restarted=True)
    return lab


def reopen(
    db: Session, settings: Settings, catalogue: Catalogue, principal: Principal, lab_id: str
) -> tuple[Lab, str]:
    """Make a stopped or failed lab pending again, as it was launched (datalab, version, resources, volumes,
    name), under the same id; returns it, pending, and its new API token. Only its owner may: the lab
    runs as them and counts against their limit. Every check is made again, as for a launch; any
    refusal leaves the lab as it was."""
    lab = get(db, principal, lab_id)
    if lab.owner_id != principal.user.id:
        raise Forbidden(
            f"only {lab.owner.name} can restart '{lab.name}': a lab runs as its owner", code="not_owner"
        )
    if lab.state not in ENDED:
        raise Conflict(
            f"'{lab.name}' is {lab.state}: only a stopped or failed lab can be restarted", code="lab_active"
        )
    meta = _launchable_again(db, catalogue, principal, lab)
    try:
        cluster = clusters.for_launch(settings, principal, lab.cluster)
        _resources(
            meta, LaunchRequest(lab.datalab, cpu=lab.cpu, memory=str(lab.memory), gpu=lab.gpu), cluster
        )
        volume_service.check_choice(db, settings, principal, lab.volumes)
    except DatalabsError as exc:
        raise Conflict(
            f"'{lab.name}' cannot be restarted as it was launched: {exc.message}; launch a new lab instead",
            code="volume_not_allowed" if exc.code != "over_maximum" else "over_maximum",
        ) from None
    # Claimed in one statement, and only if still ended: of two restarts at once (a double click), or a
    # restart and a destroy, one wins. Claiming first also makes SQLite take its write lock before the
    # count below, so two users' sessions cannot both count under the limit.
    if lab.team and team_labs.active_team_lab(db, lab.datalab, lab.team, lab.model):
        # The unique index of migration 0021 would refuse the claim below with an IntegrityError.
        raise Conflict(
            f"'{lab.name}' cannot be restarted: team {lab.team} already has a {lab.datalab} lab running; "
            "open that one",
            code="team_lab_running",
        )
    claimed = db.execute(
        update(Lab)
        .where(Lab.id == lab.id, Lab.state.in_(ENDED))
        .values(state="pending", reason="", started_at=None, ended_at=None, runtime_state={})
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        raise Conflict(f"'{lab.name}' is already being restarted or destroyed", code="lab_busy")
    _check_limit(db, settings, principal, besides=lab.id)
    _check_host_gpus(db, settings, cluster, lab.gpu, besides=lab.id)
    quota.check_quota(
        db, settings, principal, lab.cluster, cpu=lab.cpu, memory=lab.memory, gpu=lab.gpu, besides=lab.id
    )
    token_id, secret = _lab_token(db, settings, principal, lab.id)
    db.execute(update(Lab).where(Lab.id == lab.id).values(token_id=token_id))
    db.refresh(lab)
    return lab, secret


def _launchable_again(db: Session, catalogue: Catalogue, principal: Principal, lab: Lab) -> DatalabMeta:
    """The lab's datalab version's metadata, if the principal may still launch it."""
    try:
        entry = catalogue.get(db, principal, lab.datalab)
        meta = DatalabMeta.model_validate(catalogue.version(db, principal, lab.datalab, lab.version))
    except NotFound:
        raise Conflict(
            f"'{lab.name}' cannot be restarted: version {lab.version} of datalab '{lab.datalab}' is no "
            "longer in the catalogue; launch a current version instead",
            code="version_removed",
        ) from None
    if lab.version == entry.versions[0] and not entry.available:
        raise Conflict(f"'{lab.name}' cannot be restarted: {entry.unavailable_reason}", code="unavailable")
    return meta


def _resources(meta: DatalabMeta, req: LaunchRequest, cluster: ClusterSettings) -> Resources:
    """What the lab gets: what was asked, else the cluster's default where the cluster sets one, else the
    datalab's; within both the datalab's and the cluster's maximum."""
    default = (cluster.resources or meta.runtime.resources).default
    wanted = Resources(
        cpu=req.cpu if req.cpu is not None else default.cpu,
        memory=req.memory if req.memory is not None else default.memory,
        gpu=req.gpu if req.gpu is not None else default.gpu,
    )
    bounds = [("this datalab's", meta.runtime.resources.maximum)]
    if cluster.resources is not None:
        bounds.append((f"the {cluster.title} cluster's", cluster.resources.maximum))
    for whose, most in bounds:
        for what, asked, allowed in (
            ("cpu", wanted.cpu, most.cpu),
            ("memory", wanted.memory_bytes, most.memory_bytes),
            ("gpu", wanted.gpu, most.gpu),
        ):
            if asked > allowed:
                shown = most.memory if what == "memory" else allowed
                raise Invalid(f"{what} request exceeds {whose} maximum of {shown}", code="over_maximum")
    return wanted


def get(db: Session, principal: Principal, lab_id: str) -> Lab:
    """The lab if the principal owns it or is an admin; NotFound otherwise (existence stays hidden)."""
    lab = db.get(Lab, lab_id)
    if lab is None or (lab.owner_id != principal.user.id and not principal.is_admin):
        raise NotFound(f"no lab '{lab_id}'", code="lab_not_found")
    return lab


def list_for(
    db: Session, principal: Principal, *, everyone: bool = False, include_ended: bool = True
) -> list[Lab]:
    query = select(Lab).order_by(Lab.created_at.desc())
    if not (everyone and principal.is_admin):
        query = query.where(Lab.owner_id == principal.user.id)
    if not include_ended:
        query = query.where(Lab.state.in_(ACTIVE))
    return list(db.scalars(query))


def team_labs_for(db: Session, principal: Principal) -> list[Lab]:
    """The active team-scoped labs (tracking servers, served models) of the principal's teams that others
    launched: listed to every member beside their own labs, as the team's."""
    if not principal.groups:
        return []
    query = (
        select(Lab)
        .where(Lab.team.in_(sorted(principal.groups)), Lab.owner_id != principal.user.id)
        .where(Lab.state.in_(ACTIVE))
        .order_by(Lab.team, Lab.created_at.desc())
    )
    return list(db.scalars(query))


def stop_reason(principal: Principal, lab: Lab) -> str:
    return (
        "stopped by its owner"
        if lab.owner_id == principal.user.id
        else f"stopped by administrator {principal.name}"
    )


def set_state(db: Session, lab_id: str, state: str, reason: str = "", **fields) -> Lab | None:
    lab = db.get(Lab, lab_id)
    if lab is None:
        return None
    lab.state, lab.reason = state, reason or (lab.reason if state in ACTIVE else "")
    if state == "running" and lab.started_at is None:
        lab.started_at = utcnow()
    if state in ("stopped", "failed"):
        lab.ended_at = utcnow()
        records.record_end(db, lab)  # its usage outlives a restart or destroy of the lab
        if lab.token_id and (token := db.get(ApiToken, lab.token_id)) and token.revoked_at is None:
            token.revoked_at = utcnow()  # the lab's API token dies with it
        team_labs.revoke_tracking_token(db, lab)
    for key, value in fields.items():
        setattr(lab, key, value)
    db.commit()
    return lab


def advance(
    db: Session, lab_id: str, before: tuple[str, ...], state: str, reason: str = "", **fields
) -> bool:
    """Move the lab to `state` only if it is still in one of `before` (one statement, so a stop, restart
    or destroy that came in between wins); whether it moved."""
    moved = db.execute(
        update(Lab)
        .where(Lab.id == lab_id, Lab.state.in_(before))
        .values(state=state)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        db.rollback()
        return False
    set_state(db, lab_id, state, reason, **fields)  # the rest of the change, in the same transaction
    return True


def delete_ended(db: Session, lab_id: str) -> bool:
    """Delete the lab's record if it is stopped or failed (not if a restart claimed it meanwhile)."""
    deleted = db.execute(
        delete(Lab).where(Lab.id == lab_id, Lab.state.in_(ENDED)).execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    return bool(deleted)


def memory_text(n: int) -> str:
    return f"{n / 10**9:.1f} GB" if n >= 10**9 else f"{n / 10**6:.0f} MB"
