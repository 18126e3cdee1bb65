"""Single sign-on through a real OpenID provider (tests/accounts/oidc_provider.py), the whole redirect chain
driven with httpx: the platform (TestClient) sends the browser to the provider, the provider's form signs
in and sends it back with a code, the platform verifies the ID token and starts its session."""

from __future__ import annotations

import base64
import hmac
import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from datalabs.accounts import auth
from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.deps import ANON_COOKIE
from tests.accounts.oidc_provider import Client, OidcProvider, Person
from tests.cli.test_cli import run
from tests.conftest import PASSWORD
from tests.web.conftest import csrf_from

CALLBACK = "http://testserver/login/oidc/op/callback"


@pytest.fixture(scope="module")
def op():
    people = [
        Person(
            "ada", "ada-pass", "sub-ada", groups=["dl-optics", "admins", "unrelated"], email="ada@esa.int"
        ),
        Person("bob", "bob-pass", "sub-bob", groups=[]),
        Person("Carl Sagan", "carl-pass", "sub-carl", groups=["dl-radio"]),
    ]
    client = Client("datalabs", "client-secret", [CALLBACK], post_logout_uris=["http://testserver/login"])
    with OidcProvider(people, [client]) as provider:
        yield provider


@pytest.fixture(scope="module")
def op2():
    client = Client("dl-2", "secret-2", ["http://testserver/login/oidc/uni/callback"])
    with OidcProvider([Person("bob", "bob-2", "sub-bob-2")], [client]) as provider:
        yield provider


@pytest.fixture
def settings(tmp_path, db_url, op, op2) -> Settings:
    provider = {
        "name": "op",
        "title": "Test provider",
        "issuer": op.issuer,
        "client_id": "datalabs",
        "client_secret": "client-secret",
        "scopes": ["openid", "profile", "groups"],
        "groups_claim": "groups",
        "group_prefix": "dl-",
        "admin_values": ["admins"],
        "api_audience": "datalabs-api",
    }
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "test-secret"},
        server={"public_url": "http://testserver"},
        oidc={
            "providers": [
                provider,
                {
                    "name": "uni",
                    "title": "University",
                    "issuer": op2.issuer,
                    "client_id": "dl-2",
                    "client_secret": "secret-2",
                },
            ]
        },
    )


@pytest.fixture
def browser(client):
    client.follow_redirects = False
    return client


@pytest.fixture(autouse=True)
def _no_forgery(op):
    op.forge = None
    yield
    op.forge = None


def to_provider(browser: TestClient, op, next_url: str = "") -> str:
    """Starts a sign-in; the provider URL the platform sent the browser to."""
    started = browser.get("/login/oidc/op", params={"next": next_url} if next_url else None)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(op.issuer + "/authorize?")
    assert "code_challenge_method=S256" in location and "nonce=" in location
    return location


def at_provider(location: str, name: str, password: str) -> str:
    """The provider's form filled in; the callback URL it sends the browser back to."""
    with httpx.Client() as outside:
        assert "Sign in to the test provider" in outside.get(location).text
        back = outside.post(location, data={"username": name, "password": password})
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith("http://testserver/login/oidc/")
    return back.headers["location"]


def callback(browser: TestClient, url: str):
    parts = urlsplit(url)
    return browser.get(f"{parts.path}?{parts.query}")


def sign_in(browser, op, name="ada", password="ada-pass", next_url=""):
    return callback(browser, at_provider(to_provider(browser, op, next_url), name, password))


def test_sign_in_creates_the_user_with_teams_and_admin(browser, op):
    done = sign_in(browser, op, next_url="/labs")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/labs"
    me = browser.get("/api/v1/me").json()
    assert me["name"] == "ada" and me["via"] == "session" and me["email"] == "ada@esa.int"
    assert me["groups"] == ["optics"] and me["role"] == "admin"
    # The account has no local password.
    api = browser.post("/api/v1/login", json={"username": "ada", "password": ""})
    assert api.status_code in (401, 422)


def test_later_sign_ins_sync_teams_and_role(browser, op, app):
    assert sign_in(browser, op).status_code == 303
    with transaction(app.state.sessions) as db:
        from datalabs.accounts import service

        service.create_group(db, "local-team")
        service.set_member(db, "local-team", "ada")
    op.people["ada"].groups = ["dl-radio"]
    try:
        browser.cookies.clear()
        assert sign_in(browser, op).status_code == 303
        me = browser.get("/api/v1/me").json()
        # With group_prefix the provider manages every team: optics and local-team go, radio comes.
        assert me["groups"] == ["radio"] and me["role"] == "user"
    finally:
        op.people["ada"].groups = ["dl-optics", "admins", "unrelated"]


