"""Team-scoped labs at the proxy (issue 18 Build 3): who may use a team's lab, with which credential, and
that requests from inside a lab (its API socket) reach team-scoped labs only.

The rule is checked with the platform's own authenticator over a real database (sessions and tokens of
real users and groups); the admission through a real LabProxy with a real lab app behind it."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest

from datalabs.accounts import auth, service
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.labs.api_socket import LabApiOnly
from datalabs.proxy import ActivityRecorder, LabProxy, MemoryRouteTable, Route, make_authenticator
from datalabs.proxy.auth import FROM_LAB, owner_or_team
from tests.proxy.conftest import fake_authenticate
from tests.proxy.test_auth import bearer, http_scope


@pytest.fixture
def people(tmp_path, sqlite_template):
    """ada (owner, team astro), bob (astro), carol (helio), root (admin, no team); credentials of each."""
    path = tmp_path / "datalabs.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(home=tmp_path / "home", db={"url": f"sqlite:///{path}"}, auth={"secret_key": "k"})
    engine, sessions = open_database(settings.database_url)
    creds: dict[str, str] = {}
    with transaction(sessions) as db:
        for name in ("ada", "bob", "carol", "root"):
            user = service.create_user(db, name, "long-enough-pw", role="admin" if name == "root" else "user")
            creds[f"{name}:session"] = auth.start_session(db, settings, user)
            creds[f"{name}:token"] = auth.create_token(db, settings, user, "all")[1]
            creds[f"{name}:tracking"] = auth.create_token(db, settings, user, "t", ["tracking:write"])[1]
            creds[f"{name}:write"] = auth.create_token(db, settings, user, "w", ["labs:write"])[1]
            creds[f"{name}:invoke"] = auth.create_token(db, settings, user, "i", ["models:invoke"])[1]
            creds[f"{name}:read"] = auth.create_token(
                db, settings, user, "r", ["labs:read", "tracking:read"]
            )[1]
        service.create_group(db, "astro")
        service.create_group(db, "helio")
        service.set_member(db, "astro", "ada")
        service.set_member(db, "astro", "bob")
        service.set_member(db, "helio", "carol")
    authenticate = make_authenticator(sessions)

    async def principals():
        found = {}
        for key, secret in creds.items():
            scope = (
                http_scope((b"cookie", f"datalabs_session={secret}".encode()))
                if key.endswith(":session")
                else bearer(secret)
            )
            found[key] = await authenticate(scope)
        return found

    yield asyncio.run(principals())
    engine.dispose()


TEAM_LAB = Route("trk", "ada", socket="/s", team="astro")
OWN_LAB = Route("own", "ada", socket="/s")
MODEL_LAB = Route("mdl", "ada", socket="/s", team="astro", invoke_scope="models:invoke")


@pytest.mark.parametrize(
    ("who", "route", "allowed"),
    [
        # the team's lab: its owner and every member, by session, full token or tracking token
        ("ada:session", TEAM_LAB, True),
        ("ada:token", TEAM_LAB, True),
        ("ada:tracking", TEAM_LAB, True),
        ("bob:session", TEAM_LAB, True),
        ("bob:token", TEAM_LAB, True),
        ("bob:tracking", TEAM_LAB, True),
        # ... not with a read-only token, not another team's member, not an admin outside the team
        ("bob:read", TEAM_LAB, False),
        ("ada:read", TEAM_LAB, False),
        ("carol:session", TEAM_LAB, False),
        ("carol:tracking", TEAM_LAB, False),
        ("root:session", TEAM_LAB, False),
        ("root:token", TEAM_LAB, False),
        # an ordinary lab stays its owner's: team members are refused, the tracking token too
        ("ada:session", OWN_LAB, True),
        ("ada:token", OWN_LAB, True),
        ("ada:tracking", OWN_LAB, False),
        ("bob:session", OWN_LAB, False),
        ("root:session", OWN_LAB, False),
        ("ada:invoke", OWN_LAB, False),
        # a served model: team members with models:invoke (or a session, or an `all` token) only
        ("bob:invoke", MODEL_LAB, True),
        ("ada:invoke", MODEL_LAB, True),
        ("bob:session", MODEL_LAB, True),
        ("bob:token", MODEL_LAB, True),
        ("bob:write", MODEL_LAB, False),
        ("bob:tracking", MODEL_LAB, False),
        ("bob:read", MODEL_LAB, False),
        ("carol:invoke", MODEL_LAB, False),
        ("root:invoke", MODEL_LAB, False),
        # labs:write opens a tracking server (a lab), models:invoke does not
        ("bob:write", TEAM_LAB, True),
        ("bob:invoke", TEAM_LAB, False),
    ],
)
def test_who_may_use_a_team_lab(people, who, route, allowed):
    assert people[who] is not None
    assert owner_or_team(people[who], route) is allowed


def test_a_team_lab_owner_who_left_the_team_keeps_it_and_outsiders_never_get_it(people):
    left = Route("trk2", "carol", socket="/s", team="astro")  # carol launched it, then left astro
    assert owner_or_team(people["carol:session"], left)
    assert owner_or_team(people["bob:session"], left)
    assert not owner_or_team(people["root:session"], Route("x", "ada", socket="/s", team="helio2"))


def test_from_inside_a_lab_only_team_labs_are_reached(lab, tmp_path):
    """Through the lab API socket's wrapper (as a lab's process calls the platform): a team-scoped lab is
    proxied; the caller's own ordinary lab is refused 403 even with a credential that opens it from
    outside; the platform's pages stay out of reach (404)."""
    routes = MemoryRouteTable()
    proxy = LabProxy(routes, fake_authenticate, on_activity=ActivityRecorder())

    async def platform_app(scope, receive, send):  # the platform's pages: never reached from a lab
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"platform page"})

    inside = LabApiOnly(proxy.in_front_of(platform_app))

    async def scenario():
        await routes.add_route(Route("team1", "alice", socket=lab.socket, team="astro"))
        await routes.add_route(Route("own1", "alice", socket=lab.socket))
        alice = {"Authorization": "Bearer alice-token"}
        transport = httpx.ASGITransport(app=proxy.in_front_of(platform_app))
        outside = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9")
        from_lab = httpx.AsyncClient(transport=httpx.ASGITransport(app=inside), base_url="http://127.0.0.1:9")
        try:
            return (
                (await outside.get("/datalabs/own1/echo", headers=alice)).status_code,
                (await from_lab.get("/datalabs/own1/echo", headers=alice)).status_code,
                (await from_lab.get("/datalabs/team1/echo", headers=alice)).status_code,
                (await from_lab.get("/web/page", headers=alice)).status_code,
            )
        finally:
            await outside.aclose()
            await from_lab.aclose()
            proxy.close()

    assert asyncio.run(scenario()) == (200, 403, 200, 404)


def test_from_lab_marker_is_set_by_the_lab_socket_only():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope.get(FROM_LAB))

    asyncio.run(LabApiOnly(app)({"type": "http", "path": "/datalabs/x/", "headers": []}, None, None))
    assert seen == [True]
