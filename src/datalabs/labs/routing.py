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
from datalabs.proxy.routes import Route, SharedRouteTable

log = logging.getLogger(__name__)


def route_of(lab_id: str, owner: str, endpoint: Any) -> Route:
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
    )


def _from_state(lab_id: str, owner: str, state: dict[str, Any]) -> Route | None:
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
        )
    except ValueError as exc:  # a state saved before its endpoint was known, or damaged: no route
        log.warning("lab %s has no usable endpoint in its saved state: %s", lab_id, exc)
        return None


def _running(db: Session, lab_id: str | None = None):
    query = select(Lab.id, User.name, Lab.runtime_state).join(User, Lab.owner_id == User.id)
    query = query.where(Lab.state == "running")
    if lab_id is not None:
        query = query.where(Lab.id == lab_id)
    return db.execute(query).all()


def shared_table(sessions: sessionmaker[Session]) -> SharedRouteTable:
    """A route table that follows the running labs recorded in the database."""

    def load_all() -> dict[str, Route]:
        with sessions() as db:
            routes = (_from_state(lab_id, owner, state or {}) for lab_id, owner, state in _running(db))
            return {route.lab_id: route for route in routes if route is not None}

    def load_one(lab_id: str) -> Route | None:
        with sessions() as db:
            rows = _running(db, lab_id)
        return _from_state(rows[0][0], rows[0][1], rows[0][2] or {}) if rows else None

    return SharedRouteTable(load_all, load_one)
