"""Finding 5: lab pages ran on the platform's own origin. Any script on a lab page (a notebook output, a
published app) was same-origin with the platform and could call the API with the user's session cookie:
`fetch('/api/v1/tokens', {method: 'POST', credentials: 'include', ...})` answered 201 with an
`all`-scope token. Now each lab is served on its own origin (`labs.origin_url`, by default
`http://<lab id>.lab.localhost:<port>`), entered with a lab cookie obtained through a one-time code; the
platform session never reaches a lab origin and is ignored there.

Here through the real platform app in process (HTTP-level: codes, cookies, origins, refusals); the
attack itself in real Chromium is in `test_attack_from_a_lab_page_in_chromium` below."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import sqlite3
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from starlette.testclient import WebSocketDenialResponse

from datalabs.config import Settings
from datalabs.db.types import utcnow
from tests.catalogue.test_loader import write
from tests.conftest import PASSWORD

FAKE = 'title: Fake Lab\nversion: "1.0"\nruntime:\n  kind: web\n  command: [fake-lab]\n'
PLATFORM = "http://testserver"  # the TestClient's address: the platform's origin here
PORT = 8000  # server.port: the default labs.origin_url's {port}
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def settings(tmp_path, db_url):
    write(tmp_path / "defs", "fake", FAKE)
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "test-secret", "cache_ttl": 0},  # logout takes effect at once
        catalogue={"dirs": [tmp_path / "defs"], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime", "max_running_per_user": 5},
        server={"public_url": PLATFORM},
        pipelines={"worker": False, "system": False},
    )


def origin(lab_id: str) -> str:
    return f"http://{lab_id}.lab.localhost:{PORT}"


def launch(c: TestClient) -> str:
    r = c.post("/api/v1/labs", json={"datalab": "fake"})
    assert r.status_code == 202, r.text
    lab_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while (lab := c.get(f"/api/v1/labs/{lab_id}").json())["state"] != "running":
        assert lab["state"] in ("pending", "starting") and time.monotonic() < deadline, lab
        time.sleep(0.05)
    assert lab["url"] == f"{origin(lab_id)}/datalabs/{lab_id}/" and lab["path"] == f"/datalabs/{lab_id}/"
    return lab_id


def browser(people, name: str) -> TestClient:
    """A client that keeps cookies per host like a browser, logged in to the platform (session cookie
    for `testserver` only), redirects not followed."""
    c = TestClient(people.app, follow_redirects=False)
    c.portal = people.client.portal
    r = c.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def enter(c: TestClient, lab_id: str, rest: str = "") -> str:
    """Open the lab as a browser does, from its path on the platform: the one-time code's URL."""
    r = c.get(f"/datalabs/{lab_id}/{rest}", headers=HTML)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(f"{origin(lab_id)}/_datalabs/login?code="), location
    return location


def session_value(c: TestClient) -> str:
    return next(cookie.value for cookie in c.cookies.jar if cookie.name == "datalabs_session")


def lab_cookie(c: TestClient, lab_id: str) -> str:
    host = f"{lab_id}.lab.localhost"
    return next(x.value for x in c.cookies.jar if x.name == "datalabs_lab" and x.domain.lstrip(".") == host)


@pytest.fixture
def ada(people):
    people.user("ada")
    return browser(people, "ada")


