"""ASGI middleware: one audit record per state-changing request (POST/PUT/PATCH/DELETE).

what = method + route template ("POST /api/v1/labs/{lab_id}/stop"), target = the path parameters, who = the
principal the route resolved (request.state.principal, set by deps.optional_principal; never a second
authentication here) or the name a login tried (request.state.audit_who), outcome = the response status,
client = request.client.host (uvicorn's proxy headers). The record is written after the response, in a
worker thread and its own transaction; a failure is logged and never reaches the user."""

from __future__ import annotations

import json

from anyio import CancelScope, to_thread

from datalabs import audit

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def fields(scope, status: int) -> dict:
    """The record's fields for a finished request (scope after routing, the status sent)."""
    state = scope.get("state") or {}
    principal = state.get("principal")
    who = principal.name if principal is not None else state.get("audit_who")
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
                await to_thread.run_sync(lambda: audit.record_now(sessions, **fields(scope, status)))
