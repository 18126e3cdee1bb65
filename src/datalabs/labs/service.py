"""Lab records: launch requests checked against the catalogue and limits, visibility, state changes.

Synchronous DB logic only; `labs.manager` drives the runtime and calls these."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.catalogue.schema import DatalabMeta, Resources
from datalabs.catalogue.service import Catalogue
from datalabs.config import Settings
from datalabs.db.models import ApiToken, Lab
from datalabs.db.types import utcnow
from datalabs.errors import Invalid, NotFound, TooManyRequests
from datalabs.volumes import service as volume_service

ACTIVE = ("pending", "starting", "running", "stopping")
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


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def running_limit(settings: Settings, principal: Principal) -> int:
    overrides = [settings.labs.group_limits[g] for g in principal.groups if g in settings.labs.group_limits]
    return max([settings.labs.max_running_per_user, *overrides])


def create(
    db: Session, settings: Settings, catalogue: Catalogue, principal: Principal, req: LaunchRequest
) -> tuple[Lab, str]:
    """Check the request and record a pending lab; returns it and its API token (for DATALABS_TOKEN)."""
    entry = catalogue.get(db, principal, req.datalab)
    version = req.version or entry.versions[0]
    meta = DatalabMeta.model_validate(catalogue.version(db, principal, req.datalab, version))
    if version == entry.versions[0] and not entry.available:
        raise Invalid(
            f"'{entry.meta.title}' cannot be launched: {entry.unavailable_reason}", code="unavailable"
        )
    resources = _resources(meta, req)
    volumes = volume_service.check_choice(db, settings, principal, req.volumes)
    active = db.scalar(
        select(func.count(Lab.id)).where(Lab.owner_id == principal.user.id, Lab.state.in_(ACTIVE))
    )
    limit = running_limit(settings, principal)
    if active >= limit:
        raise TooManyRequests(
            f"you already have {active} datalab(s) running, the most your account may run at "
            "once; stop one to launch another",
            retry_after=60,
            code="too_many_labs",
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
    )
    token, secret = auth.create_token(db, settings, principal.user, f"lab {lab.id}", LAB_TOKEN_SCOPES)
    lab.token_id = token.id
    db.add(lab)
    db.flush()
    return lab, secret


def _resources(meta: DatalabMeta, req: LaunchRequest) -> Resources:
    limits = meta.runtime.resources
    wanted = Resources(
        cpu=req.cpu if req.cpu is not None else limits.default.cpu,
        memory=req.memory if req.memory is not None else limits.default.memory,
        gpu=req.gpu if req.gpu is not None else limits.default.gpu,
    )
    most = limits.maximum
    for what, asked, allowed in (
        ("cpu", wanted.cpu, most.cpu),
        ("memory", wanted.memory_bytes, most.memory_bytes),
        ("gpu", wanted.gpu, most.gpu),
    ):
        if asked > allowed:
            shown = most.memory if what == "memory" else allowed
            raise Invalid(f"{what} request exceeds this datalab's maximum of {shown}", code="over_maximum")
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
        if lab.token_id and (token := db.get(ApiToken, lab.token_id)) and token.revoked_at is None:
            token.revoked_at = utcnow()  # the lab's API token dies with it
    for key, value in fields.items():
        setattr(lab, key, value)
    db.commit()
    return lab


def memory_text(n: int) -> str:
    return f"{n / 10**9:.1f} GB" if n >= 10**9 else f"{n / 10**6:.0f} MB"
