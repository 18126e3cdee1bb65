"""A real nginx (the site deploy/render.py writes) in front of two real `datalabs serve` replicas, each
with a DATALABS_HOME of its own, on one PostgreSQL: requests spread over both, a login made through one
holds on the other, WebSocket upgrades pass, the app's own answers come back unchanged, and a replica
killed with SIGKILL is skipped without an error."""

from __future__ import annotations

import base64
import itertools
import os
import re
import signal
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from datalabs.accounts import service
from datalabs.db.engine import open_database, transaction
from tests.conftest import PASSWORD
from tests.deploy import nginx_support
from tests.live import free_port, live_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("deploy-nginx")]

_databases = itertools.count()


@dataclass
class Stack:
    url: str  # nginx, as clients reach it
    host: str  # the Host header browsers send to the platform through nginx
    replicas: list[str]
    processes: list
    prefix: Path

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Host": self.host}, timeout=30, **kw)


@contextmanager
def stack(pg_server, root: Path) -> Iterator[Stack]:
    nginx_support.require()
    name = f"deploy{os.getpid()}_{next(_databases)}"
    pg_server.execute(f"CREATE DATABASE {name} TEMPLATE dl_template")
    db_url = pg_server.url(name)
    engine, sessions = open_database(db_url)
    with transaction(sessions) as db:
        for user in ("ada", "bob"):
            service.create_user(db, user, PASSWORD, role="user", email=f"{user}@example.org")
    engine.dispose()
    port = free_port()
    env = {
        "DATALABS_DB__URL": db_url,
        "DATALABS_AUTH__SECRET_KEY": "one-key-for-every-replica-" + name,
        "DATALABS_SERVER__PUBLIC_URL": f"http://localhost:{port}",
        "DATALABS_LABS__ORIGIN_URL": f"http://{{lab}}.lab.localhost:{port}",
        "DATALABS_SERVER__FORWARDED_ALLOW_IPS": "127.0.0.1",  # nginx may say who the client is
    }
    try:
        with ExitStack() as running:
            replicas = [running.enter_context(live_process(root / f"home-{r}", env)) for r in "ab"]
            upstreams = [base.removeprefix("http://") for base, _ in replicas]
            running.enter_context(nginx_support.running_nginx(root / "nginx", upstreams, port))
            yield Stack(
                f"http://127.0.0.1:{port}", f"localhost:{port}", [b for b, _ in replicas],
                [p for _, p in replicas], root / "nginx",
            )  # fmt: skip
    finally:
        pg_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory) -> Iterator[Stack]:
    with stack(pg_server, tmp_path_factory.mktemp("deploy")) as running:
        yield running


