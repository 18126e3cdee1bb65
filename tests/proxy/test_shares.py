"""Share guests at the proxy (issue 19 Build 2, item 4): a user a lab is shared with (directly or through
a team) reaches it with their own credentials, and the lab is told who they are and in which mode; anyone
else is refused; a revoke refuses the guest's next request within 2 s; the owner's secret never reaches the
guest.

A real LabProxy with the platform's own authenticator and origin gate over a real database (SQLite and
PostgreSQL), served by uvicorn, in front of the real lab app of tests/proxy (which echoes what it got)."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from datalabs.accounts import auth, service
from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import Lab
from datalabs.labs import origins as lab_origins
from datalabs.labs import shares
from datalabs.proxy import LabProxy, MemoryRouteTable, Route, make_authenticator, rfb
from datalabs.proxy.passthrough import websocket_protocol
from tests.desktop_support import RfbClient, WebSocketTransport
from tests.proxy.conftest import SECRET
from tests.proxy.servers import ServerThread
from tests.share_support import DESKTOP_RUNTIME, add_datalab

PORT = 8000  # server.port: the labs' origins are http://<lab>.lab.localhost:8000
LAB_HOST = "lab1.lab.localhost:8000"
HTML = {"Accept": "text/html"}


@dataclass
class World:
    url: str
    sessions: sessionmaker[Session]
    creds: dict[str, str]
    proxy: LabProxy

    def client(self, who: str, **headers: str) -> httpx.Client:
        """`who`: "<user>:session" (the platform session cookie), else a bearer token ("<user>:token": all
        scopes, "<user>:read": labs:read only)."""
        if who.endswith(":token") or who.endswith(":read"):
            headers["Authorization"] = f"Bearer {self.creds[who]}"
        else:
            headers["Cookie"] = f"datalabs_session={self.creds[who]}"
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=30)

    def share(self, grantee: str, mode: str, lab: str = "lab1") -> None:
        with self.sessions() as db:
            ada = Principal(user=service.get_user(db, "ada"), groups=frozenset())
            shares.share(db, ada, lab, grantee, mode)

    def unshare(self, grantee: str, lab: str = "lab1") -> None:
        with self.sessions() as db:
            ada = Principal(user=service.get_user(db, "ada"), groups=frozenset())
            shares.unshare(db, ada, lab, grantee)


@pytest.fixture
def world(lab, tmp_path, db_url) -> Iterator[World]:
    """ada's running lab1; bob (no team), cy (team astro), eve (nobody it is shared with), root (admin)."""
    settings = Settings(
        home=tmp_path / "home", db={"url": db_url}, auth={"secret_key": "k"}, server={"port": PORT}
    )
    engine, sessions = open_database(settings.database_url)
    creds: dict[str, str] = {}
    with transaction(sessions) as db:
        service.create_group(db, "astro")
        for name in ("ada", "bob", "cy", "eve", "root"):
            user = service.create_user(db, name, "long-enough-pw", role="admin" if name == "root" else "user")
            creds[f"{name}:session"] = auth.start_session(db, settings, user)
            creds[f"{name}:token"] = auth.create_token(db, settings, user, "all")[1]
            creds[f"{name}:read"] = auth.create_token(db, settings, user, "r", ["labs:read"])[1]
        service.set_member(db, "astro", "cy")
        add_datalab(db, "fake", "1")  # a lab that enforces view
        db.add(
            Lab(
                id="lab1",
                owner_id=service.get_user(db, "ada").id,
                datalab="fake",
                version="1",
                state="running",
            )
        )
    authenticator = make_authenticator(sessions)
    routes = MemoryRouteTable(
        {"lab1": Route("lab1", "ada", socket=lab.socket, headers={"Authorization": SECRET})}
    )
    proxy = LabProxy(routes, authenticator, gate=lab_origins.gate(settings, authenticator, sessions))
    server = ServerThread(proxy, proxy_headers=False).start()
    try:
        yield World(server.url, sessions, creds, proxy)
    finally:
        server.stop()
        proxy.close()
        engine.dispose()


def told(r: httpx.Response) -> tuple[str | None, str | None]:
    """(X-Datalabs-User, X-Datalabs-Share) as the lab received them."""
    headers = dict((k, v) for k, v in r.json()["headers"])
    return headers.get("x-datalabs-user"), headers.get("x-datalabs-share")


