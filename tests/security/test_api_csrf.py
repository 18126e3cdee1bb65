"""Finding 5 (its API half): a cookie-authenticated `POST /api/v1/tokens` with a JSON body, no CSRF token
and any Origin answered 201 with an `all`-scope token, so any page the browser would send the session
cookie with (a lab page, a same-site page) could mint itself a token. Now every cookie-authenticated
change under /api/ needs the session's `X-CSRF-Token` header, and a browser's `Origin`, when sent, must
be the platform's own. Bearer tokens are not sent by browsers on their own: they need neither."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from datalabs.db.models import ApiToken
from tests.conftest import PASSWORD

OWN = "http://testserver"  # the TestClient's base URL: the platform's own origin here
FOREIGN = [
    "http://0123456789abcdef.lab.localhost:8000",  # a lab's page
    "https://evil.example",
    "null",  # a sandboxed frame or a data: URL
    "http://testserver.evil.example",
]


def _tokens(app) -> int:
    with app.state.sessions() as db:
        return db.scalar(select(func.count(ApiToken.id)))


def _login(people, name: str):
    """A cookie client as a browser is after logging in (the session cookie, nothing else sent by
    default), and the CSRF token the login answered with."""
    c = TestClient(people.app)
    c.portal = people.client.portal
    r = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def test_json_post_with_the_cookie_and_no_csrf_header_is_refused(app, people):
    people.user("ada")
    ada, _ = _login(people, "ada")
    before = _tokens(app)
    r = ada.post("/api/v1/tokens", json={"name": "stolen", "scopes": ["all"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
    # Any body a page can send without asking the platform first (a "simple" request) fares no better.
    r = ada.post(
        "/api/v1/tokens", content=b'{"name": "stolen"}', headers={"Content-Type": "text/plain", "Origin": OWN}
    )
    assert r.status_code == 403
    assert _tokens(app) == before


@pytest.mark.parametrize("origin", FOREIGN)
def test_a_foreign_origin_is_refused_even_with_the_csrf_header(app, people, origin):
    people.user("ada")
    ada, csrf = _login(people, "ada")
    before = _tokens(app)
    r = ada.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf, "Origin": origin})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", r.text
    assert _tokens(app) == before


def test_the_header_and_the_own_origin_make_it(app, people):
    people.user("ada")
    ada, csrf = _login(people, "ada")
    r = ada.post("/api/v1/tokens", json={"name": "mine"}, headers={"X-CSRF-Token": csrf, "Origin": OWN})
    assert r.status_code == 201, r.text
    assert r.json()["token"].startswith("dl_")
    # Without Origin (not a browser, or an older one): the header alone, as before.
    assert ada.post("/api/v1/tokens", json={"name": "cli"}, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_every_changing_method_needs_it(app, people):
    people.user("ada", role="admin")
    people.user("bob")
    ada, csrf = _login(people, "ada")
    made = ada.post("/api/v1/tokens", json={"name": "t"}, headers={"X-CSRF-Token": csrf}).json()
    for method, path, body in (
        ("DELETE", f"/api/v1/tokens/{made['id']}", None),
        ("PATCH", "/api/v1/users/bob", {"full_name": "Mallory"}),
        ("PUT", "/api/v1/groups/astro/members/bob", {"role": "member"}),
        ("POST", "/api/v1/logout", {}),
    ):
        r = ada.request(method, path, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf", (method, path, r.text)
    listed = ada.get("/api/v1/tokens").json()
    assert [t["id"] for t in listed] == [made["id"]]  # the DELETE did nothing
    assert ada.get("/api/v1/users/bob").json()["full_name"] != "Mallory"
    assert ada.delete(f"/api/v1/tokens/{made['id']}", headers={"X-CSRF-Token": csrf}).status_code == 204


def test_who_may_create_tokens_anonymous_other_user_owner_admin(app, people, client):
    people.user("ada")
    people.user("bob")
    people.user("root", role="admin")
    ada, ada_csrf = _login(people, "ada")
    bob, bob_csrf = _login(people, "bob")
    root, root_csrf = _login(people, "root")
    body = {"name": "t"}
    # anonymous: no session at all
    assert client.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": ada_csrf}).status_code == 401
    # another user's CSRF token is bound to another session: worthless with bob's cookie
    assert bob.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": ada_csrf}).status_code == 403
    # the owner of the session, and an administrator, with their own header and origin
    for c, csrf in ((ada, ada_csrf), (bob, bob_csrf), (root, root_csrf)):
        assert (
            c.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": csrf, "Origin": OWN}).status_code
            == 201
        )
        assert c.post("/api/v1/tokens", json=body, headers={"Origin": OWN}).status_code == 403
    # administrators get no exemption from a foreign origin
    r = root.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": root_csrf, "Origin": FOREIGN[0]})
    assert r.status_code == 403


def test_bearer_tokens_need_neither_header_nor_origin(people, client):
    people.user("ada")
    bearer = people.token("ada")
    r = client.post("/api/v1/tokens", json={"name": "from-cli"}, headers={**bearer, "Origin": FOREIGN[1]})
    assert r.status_code == 201, r.text
