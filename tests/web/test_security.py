"""Every error a browser gets from a page address is an HTML page, never the API's JSON (issue 15,
Build 6): the walk below requests every page route of the app, anonymous and logged in, with unknown
ids, without and with the CSRF token, and with a method the address does not take; and the labs
proxy's refusals of page loads."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from datalabs.web.security import HtmlRoute
from tests.web.conftest import csrf_from
from tests.web.labs_support import HTML, browser

NOT_PAGES = ("/api/", "/stac", "/static", "/healthz", "/metrics", "/datalabs/")


def _routes(routes) -> list:
    """Every route, also those of included routers (FastAPI keeps those behind a wrapper of its own)."""
    flat = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat += _routes(inner.routes) if inner is not None else [route]
    return flat


def _pages(app) -> list[tuple[str, str]]:
    """(method, path) of every page route, path parameters filled with ids that exist nowhere."""
    found = []
    for route in _routes(app.routes):
        if not isinstance(route, APIRoute) or route.path.startswith(NOT_PAGES):
            continue
        assert isinstance(route, HtmlRoute), f"{route.path} is a page without HtmlRoute's error pages"
        path = re.sub(r"\{[^}]+\}", "nope-0", route.path)
        found += [(method, path) for method in sorted(route.methods)]
    return found


def _is_page(r) -> bool:
    kind = r.headers.get("content-type", "")
    return r.status_code in (301, 302, 303, 307, 308) or kind.startswith("text/html")


@pytest.fixture
def anonymous(client) -> TestClient:
    return TestClient(client.app, headers=HTML, raise_server_exceptions=False)


@pytest.fixture
def bob(client, make_user, login) -> TestClient:
    make_user("bob")
    c = browser(client)
    c._transport.raise_server_exceptions = False  # a 500 must be a page too, so it is looked at
    assert login(c, "bob").status_code == 303
    return c


def test_every_page_route_answers_errors_as_pages(client, anonymous, bob):
    pages = _pages(client.app)
    assert len(pages) > 50 and ("POST", "/labs/nope-0/restart") in pages
    token = csrf_from(bob.get("/labs").text)
    problems = []
    for method, path in pages:
        tries = [
            ("anonymous", anonymous, {}),
            ("logged in, no CSRF token", bob, {}),
            ("logged in", bob, {"csrf_token": token} if method != "GET" else {}),
        ]
        for who, c, data in tries:
            r = c.request(method, path, data=data or None, follow_redirects=False)
            if not _is_page(r) or r.status_code >= 500:
                problems.append(f"{method} {path} as {who}: {r.status_code} {r.headers.get('content-type')}")
        wrong = bob.request("PATCH", path, follow_redirects=False)  # no page takes PATCH
        if wrong.status_code != 405 or not _is_page(wrong):
            problems.append(f"PATCH {path}: {wrong.status_code} {wrong.headers.get('content-type')}")
    assert not problems, "\n".join(problems)
    wrong = bob.request("PATCH", "/labs", follow_redirects=False)
    assert "does not take that kind of request" in wrong.text and "<html" in wrong.text


def test_unknown_addresses_and_the_lab_proxy_answer_browsers_with_pages(bob):
    for path in ("/no/such/page", "/labs/nope-0/nothing", "/datalabs/0123456789abcdef/", "/datalabs/x/"):
        r = bob.get(path, follow_redirects=False)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), (path, r.text)
    # The API stays JSON, whatever the browser asks for.
    r = bob.get("/api/v1/labs/nope-0")
    assert r.status_code == 404 and r.json()["error"]["code"] == "lab_not_found"


def test_a_form_too_large_gets_a_page_and_the_api_its_json(bob):
    body = b"csrf_token=x&next=" + b"a" * (9 * 2**20)  # past every form's 8 MiB
    kind = {"Content-Type": "application/x-www-form-urlencoded"}
    r = bob.post("/labs/nope-0/stop", content=body, headers=kind, follow_redirects=False)
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), r.text[:200]
    assert "larger than this route accepts (8 MiB)" in r.text
    api = bob.post("/api/v1/labs", content=body, headers={"Content-Type": "application/json"})
    assert api.status_code == 413 and api.json()["error"]["code"] == "too_large"