def served(base: str, method: str, route: str, status: int) -> int:
    """Requests the replica at `base` counted for (method, route template, status) in its /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    labels = rf'(?=[^}}]*method="{method}")(?=[^}}]*route="{re.escape(route)}")(?=[^}}]*status="{status}")'
    pattern = rf"^datalabs_http_requests_total\{{{labels}[^}}]*\}} (\S+)$"
    found = re.search(pattern, text, re.M)
    return int(float(found.group(1))) if found else 0


def counts(stack: Stack, method: str, route: str, status: int) -> list[int]:
    return [served(base, method, route, status) for base in stack.replicas]


def login(client: httpx.Client, name: str = "ada") -> None:
    answer = client.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]


def test_requests_are_spread_over_both_replicas(replicas):
    before = counts(replicas, "GET", "/healthz", 200)
    with replicas.client() as client:
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
    after = counts(replicas, "GET", "/healthz", 200)
    spread = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(spread) == 20  # each request answered once, by one replica
    assert all(n > 0 for n in spread), spread


def test_a_login_through_nginx_holds_on_every_replica(replicas):
    me_before = counts(replicas, "GET", "/api/v1/me", 200)
    made_before = counts(replicas, "POST", "/api/v1/tokens", 201)
    with replicas.client() as client:
        login(client)
        for _ in range(10):
            answer = client.get("/api/v1/me")
            assert answer.status_code == 200 and answer.json()["name"] == "ada"
        # Cookie-authenticated changes: the CSRF token one replica gave out is good on the other.
        tokens = []
        for n in range(6):
            made = client.post("/api/v1/tokens", json={"name": f"t{n}"})
            assert made.status_code == 201, made.text
            tokens.append(made.json()["token"])
        refused = client.post("/api/v1/tokens", json={"name": "no-csrf"}, headers={"X-CSRF-Token": ""})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
    me = [a - b for a, b in zip(counts(replicas, "GET", "/api/v1/me", 200), me_before, strict=True)]
    made = [a - b for a, b in zip(counts(replicas, "POST", "/api/v1/tokens", 201), made_before, strict=True)]
    assert sum(me) == 10 and all(me), me
    assert sum(made) == 6 and all(made), made
    # A token made through either replica authenticates on each, asked directly.
    for base, token in itertools.product(replicas.replicas, tokens[:2]):
        answer = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["name"] == "ada"


def _raw(port: int, host: str, path: str, upgrade: bool) -> tuple[str, str]:
    """(status line, body) of one GET, as a WebSocket handshake or not."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
    if upgrade:
        head += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        head += f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall((head + "Connection: close\r\n\r\n" if not upgrade else head + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head_text, _, body = data.decode("latin-1").partition("\r\n\r\n")
    return head_text.split("\r\n", 1)[0], body


def _length(data: bytes) -> int:
    found = re.search(rb"(?im)^content-length: *(\d+)", data.split(b"\r\n\r\n", 1)[0])
    return int(found.group(1)) if found else 0


def test_websocket_upgrades_reach_the_replicas(replicas):
    """No platform WebSocket answers without a lab, so this compares handshakes: a replica refuses an
    upgrade otherwise than the same plain GET (uvicorn's 403 against the app's 404), and through nginx
    the answers are the replica's own — the Upgrade reached it."""
    port = int(replicas.url.rsplit(":", 1)[1])
    direct = int(replicas.replicas[0].rsplit(":", 1)[1])
    assert _raw(direct, replicas.host, "/no-such-socket", upgrade=True)[0] == "HTTP/1.1 403 Forbidden"
    assert _raw(direct, replicas.host, "/no-such-socket", upgrade=False)[0] == "HTTP/1.1 404 Not Found"
    assert _raw(port, replicas.host, "/no-such-socket", upgrade=True)[0] == "HTTP/1.1 403 Forbidden"
    assert _raw(port, replicas.host, "/no-such-socket", upgrade=False)[0] == "HTTP/1.1 404 Not Found"
    # A lab's kernel socket on the lab's origin, without a lab cookie: the lab proxy's refusal, as is.
    lab_host = replicas.host.replace("localhost", "ab12cd.lab.localhost")
    path = "/datalabs/ab12cd/api/kernels/k1/channels"
    through = _raw(port, lab_host, path, upgrade=True)
    assert through == _raw(direct, lab_host, path, upgrade=True)
    assert through[0].startswith("HTTP/1.1 4") and '"error"' in through[1]
    # The Host header arrives whole (port included): a lab's origin refuses another lab's path otherwise
    # than the platform's origin does, and nginx's answer is the lab origin's.
    other = "/datalabs/zz99/api/kernels/k1/channels"
    on_lab = _raw(direct, lab_host, other, upgrade=True)
    assert on_lab != _raw(direct, replicas.host, other, upgrade=True)
    assert _raw(port, lab_host, other, upgrade=True) == on_lab


def test_too_large_bodies_get_the_apps_answer(replicas):
    """Nginx's limit is above every non-streamed route's, so the app answers with its JSON error."""
    with replicas.client() as client:
        answer = client.post(
            "/api/v1/login",
            content=b"{" + b" " * (9 * 2**20) + b"}",
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"


def test_a_strangers_failed_logins_do_not_throttle_the_user(replicas):
    """Login throttling counts per client (accounts/auth.py): through nginx the client must still be the
    browser's address, not nginx's."""
    stranger = replicas.client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    owner = replicas.client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
    with stranger, owner:
        for _ in range(6):
            failed = stranger.post("/api/v1/login", json={"username": "bob", "password": "wrong-password"})
            assert failed.status_code in (401, 429)
        answer = owner.post("/api/v1/login", json={"username": "bob", "password": PASSWORD})
    assert answer.status_code == 200, answer.text


def test_a_killed_replica_is_skipped(pg_server, tmp_path):
    with stack(pg_server, tmp_path) as running:
        with running.client() as client:
            login(client)  # before the kill: a session in the shared DB
            survivor, dead = running.replicas
            running.processes[1].send_signal(signal.SIGKILL)
            running.processes[1].wait(timeout=30)
            before = served(survivor, "GET", "/healthz", 200)
            statuses = [client.get("/healthz").status_code for _ in range(20)]
            assert statuses == [200] * 20
            assert served(survivor, "GET", "/healthz", 200) - before == 20
            # The session made before the kill, and a new login (not retried by nginx: nothing was sent
            # to the dead replica, the connection was refused), both through the survivor.
            assert client.get("/api/v1/me").json()["name"] == "ada"
            login(client, "bob")
            assert client.get("/api/v1/me").json()["name"] == "bob"
        # nginx did try the dead replica, and moved on.
        dead_port = dead.rsplit(":", 1)[1]
        errors = (running.prefix / "logs" / "error.log").read_text()
        assert re.search(
            rf"Connection refused\) while connecting to upstream.*127\.0\.0\.1:{dead_port}", errors
        )
