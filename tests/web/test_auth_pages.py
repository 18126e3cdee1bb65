"""Login, logout, redirects and CSRF, in process against the real app (forms posted like a browser)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from datalabs.accounts import service
from datalabs.app import create_app
from datalabs.config import Settings
from datalabs.db.engine import transaction

# ---- anonymous visitors and login ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/catalogue", "/catalogue/jupyterlab", "/account/tokens", "/admin/users", "/labs"]
)
def test_anonymous_is_sent_to_login_with_next(client, path):
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next={path}"


def test_root_leads_to_catalogue_and_static_is_public(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/catalogue"
    r = client.get("/static/vendor/htmx.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:200]
    assert "max-age" in r.headers["cache-control"]


def test_login_page_sets_anonymous_cookie_and_has_labelled_fields(client):
    r = client.get("/login")
    assert r.status_code == 200
    assert "<title>Log in · Datalabs</title>" in r.text
    cookie = r.headers["set-cookie"]
    assert "datalabs_anon=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert '<label for="username">' in r.text and '<label for="password">' in r.text


def test_wrong_password_is_401_with_generic_message(client, make_user, login):
    make_user("bob")
    for name, password in (("bob", "wrong password!!"), ("nobody", "whatever12345")):
        r = login(client, name, password)
        assert r.status_code == 401
        assert "wrong user name or password" in r.text.lower()
        assert "datalabs_session" not in r.headers.get("set-cookie", "")


def test_login_is_throttled_with_429(tmp_path, login):
    settings = Settings(home=tmp_path / "throttled", auth={"throttle_failures": 2})
    with TestClient(create_app(settings)) as client:
        with transaction(client.app.state.sessions) as db:
            service.create_user(db, "bob", "correct horse battery")
        assert login(client, "bob", "wrong password 1").status_code == 401
        assert login(client, "bob", "wrong password 2").status_code == 401
        r = login(client, "bob", "correct horse battery")
        assert r.status_code == 429
        assert "too many failed logins" in r.text.lower()
        assert int(r.headers["retry-after"]) > 0


def test_login_sets_httponly_samesite_session_cookie_and_follows_next(client, make_user, login):
    make_user("bob")
    r = login(client, "bob", next_url="/account/tokens")
    assert r.status_code == 303
    assert r.headers["location"] == "/account/tokens"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("datalabs_session=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert client.get("/account/tokens").status_code == 200
    # Logged in, the login page sends you on.
    assert client.get("/login", follow_redirects=False).headers["location"] == "/catalogue"


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"],
)
def test_login_refuses_open_redirects(client, make_user, login, target):
    make_user("bob")
    form = client.get("/login", params={"next": target})
    assert "evil.example" not in form.text
    r = login(client, "bob", next_url=target)
    assert r.status_code == 303
    assert r.headers["location"] == "/catalogue"


def test_csrf_is_required_on_every_form_post(client, make_user, login, csrf_from):
    make_user("bob")
    client.get("/login")
    r = client.post("/login", data={"username": "bob", "password": "correct horse battery"})
    assert r.status_code == 403
    assert "security token" in r.text
    assert login(client, "bob").status_code == 303
    for data in ({"name": "t"}, {"name": "t", "csrf_token": "0" * 64}):
        r = client.post("/account/tokens", data={**data, "scopes": ["all"]})
        assert r.status_code == 403
        assert "<html" in r.text and "Not allowed" in r.text
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403
    # The header htmx sends is accepted as well as the form field.
    token = csrf_from(client.get("/account/tokens").text)
    r = client.post(
        "/account/tokens", data={"name": "via header", "scopes": ["all"]}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 201


def test_logout_ends_the_session(user, post_form):
    r = post_form(user, "/catalogue", "/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    page = user.get("/login")
    assert "You have been logged out." in page.text
    assert user.get("/catalogue", follow_redirects=False).status_code == 303


def test_get_logout_asks_for_the_button(user):
    r = user.get("/logout")
    assert r.status_code == 200 and '<form method="post" action="/logout"' in r.text
    assert user.get("/catalogue", follow_redirects=False).status_code == 200  # still logged in