def settled(client: httpx.Client, ok, path: str = "/datalabs/lab1/echo", **headers: str) -> httpx.Response:
    """The first response for which `ok(response)` holds, asking for up to 5 s: a share change takes
    effect within the proxy's share cache (1 s), not at once."""
    deadline = time.monotonic() + 5
    while not ok(r := client.get(path, headers=headers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return r


def test_guests_reach_the_lab_in_their_mode_and_others_are_refused(world):
    with world.client("ada:token") as ada:
        assert told(ada.get("/datalabs/lab1/echo")) == ("ada", "owner")
    with world.client("bob:token") as bob:
        assert bob.get("/datalabs/lab1/echo").status_code == 404  # not shared yet: as if there were none
        world.share("bob", "view")
        forged = {"X-Datalabs-Share": "owner", "X-Datalabs-User": "ada"}
        r = settled(bob, lambda r: r.status_code == 200, **forged)
        assert r.status_code == 200 and told(r) == ("bob", "view")  # the forged headers were replaced
        world.share("bob", "collaborate")  # a mode change takes effect like a revoke: within the cache
        assert told(settled(bob, lambda r: told(r)[1] == "collaborate")) == ("bob", "collaborate")
    world.share("team:astro", "view")
    with world.client("cy:token") as cy:  # through the team
        assert told(settled(cy, lambda r: r.status_code == 200)) == ("cy", "view")
    for who in ("eve:token", "root:token", "bob:read", "eve:session"):  # a third user, an admin, a weak token
        with world.client(who) as other:
            r = other.get("/datalabs/lab1/echo")
            assert r.status_code == 404 and r.json()["error"]["code"] == "lab_not_found", (who, r.text)
    with world.client("ada:read") as owner:  # the owner with a token too narrow for a lab: told so
        r = owner.get("/datalabs/lab1/echo")
        assert r.status_code == 403 and r.json()["error"]["code"] == "lab_forbidden", r.text


def test_a_revoke_refuses_the_guests_next_request_within_2_s(world):
    world.share("bob", "collaborate")
    with world.client("bob:token") as bob:
        assert settled(bob, lambda r: r.status_code == 200).status_code == 200
        world.unshare("bob")
        revoked = time.monotonic()
        while (r := bob.get("/datalabs/lab1/echo")).status_code == 200 and time.monotonic() - revoked < 5:
            time.sleep(0.05)
        assert r.status_code == 404, r.text


def test_a_guest_enters_on_the_labs_origin_with_a_cookie_of_their_own(world):
    world.share("bob", "view")
    with world.client("bob:session", **HTML) as bob:
        r = settled(
            bob, lambda r: r.status_code != 404
        )  # the platform's origin: sent on with a one-time code
        assert r.status_code == 303, r.text
        location = httpx.URL(r.headers["location"])
        assert location.host == "lab1.lab.localhost" and location.path == "/_datalabs/login"
    with httpx.Client(base_url=world.url, headers={"Host": LAB_HOST}, trust_env=False) as browser:
        r = browser.get(f"{location.path}?{location.query.decode()}")
        assert r.status_code == 303 and r.headers["location"] == "/datalabs/lab1/echo"
        cookie = r.headers["set-cookie"].split(";")[0]
        served = browser.get("/datalabs/lab1/echo", headers={"Cookie": cookie})
        assert served.status_code == 200 and told(served) == ("bob", "view")
        world.unshare("bob")  # the cookie stays bob's: once revoked, it opens nothing
        revoked = time.monotonic()
        while browser.get("/datalabs/lab1/echo", headers={"Cookie": cookie}).status_code == 200:
            assert time.monotonic() - revoked < 5
            time.sleep(0.05)


def test_the_owners_secret_never_reaches_the_guest(world, lab):
    world.share("bob", "collaborate")
    with world.client("bob:token") as bob:
        r = settled(bob, lambda r: r.status_code == 200)
        leak = bob.get("/datalabs/lab1/leak")  # a lab that echoes its Authorization header back
    assert r.status_code == 200
    secret_value = SECRET.split()[1]
    for response in (r, leak):
        assert secret_value not in response.text
        assert all(secret_value not in v for v in response.headers.values())
    got = [h for req in lab.recorder.requests if told_raw(req) == "bob" for h in req["headers"]]
    assert ["authorization", SECRET] in got  # injected toward the lab only
    assert world.creds["bob:token"] not in str(got)  # and the guest's own token was not forwarded


def told_raw(request: dict) -> str | None:
    return dict((k, v) for k, v in request["headers"]).get("x-datalabs-user")


@pytest.mark.parametrize("served", ["asgi", "passthrough"])  # passthrough: as `datalabs serve` serves
def test_a_revoke_closes_the_guests_open_websockets_and_only_theirs(world, served):
    url = world.url
    if served == "passthrough":
        server = ServerThread(world.proxy, proxy_headers=False, ws=websocket_protocol(world.proxy)).start()
        url = server.url
    ws_url = url.replace("http://", "ws://") + "/datalabs/lab1/ws"
    world.share("bob", "view")
    with world.client("bob:token") as bob:
        settled(bob, lambda r: r.status_code == 200)
    try:
        with (
            connect(
                ws_url, additional_headers={"Authorization": f"Bearer {world.creds['ada:token']}"}
            ) as ada,
            connect(
                ws_url, additional_headers={"Authorization": f"Bearer {world.creds['bob:token']}"}
            ) as guest,
        ):
            for ws in (ada, guest):
                ws.send("hello")
                assert ws.recv(timeout=5) == "hello"
            connected = [(g.user, g.mode) for g in world.proxy.guests.connected("lab1")]
            assert connected == [("bob", "view")]  # the owner is not a guest
            world.unshare("bob")
            with pytest.raises(ConnectionClosed) as closed:
                guest.recv(timeout=5)  # closed well before: share_ttl 1 s + the 1 s check
            assert closed.value.rcvd.code == 4403 and closed.value.rcvd.reason == "share revoked"
            ada.send("still here")
            assert ada.recv(timeout=5) == "still here"
            assert world.proxy.guests.connected("lab1") == []
    finally:
        if served == "passthrough":
            server.stop()


@pytest.fixture
def xvnc(world, tmp_path) -> Iterator[tuple[str, str]]:
    """A real Xvnc (tiny screen, VNC password, RFB on a unix socket only), routed as ada's running desktop
    lab 'desk1'; yields (lab id, X display)."""
    display = f":{os.getpid() % 400 + 300}"
    password = rfb.new_password()
    (tmp_path / "pw").write_bytes(rfb.password_file(password))
    sock = str(tmp_path / "vnc.sock")
    args = ["Xvnc", display, "-rfbunixpath", sock, "-rfbport", "-1", "-nolisten", "tcp", "-nolisten", "local"]
    args += ["-SecurityTypes", "VncAuth", "-PasswordFile", str(tmp_path / "pw"), "-geometry", "64x48"]
    proc = subprocess.Popen([*args, "-depth", "24", "-AlwaysShared"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, "Xvnc did not start"
            time.sleep(0.05)
        with transaction(world.sessions) as db:
            ada = service.get_user(db, "ada").id
            add_datalab(db, "d", "1", DESKTOP_RUNTIME)
            db.add(Lab(id="desk1", owner_id=ada, datalab="d", version="1", state="running", kind="desktop"))
        route = Route("desk1", "ada", socket=sock, protocol="vnc", secret=password)
        asyncio.run(world.proxy.routes.add_route(route))
        yield "desk1", display
    finally:
        proc.terminate()
        proc.wait(10)


def pointer(display: str) -> str:
    out = subprocess.run(
        ["xdotool", "getmouselocation"],
        env={**os.environ, "DISPLAY": display},
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return " ".join(out.stdout.split()[:2])  # "x:.. y:.."


def desktop(world, who: str, lab: str) -> RfbClient:
    url = world.url.replace("http://", "ws://") + f"/datalabs/{lab}/vnc"
    return RfbClient(WebSocketTransport(url, {"Authorization": f"Bearer {world.creds[who]}"}, timeout=10))


def move(client: RfbClient, x: int, y: int) -> None:
    client.t.send(struct.pack(">BBHH", 5, 0, x, y) + struct.pack(">BBxxI", 4, 1, 0x61))  # pointer, key 'a'
    client.frame(incremental=False)  # answered after the input before it: Xvnc handles messages in order


def test_a_view_guest_sees_the_desktop_but_its_input_never_reaches_it(world, xvnc):
    lab, display = xvnc
    world.share("bob", "view", lab)
    owner = desktop(world, "ada:token", lab)
    move(owner, 10, 10)
    assert pointer(display) == "x:10 y:10"  # the owner's input arrives (so the check below can fail)
    guest = settled_desktop(world, "bob:token", lab)
    assert guest.frame().width == 64  # the viewer gets the picture
    move(guest, 30, 20)
    assert pointer(display) == "x:10 y:10"  # ... and its pointer and key never reach Xvnc
    move(owner, 12, 12)  # the owner's session was not pushed out by the guest's (shared)
    assert pointer(display) == "x:12 y:12"
    world.share("bob", "collaborate", lab)  # a mode change ends the viewer's connection
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            guest.t.ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "share changed")
    collaborator = settled_desktop(world, "bob:token", lab)
    move(collaborator, 30, 20)
    assert pointer(display) == "x:30 y:20"
    world.unshare("bob", lab)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            collaborator.t.ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "share revoked")
    owner.close()


def settled_desktop(world, who: str, lab: str) -> RfbClient:
    """The guest's desktop connection, once the share is seen (the proxy's share cache: 1 s)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return desktop(world, who, lab)
        except InvalidStatus:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