def test_user_name_derived_from_the_claim(browser, op):
    assert sign_in(browser, op, "Carl Sagan", "carl-pass").status_code == 303
    assert browser.get("/api/v1/me").json()["name"] == "carl-sagan"


def test_existing_local_account_is_not_taken_over(browser, op, people):
    people.user("ada")
    done = sign_in(browser, op)
    assert done.status_code == 401
    assert "already exists on this platform and is not linked" in done.text
    assert "datalabs_session" not in browser.cookies
    # The local account still logs in with its password and is not linked.
    assert browser.post("/api/v1/login", json={"username": "ada", "password": PASSWORD}).status_code == 200


def test_open_redirect_through_next_refused(browser, op):
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        browser.cookies.clear()
        done = sign_in(browser, op, next_url=evil)
        assert done.status_code == 303 and not done.headers["location"].startswith(("//", "http", "/\\"))


def test_replayed_state_refused(browser, op):
    url = at_provider(to_provider(browser, op), "ada", "ada-pass")
    flow_cookie = browser.cookies.get("datalabs_oidc")
    assert callback(browser, url).status_code == 303
    browser.cookies.clear()
    browser.cookies.set("datalabs_oidc", flow_cookie, path="/login/oidc/")
    again = callback(browser, url)
    assert again.status_code == 401 and "already used" in again.text
    assert "datalabs_session" not in browser.cookies


def test_state_from_another_browser_refused(browser, op, app):
    url = at_provider(to_provider(browser, op), "ada", "ada-pass")
    with TestClient(app, follow_redirects=False) as other:
        stolen = callback(other, url)
        assert stolen.status_code == 401 and "not started in this browser" in stolen.text
        # Another browser's own flow cookie does not fit this state either.
        other_url = at_provider(to_provider(other, op), "bob", "bob-pass")
        assert other_url != url
        assert callback(other, url).status_code == 401
    # A tampered cookie is refused.
    browser.cookies.set("datalabs_oidc", browser.cookies.get("datalabs_oidc") + "0", path="/login/oidc/")
    assert "not started in this browser" in callback(browser, url).text


def test_unknown_provider_and_provider_error(browser):
    assert browser.get("/login/oidc/nope").status_code == 401
    denied = browser.get("/login/oidc/op/callback", params={"error": "access_denied", "state": "x"})
    assert denied.status_code == 401 and "(access_denied)" in denied.text
    # Text crafted into the callback URL is not shown (no phishing message on the platform's page).
    spoof = {
        "error": "Call +1 555 to restore your account",
        "error_description": "<b>urgent</b>",
        "state": "x",
    }
    crafted = browser.get("/login/oidc/op/callback", params=spoof)
    assert crafted.status_code == 401 and "(unknown error)" in crafted.text
    assert "555" not in crafted.text and "urgent" not in crafted.text


FOREIGN = RSAKey.generate_key(2048, parameters={"kid": "foreign"})


@pytest.mark.parametrize(
    ("forge", "words"),
    [
        (lambda op, c: op.sign({**c, "aud": ["someone-else"]}), "aud"),
        (lambda op, c: op.sign({**c, "iss": "http://127.0.0.1:1"}), "iss"),
        (lambda op, c: op.sign({**c, "nonce": "guessed"}), "nonce"),
        (lambda op, c: op.sign({**c, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}), "exp"),
        (lambda op, c: op.sign(c, key=FOREIGN, header={"kid": op.key.kid}), "bad_signature"),
        (lambda op, c: op.sign(c, key=FOREIGN), "unknown key"),
        (lambda op, c: op.sign(c, alg="none"), "not one the provider uses"),
        (lambda op, c: op.sign({**c, "aud": ["datalabs", "other"], "azp": "other"}), "azp"),
        (lambda op, c: op.sign({k: v for k, v in c.items() if k != "sub"}), "sub"),
    ],
    ids=["audience", "issuer", "nonce", "expired", "signature", "foreign-kid", "alg-none", "azp", "no-sub"],
)
def test_bad_id_tokens_refused(browser, op, forge, words):
    op.forge = lambda claims: forge(op, claims)
    done = sign_in(browser, op)
    assert done.status_code == 401, done.text
    assert words in done.text
    assert "datalabs_session" not in browser.cookies
    assert browser.get("/api/v1/me").status_code == 401