def test_the_way_in_is_a_one_time_code_then_a_lab_scoped_httponly_cookie(ada):
    lab_id = launch(ada)
    location = enter(ada, lab_id, "tree?x=1")
    assert session_value(ada) not in location  # the platform session is never in a URL
    query = parse_qs(urlsplit(location).query)
    assert query["next"] == [f"/datalabs/{lab_id}/tree?x=1"]
    r = ada.get(location)
    assert r.status_code == 303 and r.headers["location"] == f"/datalabs/{lab_id}/tree?x=1"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("datalabs_lab=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Domain" not in cookie and "Max-Age=3600" in cookie
    assert session_value(ada) not in cookie
    served = ada.get(f"{origin(lab_id)}/datalabs/{lab_id}/tree?x=1")
    assert served.status_code == 200 and served.text == "fake lab ok"


def test_the_session_cookie_is_never_accepted_on_a_lab_origin(ada):
    lab_id = launch(ada)
    session = {"Cookie": f"datalabs_session={session_value(ada)}"}
    with TestClient(ada.app, follow_redirects=False) as stranger:  # no cookies of its own
        url = f"{origin(lab_id)}/datalabs/{lab_id}/"
        page = stranger.get(url, headers={**session, **HTML})
        assert page.status_code == 303 and page.headers["location"] == f"{PLATFORM}/datalabs/{lab_id}/"
        for method in ("GET", "POST", "PUT", "DELETE"):
            r = stranger.request(method, url + "api/contents", headers={**session, "Origin": origin(lab_id)})
            assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated", (method, r.text)


def test_a_code_is_single_use(ada):
    lab_id = launch(ada)
    location = enter(ada, lab_id)
    assert ada.get(location).status_code == 303
    again = ada.get(location)
    assert again.status_code == 400 and again.json()["error"]["code"] == "lab_code_invalid"
    assert "set-cookie" not in again.headers


def test_a_code_is_for_one_lab_only(ada):
    first, second = launch(ada), launch(ada)
    location = enter(ada, first)
    code = parse_qs(urlsplit(location).query)["code"][0]
    with TestClient(ada.app, follow_redirects=False) as other:
        r = other.get(f"{origin(second)}/_datalabs/login?code={code}&next=/datalabs/{second}/")
        assert r.status_code == 400 and "set-cookie" not in r.headers
        # Presented where it does not belong, it is used up: not even its own lab takes it now.
        assert other.get(location).status_code == 400


def test_a_code_or_cookie_of_another_user_gets_nobody_in(people, ada):
    ada_lab = launch(ada)
    people.user("bob")
    bob = browser(people, "bob")
    bob_lab = launch(bob)
    # bob's code, at ada's lab's origin
    code = parse_qs(urlsplit(enter(bob, bob_lab)).query)["code"][0]
    r = bob.get(f"{origin(ada_lab)}/_datalabs/login?code={code}&next=/datalabs/{ada_lab}/")
    assert r.status_code == 400
    # bob's genuine lab cookie, replayed at ada's lab's origin
    assert bob.get(enter(bob, bob_lab)).status_code == 303
    stolen = lab_cookie(bob, bob_lab)
    with TestClient(ada.app, follow_redirects=False) as thief:
        r = thief.get(f"{origin(ada_lab)}/datalabs/{ada_lab}/", headers={"Cookie": f"datalabs_lab={stolen}"})
        assert r.status_code == 401
    # bob asking the platform for a way into ada's lab: refused before any code exists
    assert bob.get(f"/datalabs/{ada_lab}/", headers=HTML).status_code == 404
    # a forged cookie (ada's session id unknown to bob; any MAC he makes is wrong)
    forged = f"1.{'0' * 64}.{int(time.time()) + 600}.{'0' * 64}"
    with TestClient(ada.app, follow_redirects=False) as forger:
        r = forger.get(f"{origin(ada_lab)}/datalabs/{ada_lab}/", headers={"Cookie": f"datalabs_lab={forged}"})
        assert r.status_code == 401


def test_an_expired_code_is_refused(ada, app):
    lab_id = launch(ada)
    location = enter(ada, lab_id)
    from datalabs.db.models import LabCode

    with app.state.sessions() as db:  # a minute later (codes live CODE_TTL seconds)
        db.execute(update(LabCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    assert ada.get(location).status_code == 400


def test_the_lab_cookie_ends_with_the_platform_session(ada):
    lab_id = launch(ada)
    assert ada.get(enter(ada, lab_id)).status_code == 303
    url = f"{origin(lab_id)}/datalabs/{lab_id}/"
    assert ada.get(url).status_code == 200
    assert ada.post("/api/v1/logout").status_code == 204
    assert ada.get(url).status_code == 401


def test_a_lab_origin_serves_only_that_labs_paths(ada):
    first, second = launch(ada), launch(ada)
    assert ada.get(enter(ada, first)).status_code == 303
    base = origin(first)
    for path in ("/api/v1/me", "/api/v1/tokens", "/catalogue", "/login", "/", f"/datalabs/{second}/"):
        r = ada.get(base + path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
    r = ada.post(base + "/api/v1/tokens", json={"name": "x"}, headers={"Origin": base})
    assert r.status_code == 404


def test_cross_origin_changes_and_websockets_to_a_lab_are_refused(ada):
    first, second = launch(ada), launch(ada)
    assert ada.get(enter(ada, first)).status_code == 303
    url = f"{origin(first)}/datalabs/{first}/api/contents"
    # another lab of the same user (same site), another site, a sandboxed frame
    for foreign in (origin(second), "https://evil.example", "null"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            r = ada.request(method, url, headers={"Origin": foreign})
            assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin", (foreign, method)
    # a browser that sends no Origin still says where the request came from
    r = ada.post(url, headers={"Sec-Fetch-Site": "same-site"})
    assert r.status_code == 403
    # from the lab's own page: through to the lab
    assert ada.post(url, headers={"Origin": origin(first)}).text == "fake lab ok"
    assert ada.post(url, headers={"Sec-Fetch-Site": "same-origin"}).text == "fake lab ok"
    # WebSockets: the browser always sends Origin; another one is refused before the lab is reached
    ws_url = f"ws://{first}.lab.localhost:{PORT}/datalabs/{first}/api/kernels/k/channels"
    cookie = {"Cookie": f"datalabs_lab={lab_cookie(ada, first)}"}
    for foreign in (origin(second), "https://evil.example"):
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            ada.websocket_connect(ws_url, headers={**cookie, "Origin": foreign}),
        ):
            pass
        assert refused.value.status_code == 403 and refused.value.json()["error"]["code"] == "cross_origin"


def test_bearer_tokens_keep_working_on_the_platform_path(people, ada):
    lab_id = launch(ada)
    token = people.token("ada")
    with TestClient(ada.app, follow_redirects=False) as cli:
        for method in ("GET", "POST", "DELETE"):
            r = cli.request(method, f"/datalabs/{lab_id}/api/status", headers=token)
            assert r.status_code == 200 and r.text == "fake lab ok", (method, r.text)
        bob_token = people.token(people.user("bob"))
        assert cli.get(f"/datalabs/{lab_id}/api/status", headers=bob_token).status_code == 404


def test_the_session_cookie_on_the_platform_path_only_leads_to_the_lab_origin(ada):
    lab_id = launch(ada)
    for method in ("POST", "PUT", "DELETE"):
        r = ada.request(method, f"/datalabs/{lab_id}/api/contents")
        assert r.status_code == 403 and r.json()["error"]["code"] == "lab_origin", r.text
        assert origin(lab_id) in r.json()["error"]["message"]
    r = ada.get(f"/datalabs/{lab_id}/api/contents")  # not even a GET is proxied: it is redirected
    assert r.status_code == 303 and r.headers["location"].startswith(origin(lab_id))


def test_path_mode_only_with_the_explicit_opt_in(ada, settings, caplog):
    lab_id = launch(ada)
    assert ada.get(f"/datalabs/{lab_id}/").status_code == 303  # the default: never served here
    unsafe = settings.model_copy(
        update={"labs": settings.labs.model_copy(update={"unsafe_platform_origin": True})}
    )
    from datalabs.app import create_app

    caplog.set_level(logging.WARNING)
    with TestClient(create_app(unsafe), follow_redirects=False) as c:
        assert any("UNSAFE" in r.getMessage() and "own origin" in r.getMessage() for r in caplog.records)
        r = c.post("/api/v1/login", json={"username": "ada", "password": PASSWORD})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        lab = c.post("/api/v1/labs", json={"datalab": "fake"}).json()
        assert lab["url"] == lab["path"] == f"/datalabs/{lab['id']}/"
        deadline = time.monotonic() + 30
        while c.get(f"/api/v1/labs/{lab['id']}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert c.get(lab["path"]).text == "fake lab ok"  # served on the platform's origin, as before
        assert c.delete(f"/api/v1/labs/{lab['id']}").status_code == 204


def test_the_admin_page_warns_about_path_mode(people, settings):
    people.user("root", role="admin")
    unsafe = settings.model_copy(
        update={"labs": settings.labs.model_copy(update={"unsafe_platform_origin": True})}
    )
    from datalabs.app import create_app

    for config, warned in ((settings, False), (unsafe, True)):
        with TestClient(create_app(config)) as c:
            c.post("/api/v1/login", json={"username": "root", "password": PASSWORD})
            page = c.get("/admin/security", headers=HTML)
            assert page.status_code == 200
            assert ("any script on a lab page" in page.text) is warned
            assert ("served on its own origin" in page.text) is not warned


def test_after_the_code_only_the_labs_own_pages(ada):
    lab_id = launch(ada)
    location = enter(ada, lab_id)
    code = parse_qs(urlsplit(location).query)["code"][0]
    for wanted in (
        "https://evil.example/",
        "//evil.example/x",
        "/api/v1/me",
        f"/datalabs/{lab_id}x/",
        "/\\evil",
    ):
        fresh = parse_qs(urlsplit(enter(ada, lab_id)).query)["code"][0]
        r = ada.get(f"{origin(lab_id)}/_datalabs/login", params={"code": fresh, "next": wanted})
        assert r.status_code == 303 and r.headers["location"] == f"/datalabs/{lab_id}/", wanted
    assert code  # the first code was simply never used


def test_a_lab_cookie_in_use_is_renewed(ada, settings):
    from datalabs.accounts import lab_login

    lab_id = launch(ada)
    session_id = hashlib.sha256(session_value(ada).encode()).hexdigest()
    old = lab_login.lab_cookie(settings, lab_id, session_id, now=time.time() - 0.6 * settings.labs.cookie_ttl)
    with TestClient(ada.app, follow_redirects=False) as c:
        r = c.get(f"{origin(lab_id)}/datalabs/{lab_id}/", headers={"Cookie": f"datalabs_lab={old.value}"})
        assert r.status_code == 200 and r.headers["set-cookie"].startswith("datalabs_lab=")
        fresh = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        assert lab_login.read_lab_cookie(settings, lab_id, fresh).expires > old.expires


# ---- the attack, in real Chromium -------------------------------------------------------------------

STEAL = """async ([url, contentType]) => {
  try {
    const r = await fetch(url, {
      method: 'POST', credentials: 'include', headers: {'Content-Type': contentType},
      body: JSON.stringify({name: 'stolen', scopes: ['all']}),
    });
    return {status: r.status, body: await r.text()};
  } catch (e) {
    return {error: String(e)};
  }
}"""
READ = """async (url) => {
  try {
    const r = await fetch(url, {credentials: 'include'});
    return {status: r.status, body: await r.text()};
  } catch (e) {
    return {error: String(e)};
  }
}"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.web.test_browser import _server

    home = tmp_path_factory.mktemp("lab-origin")
    write(home / "defs", "fake", FAKE)
    env = {
        "DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime",
        "DATALABS_CATALOGUE__DIRS": f'["{home / "defs"}"]',
        "DATALABS_CATALOGUE__BUILTIN": "false",
        "DATALABS_PIPELINES__SYSTEM": "false",
    }
    for base in _server(home, env):
        yield home, base


def _stolen_tokens(home) -> int:
    """Tokens the attack made (the lab's own, scoped token made at launch is named after the lab)."""
    with sqlite3.connect(home / "datalabs.db") as db:
        return db.execute("SELECT count(*) FROM api_tokens WHERE name = 'stolen'").fetchone()[0]


@pytest.mark.slow
def test_attack_from_a_lab_page_in_chromium(live):
    from playwright.sync_api import expect

    from tests.web.test_browser import ADMIN, browser_page
    from tests.web.test_browser import PASSWORD as ADMIN_PASSWORD

    home, base = live
    with browser_page(base) as page:
        page.goto("/login")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/catalogue$"))
        # Launch as a user does; the start page opens the lab by itself: on the lab's own origin.
        page.goto("/catalogue/fake/launch")
        page.get_by_role("button", name="Launch", exact=True).click()
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
        expect(page.get_by_text("fake lab ok")).to_be_visible()
        lab_id = urlsplit(page.url).path.split("/")[2]
        port = urlsplit(base).port

        # The attack as it was: a script on the lab's page asks for a token with the user's cookies.
        here = page.evaluate(STEAL, ["/api/v1/tokens", "application/json"])
        assert here.get("status") == 404, here  # the lab's origin serves no platform API
        assert page.url == f"http://{lab_id}.lab.localhost:{port}/datalabs/{lab_id}/", page.url
        # ... and at the platform's absolute address: the browser does not let it through.
        for content_type in ("application/json", "text/plain"):
            there = page.evaluate(STEAL, [f"{base}/api/v1/tokens", content_type])
            assert "error" in there and "token" not in str(there), there
        # Reading the platform's pages (for a CSRF token) is refused by the browser too.
        for url in (f"{base}/api/v1/me", f"{base}/account/tokens"):
            read = page.evaluate(READ, url)
            assert "error" in read and "csrf" not in str(read).lower(), read
        # Another of the user's labs, from this one: refused (its origin is another one).
        other = page.evaluate(
            STEAL, [f"http://{'0' * 16}.lab.localhost:{port}/datalabs/{'0' * 16}/x", "text/plain"]
        )
        assert "error" in other or other.get("status") in (401, 403, 404), other
        # No cookie of the platform is visible to the lab's page.
        assert page.evaluate("document.cookie") == ""
        # Meanwhile the platform itself still works in its own tab, the lab still answers.
        platform = page.context.new_page()
        platform.goto(f"{base}/labs")
        expect(platform.locator(".lab-card")).to_have_count(1)
        page.reload()
        expect(page.get_by_text("fake lab ok")).to_be_visible()
        # The refusals above, on purpose: the 404 and the browser's CORS blocks.
        problems = [p for p in page.problems if not p.startswith("HTTP 404") and "CORS policy" not in p]
        assert problems == [], problems
    assert _stolen_tokens(home) == 0
    with httpx.Client(base_url=base, timeout=30) as c:  # tidy up: labs outlive the server by design
        login = c.post("/api/v1/login", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        c.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        assert c.delete(f"/api/v1/labs/{lab_id}").status_code == 204


def test_pages_let_forms_lead_to_the_labs_origins_only(ada):
    """Opening a file in a running lab posts a form whose redirects end on the lab's origin: the pages'
    CSP form-action names the labs' origins (and nothing else besides the platform)."""
    csp = ada.get("/labs").headers["content-security-policy"]
    form_action = next(d.strip() for d in csp.split(";") if d.strip().startswith("form-action"))
    assert form_action == f"form-action 'self' http://*.lab.localhost:{PORT}"


@pytest.mark.slow
def test_the_served_platform_refuses_cross_origin_websockets_to_a_lab(live):
    """As `datalabs serve` runs (lab WebSockets piped by passthrough.py): a WebSocket to a lab with the
    lab cookie but another lab's Origin is refused before the lab is reached; its own Origin gets through
    the gate (the fake lab then answers no WebSocket)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from tests.web.test_browser import ADMIN
    from tests.web.test_browser import PASSWORD as ADMIN_PASSWORD

    home, base = live
    port = urlsplit(base).port
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as c:
        login = c.post("/api/v1/login", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        c.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        lab_id = c.post("/api/v1/labs", json={"datalab": "fake"}).json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"/api/v1/labs/{lab_id}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        try:
            way_in = urlsplit(c.get(f"/datalabs/{lab_id}/", headers=HTML).headers["location"])
            lab_host = f"{lab_id}.lab.localhost:{port}"
            assert way_in.netloc == lab_host
            redeemed = httpx.get(f"{base}{way_in.path}?{way_in.query}", headers={"Host": lab_host})
            cookie = redeemed.headers["set-cookie"].split(";")[0]
            uri = f"ws://{lab_host}/datalabs/{lab_id}/api/kernels/k/channels"

            def dial() -> socket.socket:  # the lab's host name, at the server's address (no DNS here)
                return socket.create_connection(("127.0.0.1", port))

            for foreign, status in (
                (f"http://{'0' * 16}.lab.localhost:{port}", 403),
                ("https://evil.example", 403),
            ):
                with pytest.raises(InvalidStatus) as refused:
                    connect(
                        uri, sock=dial(), proxy=None, origin=foreign, additional_headers={"Cookie": cookie}
                    )
                assert refused.value.response.status_code == status
                assert b"cross_origin" in refused.value.response.body
            with pytest.raises(InvalidStatus) as own:  # past the gate: the fake lab speaks no WebSocket
                connect(
                    uri,
                    sock=dial(),
                    proxy=None,
                    origin=f"http://{lab_host}",
                    additional_headers={"Cookie": cookie},
                )
            assert b"cross_origin" not in (own.value.response.body or b"")
        finally:
            assert c.delete(f"/api/v1/labs/{lab_id}").status_code == 204
