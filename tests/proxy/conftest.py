"""Fixtures: a real lab (uvicorn on a unix socket, and one on TCP) behind a real LabProxy (uvicorn on TCP).

Authentication is a small real authenticator mapping test credentials to fake principals (anything with
`.user.name` is a principal to the proxy); tests/proxy/test_auth.py covers the platform's own one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from datalabs.proxy import ActivityRecorder, LabProxy, MemoryRouteTable, Route
from datalabs.proxy.auth import credential
from datalabs.proxy.passthrough import websocket_protocol
from tests.proxy.lab_app import LabRecorder, counting_protocol, make_lab
from tests.proxy.servers import ServerThread

SECRET = "token s3cr3t-jupyter-token-0123456789abcdef"
TOKENS = {"alice-token": "alice", "bob-token": "bob", "root-token": "root"}
SESSIONS = {"alice-session": "alice"}
ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


@dataclass(frozen=True)
class FakeUser:
    name: str


@dataclass(frozen=True)
class FakePrincipal:
    user: FakeUser


async def fake_authenticate(scope: dict) -> FakePrincipal | None:
    found = credential(scope)
    if found is None:
        return None
    kind, secret = found
    name = (TOKENS if kind == "token" else SESSIONS).get(secret)
    return FakePrincipal(FakeUser(name)) if name else None


@dataclass
class Lab:
    recorder: LabRecorder
    socket: str
    tcp: str  # host:port of the same lab app served over TCP


@dataclass
class ProxyEnv:
    url: str
    proxy: LabProxy
    routes: MemoryRouteTable
    activity: ActivityRecorder
    lab: Lab

    def client(self, headers: dict[str, str] | None = None, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=30, **kwargs)

    def add_route(self, route: Route) -> None:
        asyncio.run(self.routes.add_route(route))


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[Lab]:
    recorder = LabRecorder()
    path = str(tmp_path_factory.mktemp("lab") / "lab.sock")
    on_socket = ServerThread(make_lab(recorder), uds=path, http=counting_protocol(recorder)).start()
    on_tcp = ServerThread(make_lab(recorder)).start()
    yield Lab(recorder, path, f"127.0.0.1:{on_tcp.port}")
    on_socket.stop()
    on_tcp.stop()


def dead_socket(path: Path) -> str:
    """A socket file nobody listens on (a lab that crashed): connecting is refused."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return str(path)


def proxy_env(lab: Lab, tmp: Path, **server_config) -> Iterator[ProxyEnv]:
    routes = MemoryRouteTable(
        {
            "lab1": Route("lab1", "alice", socket=lab.socket, headers={"Authorization": SECRET}),
            "lab2": Route("lab2", "bob", socket=lab.socket, headers={"Authorization": SECRET}),
            "tcplab": Route("tcplab", "alice", host_port=lab.tcp, headers={"Authorization": SECRET}),
            "dead": Route("dead", "alice", socket=dead_socket(tmp / "dead.sock")),
            "gone": Route("gone", "alice", socket=str(tmp / "missing.sock")),
        }
    )
    activity = ActivityRecorder()
    proxy = LabProxy(routes, fake_authenticate, on_activity=activity)
    # proxy_headers off: uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, and the tests play an
    # untrusted browser on 127.0.0.1.
    config = {key: value(proxy) if callable(value) else value for key, value in server_config.items()}
    server = ServerThread(proxy, proxy_headers=False, **config).start()
    yield ProxyEnv(server.url, proxy, routes, activity, lab)
    server.stop()


@pytest.fixture(scope="session")
def env(lab, tmp_path_factory) -> Iterator[ProxyEnv]:
    """The proxy as an ASGI app under uvicorn; WebSockets bridged message by message (websocket.py)."""
    yield from proxy_env(lab, tmp_path_factory.mktemp("proxy"))


@pytest.fixture(scope="session")
def passthrough_env(lab, tmp_path_factory) -> Iterator[ProxyEnv]:
    """The same, served as `datalabs serve` serves it: lab WebSockets piped as bytes (passthrough.py)."""
    yield from proxy_env(lab, tmp_path_factory.mktemp("proxy-pt"), ws=websocket_protocol)


JUPYTER_LAB = shutil.which("jupyter-lab", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory, env) -> Iterator[str]:
    """JupyterLab serving /datalabs/jl1/ on a unix socket, routed for alice; yields its token."""
    home = tmp_path_factory.mktemp("jl")
    sock, token = str(home / "jl.sock"), secrets.token_hex(24)
    jupyter_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    args = [
        str(JUPYTER_LAB),
        "--no-browser",
        "--allow-root",  # CI runs as root; the platform runs real labs sandboxed as another user
        f"--ServerApp.sock={sock}",
        "--ServerApp.base_url=/datalabs/jl1/",
        f"--ServerApp.root_dir={home}",
        f"--IdentityProvider.token={token}",
    ]
    log = (home / "jupyter.log").open("w")
    proc = subprocess.Popen(args, env=jupyter_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            assert proc.poll() is None, (home / "jupyter.log").read_text()
            assert time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.05)
        env.add_route(Route("jl1", "alice", socket=sock, headers={"Authorization": f"token {token}"}))
        yield token
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_ready(client: httpx.Client) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        r = client.get("/datalabs/jl1/api/status")
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)
