"""The route gates (datalabs.route_gates) change how fast a request finds its route, never which one."""

from __future__ import annotations

import itertools
import re

import pytest
from starlette.routing import Match

from datalabs import route_gates


@pytest.fixture
def app(settings):
    from datalabs.app import create_app

    return create_app(settings)


def included(app):
    return [r for r in app.router.routes if hasattr(r, "effective_candidates")]


def all_paths(app) -> set[str]:
    paths: set[str] = set()
    for router in included(app):
        exact, prefixes = route_gates.paths_of(router)
        paths |= exact | prefixes
    for router in included(app):
        for candidate in router.effective_candidates():
            paths.add(getattr(candidate, "path", "") or "")
    return {p for p in paths if p}


def samples(app) -> list[str]:
    """Every route path with its parameters filled in, and near misses around each of them."""
    out = {"/", "", "/nope", "/api", "/api/v1", "/api/v1/", "//api/v1/labs", "/api/v1/labs%2F..", "/ä"}
    for path in all_paths(app):
        filled = re.sub(r"\{[^}:]+:path\}", "a/b/c.txt", path)
        filled = re.sub(r"\{[^}]+\}", "x1", filled)
        out |= {filled, filled + "/", filled + "x", filled.rstrip("/") + "/more", filled.upper()}
        out.add(filled[:-1])
        out.add(filled.rsplit("/", 1)[0])
    return sorted(out)


def test_every_included_router_is_gated(app):
    routers = included(app)
    assert routers, "FastAPI no longer includes routers as wrappers: this module can go"
    assert all(isinstance(r, route_gates._Gated) for r in routers)
    assert route_gates.install(app) == 0  # a second install changes nothing


def test_a_gated_router_matches_exactly_what_it_matched_before(app):
    """For every router, every route path (filled in) and near misses, both methods and both kinds: the
    gated answer is the ungated one (the same match and the same endpoint)."""
    checked = 0
    for router, path, method, kind in itertools.product(
        included(app), samples(app), ("GET", "POST"), ("http", "websocket")
    ):
        scope = {"type": kind, "path": path, "root_path": "", "method": method, "headers": []}
        gated = router.matches(dict(scope))
        ungated = super(route_gates._Gated, router).matches(dict(scope))
        assert gated[0] == ungated[0], (path, method, kind, router.original_router.prefix)
        assert gated[1].get("endpoint") == ungated[1].get("endpoint")
        checked += 1
    assert checked > 10_000


def test_a_request_walks_only_the_routers_that_can_match_it(app, monkeypatch):
    """`/api/v1/labs` comes after six routers; only the one holding it looks through its routes."""
    walked = []
    cls = type(included(app)[0]).__mro__[2]  # FastAPI's own included-router class
    original = cls._match

    def counting(self, scope):
        walked.append(self.original_router.prefix)
        return original(self, scope)

    monkeypatch.setattr(cls, "_match", counting)
    scope = {"type": "http", "path": "/api/v1/labs", "root_path": "", "method": "GET", "headers": []}
    for router in app.router.routes:
        match, _ = router.matches(dict(scope))
        if match == Match.FULL:
            break
    assert walked == ["/api/v1/labs"]


def test_a_real_request_still_reaches_its_route_and_an_unknown_path_is_404(client, people):
    people.user("ada")
    headers = people.token("ada")
    assert client.get("/api/v1/labs", headers=headers).json() == []
    assert client.get("/api/v1/me", headers=headers).json()["via"] == "token"
    assert client.get("/api/v1/nope", headers=headers).status_code == 404
    assert client.get("/healthz").status_code == 200
