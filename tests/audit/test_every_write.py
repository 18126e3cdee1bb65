"""Every state-changing route (API and web pages) writes exactly one audit record, refused ones included."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from datalabs.audit.middleware import WRITES
from datalabs.db.models import AuditRecord

# routes a job or lab calls with its own secret: no user's principal to name
NO_PRINCIPAL = {"/api/v1/labs/{lab_id}/callback"}


def _walk(routes):
    """The app's routes, through the routers FastAPI keeps as wrappers (as route_gates.paths_of does)."""
    for candidate in routes:
        if hasattr(candidate, "effective_candidates"):
            yield from _walk(candidate.effective_candidates())
            continue
        route = getattr(candidate, "starlette_route", None) or getattr(candidate, "original_route", None)
        yield route or candidate


def _write_routes(app) -> list[tuple[str, str]]:
    found = set()
    for route in _walk(app.router.routes):
        for method in getattr(route, "methods", None) or ():
            if method in WRITES:
                found.add((method, route.path_format))
    return sorted(found, key=lambda mp: (mp[1] in ("/logout", "/api/v1/logout"), mp))


def _last(app) -> tuple[int, AuditRecord | None]:
    with app.state.sessions() as db:
        n = db.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
        last = db.execute(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(1)).scalar_one_or_none()
        return n, last


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_write_route_writes_one_record(people):
    app = people.app
    people.user("ada")
    routes = _write_routes(app)
    assert len(routes) >= 60 and ("POST", "/api/v1/labs") in routes and ("POST", "/login") in routes
    token = people.token("ada")
    ada = people.login("ada")
    for method, template in routes:
        path = _concrete(template)
        for who in ("anonymous", "ada"):
            before, _ = _last(app)
            if who == "anonymous":
                r = people.client.request(method, path, json={}, cookies={}, follow_redirects=False)
            elif path.startswith("/api/"):
                r = people.client.request(
                    method, path, json={}, headers=token, cookies={}, follow_redirects=False
                )
            else:
                r = ada.request(method, path, json={}, follow_redirects=False)
            n, rec = _last(app)
            label = f"{method} {template} as {who}: {r.status_code}"
            assert n == before + 1, label
            assert (rec.what, rec.outcome) == (f"{method} {template}", str(r.status_code)), label
            if who == "anonymous" and template not in ("/login", "/api/v1/login"):
                assert rec.who is None, label
            if who == "ada" and r.status_code in (403, 404) and template not in NO_PRINCIPAL:
                assert rec.who == "ada", label  # refused after authentication: the principal is named
            assert rec.client == "testclient", label
