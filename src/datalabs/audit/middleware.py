"""ASGI middleware: one audit record per state-changing request (POST/PUT/PATCH/DELETE).

what = method + route template ("POST /api/v1/labs/{lab_id}/stop"), target = the path parameters, who = the
principal the route resolved (request.state.principal, set by deps.optional_principal; never a second
authentication here) or the name a login tried (request.state.audit_who), outcome = the response status,
client = request.client.host (uvicorn's proxy headers). The record is written after the response, in a
worker thread and its own transaction; a failure is logged and never reaches the user."""

from __future__ import annotations

import json
import logging

from anyio import CancelScope, to_thread
from sqlalchemy import inspect

from datalabs import audit

log = logging.getLogger(__name__)
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def fields(scope, status: int) -> dict:
    """The record's fields for a finished request (scope after routing, the status sent)."""
    state = scope.get("state") or {}
    principal = state.get("principal")
    who = _name(principal, scope) if principal is not None else state.get("audit_who")
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    params = scope.get("path_params") or {}
    if template:
        what, target = f"{scope['method']} {template}", json.dumps(params, sort_keys=True) if params else None
    else:  # no route matched (404/405 before any handler): the raw path as the target, cut to fit
        what, target = f"{scope['method']} (no route)", scope.get("path", "")
    client = scope.get("client")
    return {
        "who": who,
        "what": what,
        "target": target,
        "client": client[0] if client else None,
        "outcome": str(status),
    }


def _name(principal, scope) -> str | None:
    """The principal's user name without loading anything: a route that committed its session expired the
    user row it had attached there, and that session is closed by now (reading `.name` would raise)."""
    state = inspect(principal.user, raiseerr=False)
    if state is None:  # not an ORM object (a test's stand-in)
        return principal.name
    name = state.dict.get("name")
    if name is None and state.identity:
        from datalabs.db.models import User

        with scope["app"].state.sessions() as db:  # read again, in a session of our own
            user = db.get(User, state.identity[0])
            return user.name if user else f"user #{state.identity[0]}"
    return name


def _write(sessions, scope, status: int) -> None:
    try:
        record = fields(scope, status)
    except Exception:  # never the user's problem: say it loudly and go on
        log.exception("AUDIT RECORD NOT WRITTEN: %s %s", scope.get("method"), scope.get("path"))
        return
    audit.record_now(sessions, **record)


class AuditMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in WRITES:
            return await self.app(scope, receive, send)
        status = 500  # an exception before the response started ends as a 500 for the client

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            sessions = scope["app"].state.sessions
            with CancelScope(shield=True):  # a client that went away still leaves its record
                await to_thread.run_sync(_write, sessions, scope, status)
