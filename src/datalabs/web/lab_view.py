"""What the labs pages show about one lab: state badge, age, resources, the datalab's title, progress.

Pure presentation over `db.models.Lab`; the decisions (who may see or stop a lab) stay in the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.clusters.settings import time_limit_seconds
from datalabs.config import Settings
from datalabs.db.models import Lab
from datalabs.labs import service

STATE_LABELS = {
    "pending": "Pending",
    "starting": "Starting",
    "running": "Running",
    "stopping": "Stopping",
    "stopped": "Stopped",
    "failed": "Failed",
}
# Labs still coming up: their pages follow the start (SSE, or a refresh without JavaScript).
STARTING = ("pending", "starting")


def number(value: float) -> str:
    """1.0 -> "1", 1.5 -> "1.5": resource figures as people write them."""
    return f"{value:g}"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """ "just now", "1 minute ago", "5 hours ago", "3 days ago"."""
    if when is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - when).total_seconds()))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def age(lab: Lab, now: datetime | None = None) -> tuple[str, datetime | None]:
    """What happened last to the lab and when: ("started 5 minutes ago", started_at)."""
    if lab.state in ("stopped", "failed") and lab.ended_at:
        return f"ended {ago(lab.ended_at, now)}", lab.ended_at
    if lab.started_at and lab.state in ("running", "stopping"):
        return f"started {ago(lab.started_at, now)}", lab.started_at
    return f"launched {ago(lab.created_at, now)}", lab.created_at


def resources_text(lab: Lab) -> str:
    cpu = number(lab.cpu)
    text = f"{cpu} CPU{'' if cpu == '1' else 's'} · {service.memory_text(lab.memory)} memory"
    return text + (f" · {lab.gpu} GPU{'' if lab.gpu == 1 else 's'}" if lab.gpu else "")


def datalab_titles(request: Request, db: Session, principal: Principal) -> dict[str, str]:
    """Titles as the principal sees the datalabs: a built app's unpublished newer version may have
    another title, which must not reach users who see only its published ones."""
    return {e.name: e.meta.title for e in request.app.state.catalogue.visible(db, principal)}


def describe(
    lab: Lab, principal: Principal, titles: dict[str, str], settings: Settings | None = None
) -> dict[str, Any]:
    """One lab as its card and its page show it (with `settings`: where it runs, when it must end)."""
    when_text, when = age(lab)
    return {
        **_placement(lab, settings),
        "id": lab.id,
        "name": lab.name or titles.get(lab.datalab, lab.datalab),
        "datalab": lab.datalab,
        "datalab_title": titles.get(lab.datalab, lab.datalab),
        "version": lab.version,
        "kind": lab.kind,
        "state": lab.state,
        "state_label": STATE_LABELS.get(lab.state, lab.state.capitalize()),
        "reason": lab.reason,
        "active": lab.state in service.ACTIVE,
        "starting": lab.state in STARTING,
        "running": lab.state == "running",
        "ended": lab.state in ("stopped", "failed"),
        "owner": lab.owner.name,
        "own": lab.owner_id == principal.user.id,
        "team": lab.team,
        "age": when_text,
        "when": when,
        "created_at": lab.created_at,
        "started_at": lab.started_at,
        "ended_at": lab.ended_at,
        "resources": resources_text(lab),
        "url": f"/datalabs/{lab.id}/",
        "page": f"/labs/{lab.id}",
    }


def _placement(lab: Lab, settings: Settings | None) -> dict[str, Any]:
    """The lab's cluster, shown where a site has more than one, and the end its time limit sets."""
    if settings is None or len(settings.clusters) < 2:
        return {"cluster": "", "ends_at": None, "time_limit": ""}
    cluster = next((c for c in settings.clusters if c.name == lab.cluster), None)
    limit = cluster.options.time_limit if cluster else ""
    seconds = time_limit_seconds(limit)
    ends = lab.started_at + timedelta(seconds=seconds) if seconds and lab.started_at else None
    return {
        "cluster": cluster.title if cluster else lab.cluster,
        "time_limit": f"{limit} minutes" if limit.isdigit() else limit,
        "ends_at": ends if lab.state == "running" else None,
    }


def progress(request: Request, lab_id: str) -> tuple[int, list[str]]:
    """How far the start got (0-100) and its messages so far, from the manager's event log."""
    log = request.app.state.labs.events.get(lab_id)
    events = log.events if log is not None else []
    return (events[-1].progress if events else 0), [e.message for e in events]


def running_labs(request: Request) -> list[dict[str, str]]:
    """The visitor's running labs for the header's switcher (empty for anonymous visitors)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return []
    with request.app.state.sessions() as db:
        labs = service.list_for(db, principal, include_ended=False)
        return [
            {"id": lab.id, "name": lab.name or lab.datalab, "url": f"/datalabs/{lab.id}/"}
            for lab in labs
            if lab.state == "running"
        ]