def test_hs256_with_the_public_key_refused(browser, op):
    """The classic confusion: an HMAC token keyed with the provider's public key."""
    public_pem = op.key.as_pem(private=False)

    def hs256(claims: dict) -> str:  # by hand: joserfc itself refuses to use a public key as an HMAC key
        part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        head = part({"alg": "HS256", "kid": op.key.kid}) + "." + part(claims)
        mac = hmac.new(public_pem, head.encode(), "sha256").digest()
        return head + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    op.forge = hs256
    done = sign_in(browser, op)
    assert done.status_code == 401 and "HS256" in done.text


def test_logout_ends_the_provider_session_too(browser, op):
    assert sign_in(browser, op).status_code == 303
    ended = op.ended_sessions
    token = csrf_from(browser.get("/logout").text)
    out = browser.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    location = out.headers["location"]
    assert location.startswith(op.issuer + "/logout?") and "id_token_hint=" in location
    assert browser.get("/api/v1/me").status_code == 401
    with httpx.Client() as outside:
        back = outside.get(location)
        assert back.status_code == 302 and back.headers["location"] == "http://testserver/login"
    assert op.ended_sessions == ended + 1
    # Without a provider sign-in, logout stays on the platform.
    assert "datalabs_sso" not in browser.cookies


def test_login_page_buttons_and_two_providers(browser, op, op2):
    page = browser.get("/login", params={"next": "/labs?x=1"}).text
    assert 'href="/login/oidc/op?next=/labs%3Fx%3D1"' in page and "Sign in with Test provider" in page
    assert "Sign in with University" in page and 'name="password"' in page
    # The second provider signs bob in, linked to its own issuer.
    url = at_provider(to_provider_named(browser, op2, "uni"), "bob", "bob-2")
    assert callback(browser, url).status_code == 303
    assert browser.get("/api/v1/me").json()["name"] == "bob"
    # bob of the first provider is another person: same name, refused.
    browser.cookies.clear()
    done = sign_in(browser, op, "bob", "bob-pass")
    assert done.status_code == 401 and "already exists" in done.text


def to_provider_named(browser, provider, name):
    started = browser.get(f"/login/oidc/{name}")
    assert started.status_code == 303
    assert started.headers["location"].startswith(provider.issuer + "/authorize?")
    return started.headers["location"]


def test_local_login_false_refuses_passwords(settings, people, request):
    settings.oidc.local_login = False
    client = request.getfixturevalue("client")
    people.user("carol")
    api = client.post("/api/v1/login", json={"username": "carol", "password": PASSWORD})
    assert api.status_code == 403 and api.json()["error"]["code"] == "local_login_disabled"
    assert "sign in with Test provider, University" in api.json()["error"]["message"]
    page = client.get("/login")
    assert "Sign in with Test provider" in page.text and 'name="password"' not in page.text
    token = auth.csrf_token(settings, client.cookies.get(ANON_COOKIE))  # a form an old page still holds
    form = client.post("/login", data={"username": "carol", "password": PASSWORD, "csrf_token": token})
    assert form.status_code == 403 and "Passwords are not accepted here" in form.text
    assert "datalabs_session" not in client.cookies
    # Operators still make tokens with `datalabs admin create-token`, which work.
    sso = json.dumps([p.model_dump(mode="json") for p in settings.oidc.providers])
    env = {
        "DATALABS_DB__URL": settings.db.url,
        "DATALABS_OIDC__LOCAL_LOGIN": "false",
        "DATALABS_OIDC__PROVIDERS": sso,
    }
    secret = run(settings.home, "admin", "create-token", "carol", env=env).stdout.strip()
    client.cookies.clear()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()["name"] == "carol"


def test_rotated_provider_key_is_fetched_once(browser, op, monkeypatch):
    from datalabs.accounts import oidc

    assert sign_in(browser, op).status_code == 303  # the platform has the provider's keys cached
    old = op.key
    op.key = RSAKey.generate_key(2048, parameters={"kid": "rotated", "use": "sig"})
    try:
        monkeypatch.setattr(oidc, "JWKS_REFRESH_MIN", 0)
        browser.cookies.clear()
        done = sign_in(browser, op)
        assert done.status_code == 303, done.text  # unknown kid: JWKS fetched again, new key found
        # A kid the provider does not publish is still refused after that refresh.
        op.forge = lambda c: op.sign(c, key=FOREIGN)
        browser.cookies.clear()
        assert sign_in(browser, op).status_code == 401
    finally:
        op.key = old
