"""Where each running lab is served, as every replica's proxy learns it from the database: the lab's
saved runtime state names its endpoint (socket or host:port, the secret headers, protocol, uid), the
same fields every runtime backend saves (`get_state()`), so no backend is re-created (and nothing
re-attached or re-allocated) just to route to it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from datalabs.db.models import Lab, User
from datalabs.labs.team_labs import MODEL_DATALAB, MODEL_SCOPE
from datalabs.proxy.routes import Route, SharedRouteTable

log = logging.getLogger(__name__)


def route_of(
    lab_id: str, owner: str, endpoint: Any, team: tuple[str | None, str | None] = (None, None)
) -> Route:
    """The proxy's route to a lab served at `endpoint` (a runtime's Endpoint)."""
    return Route(
        lab_id=lab_id,
        owner=owner,
        socket=endpoint.socket,
        host_port=endpoint.host_port,
        headers=endpoint.headers,
        protocol=endpoint.protocol,
        uid=endpoint.uid,
        secret=endpoint.secret,
        team=team[0],
        invoke_scope=team[1],
    )


def _from_state(
    lab_id: str, owner: str, state: dict[str, Any], team: str | None = None, datalab: str = ""
) -> Route | None:
    try:
        return Route(
            lab_id=lab_id,
            owner=owner,
            socket=state.get("socket") or None,
            host_port=state.get("host_port") or None,
            headers=dict(state.get("headers") or {}),
            protocol=state.get("protocol") or "http",
            uid=state.get("uid"),
            secret=state.get("secret") or "",
            team=team,
            invoke_scope=invoke_scope(datalab) if team else None,
        )
    except ValueError as exc:  # a state saved before its endpoint was known, or damaged: no route
        log.warning("lab %s has no usable endpoint in its saved state: %s", lab_id, exc)
        return None


def _running(db: Session, lab_id: str | None = None):
    query = select(Lab.id, User.name, Lab.runtime_state, Lab.team, Lab.datalab).join(
        User, Lab.owner_id == User.id
    )
    query = query.where(Lab.state == "running")
    if lab_id is not None:
        query = query.where(Lab.id == lab_id)
    return db.execute(query).all()


def invoke_scope(datalab: str) -> str | None:
    """The scope a token needs to call a team lab of this datalab: a served model's `models:invoke`."""
    return MODEL_SCOPE if datalab == MODEL_DATALAB else None


def team_of(sessions: sessionmaker[Session], lab_id: str) -> tuple[str | None, str | None]:
    """(the team a team-scoped lab serves, the scope a token needs to call it); (None, None) for an
    ordinary lab, its owner's alone."""
    with sessions() as db:
        row = db.execute(select(Lab.team, Lab.datalab).where(Lab.id == lab_id)).first()
    if row is None or row[0] is None:
        return None, None
    return row[0], invoke_scope(row[1])


def shared_table(sessions: sessionmaker[Session]) -> SharedRouteTable:
    """A route table that follows the running labs recorded in the database."""

    def load_all() -> dict[str, Route]:
        with sessions() as db:
            routes = (_from_state(i, o, s or {}, t, d) for i, o, s, t, d in _running(db))
            return {route.lab_id: route for route in routes if route is not None}

    def load_one(lab_id: str) -> Route | None:
        with sessions() as db:
            rows = _running(db, lab_id)
        return _from_state(rows[0][0], rows[0][1], rows[0][2] or {}, rows[0][3], rows[0][4]) if rows else None

    return SharedRouteTable(load_all, load_one)
