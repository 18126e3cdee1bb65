"""Runs as users see them: submit (everything checked before anything is queued), list, get, logs,
outputs, cancel. Runs are visible to their owner and to admins only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.accounts.service import user_groups
from datalabs.config import Settings
from datalabs.db.models import Pipeline, PipelineRun, User
from datalabs.errors import Invalid, NotFound
from datalabs.pipelines import inputs as run_inputs
from datalabs.pipelines import placement, queue, registry, webhooks
from datalabs.pipelines.documents import describe
from datalabs.workspaces import service as workspaces

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EVENTS = ("failure", "success")


def principal_of(db: Session, user: User) -> Principal:
    """The owner of a run as a principal, for work done on their behalf (workers, schedules)."""
    return Principal(user=user, groups=frozenset(user_groups(db, user.id)), via="worker")


def check_notify(
    notify: dict[str, Any] | None, webhook_networks: list[str] | None = None, mail_server: bool = True
) -> dict[str, Any]:
    """{"on": ["failure"|"success"], "email": true (the owner) | [addresses], "webhooks": [urls]}.

    With `webhook_networks` (the operator's allowed networks) each webhook's destination is checked now
    (see `webhooks`); runs fired by a schedule skip that, so a DNS hiccup never costs a run: the
    destination is checked again before each call anyway. Without `mail_server` (no SMTP configured)
    e-mail is refused now rather than accepted and never sent."""
    if not notify:
        return {}
    if not isinstance(notify, dict):
        raise Invalid("notify must be an object: {on, email, webhooks}", code="bad_notify")
    if unknown := sorted(set(notify) - {"on", "email", "webhooks"}):
        raise Invalid(
            f"notify: unknown field(s) {', '.join(unknown)}; use on, email, webhooks", code="bad_notify"
        )
    on = notify.get("on", ["failure"])
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on or any(e not in EVENTS for e in on):
        raise Invalid("notify.on: a list of 'failure' and/or 'success'", code="bad_notify")
    email = notify.get("email", False)
    if isinstance(email, str):
        email = [email]
    if isinstance(email, list):
        for addr in email:
            if not isinstance(addr, str) or not EMAIL_RE.fullmatch(addr):
                raise Invalid(f"notify.email: '{addr}' is not an e-mail address", code="bad_notify")
    elif not isinstance(email, bool):
        raise Invalid("notify.email: true (your own address) or a list of addresses", code="bad_notify")
    if email and not mail_server:
        raise Invalid(
            "notify.email: this platform has no mail server configured, so e-mail cannot be delivered; "
            "use a webhook, or ask the operator to set pipelines.smtp_host",
            code="email_unavailable",
        )
    hooks = notify.get("webhooks", [])
    if isinstance(hooks, str):
        hooks = [hooks]
    if not isinstance(hooks, list) or any(
        not isinstance(h, str) or not re.match(r"^https?://[^\s/]+", h) for h in hooks
    ):
        raise Invalid("notify.webhooks: a list of http(s) URLs", code="bad_notify")
    if len(hooks) > 10 or (isinstance(email, list) and len(email) > 20):
        raise Invalid("notify: at most 20 addresses and 10 webhooks", code="bad_notify")
    if webhook_networks is not None:
        for hook in hooks:
            webhooks.check_destination(hook, webhook_networks)
    return {"on": sorted(set(on)), "email": email, "webhooks": hooks}


def prepare_inputs(
    db: Session,
    settings: Settings,
    principal: Principal,
    pipeline: Pipeline,
    version: str | None,
    given: Any,
    ignore_unknown: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """(version row, normalised inputs) after every check: names, types, files readable by the principal."""
    row = registry.version_of(pipeline, version)
    params = describe(row.packed).inputs
    given = run_inputs.validate(params, given if given is not None else {}, ignore_unknown)
    namespaces = row.packed.get("$namespaces") if isinstance(row.packed.get("$namespaces"), dict) else {}
    normalised = run_inputs.normalise(params, given or {}, namespaces)
    run_inputs.check_access(db, settings, principal, normalised)
    return row, normalised


def check_output_space(db: Session, settings: Settings, principal: Principal, space: str) -> str:
    try:
        workspaces.resolve(db, settings, principal, space, write=True)
    except (NotFound, Invalid) as exc:
        raise type(exc)(f"output_dir: {exc.message}", code=exc.code) from None
    return space


def submit(
    db: Session,
    settings: Settings,
    principal: Principal,
    pipeline: Pipeline,
    *,
    inputs: Any,
    version: str | None = None,
    output_space: str = "me",
    notify: dict[str, Any] | None = None,
    timeout: int | None = None,
    engine: str | None = None,
    cluster: str | None = None,
    schedule_id: int | None = None,
    ignore_unknown_inputs: bool = False,
    tracking_team: str | None = None,
) -> PipelineRun:
    row, normalised = prepare_inputs(
        db, settings, principal, pipeline, version, inputs, ignore_unknown_inputs
    )
    check_output_space(db, settings, principal, output_space)
    if tracking_team is not None and tracking_team not in principal.groups:
        # The same answer whether the team does not exist or is not the user's (as for labs).
        raise NotFound(f"you are not a member of a team '{tracking_team}'", code="team_not_found")
    placed = placement.cluster_for_run(settings, principal, cluster)
    engine = engine or pipeline.engine
    if engine not in registry.ENGINES:
        raise Invalid(
            f"engine '{engine}' is not one of: {', '.join(registry.ENGINES)}", code="unknown_engine"
        )
    limit = settings.pipelines.max_timeout
    if timeout is not None and not 1 <= timeout <= limit:
        raise Invalid(f"timeout must be between 1 and {limit} seconds", code="bad_timeout")
    run = PipelineRun(
        id=queue.new_run_id(),
        pipeline_id=pipeline.id,
        version_id=row.id,
        owner_id=principal.user.id,
        schedule_id=schedule_id,
        engine=engine,
        cluster=placed.name,
        inputs=normalised,
        output_space=output_space,
        notify=check_notify(
            notify,
            None if schedule_id else settings.pipelines.webhook_allow_networks,
            mail_server=bool(schedule_id or settings.pipelines.smtp_host),  # a schedule's was checked
        ),
        timeout=timeout or settings.pipelines.default_timeout,
        max_attempts=settings.pipelines.max_attempts,
        tracking_team=tracking_team,
    )
    db.add(run)
    db.flush()
    return run


def get(db: Session, principal: Principal, run_id: str) -> PipelineRun:
    run = db.get(PipelineRun, run_id)
    if run is None or not (principal.is_admin or run.owner_id == principal.user.id):
        raise NotFound(f"no run '{run_id}' of yours", code="run_not_found")
    return run


def list_for(
    db: Session,
    principal: Principal,
    *,
    pipeline: str = "",
    state: str = "",
    everyone: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[PipelineRun]:
    query = select(PipelineRun).order_by(PipelineRun.created_at.desc(), PipelineRun.id)
    if not (everyone and principal.is_admin):
        query = query.where(PipelineRun.owner_id == principal.user.id)
    if pipeline:
        query = query.join(Pipeline).where(Pipeline.name == pipeline)
    if state:
        query = query.where(PipelineRun.state == state)
    return list(db.scalars(query.limit(limit).offset(offset)))


def run_dir(settings: Settings, run_id: str) -> Path:
    return settings.home / "pipelines" / "runs" / run_id


def log_path(settings: Settings, run_id: str) -> Path:
    return run_dir(settings, run_id) / "run.log"


def read_log(settings: Settings, run: PipelineRun, offset: int = 0, limit: int = 1 << 20) -> bytes:
    try:
        with log_path(settings, run.id).open("rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""


def cancel(db: Session, run: PipelineRun) -> None:
    if run.state in queue.FINAL:
        return
    queue.request_cancel(db, run)
