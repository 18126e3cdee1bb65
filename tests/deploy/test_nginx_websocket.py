"""WebSocket frames through the nginx site, both ways, on the platform's host and on a lab's origin:
nginx in front of a WebSocket echo server standing in for a replica (no platform WebSocket answers
without a running lab; test_replicas_behind_nginx.py checks the upgrade reaches real replicas)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import serve

from tests.deploy import nginx_support
from tests.live import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-nginx")]


@pytest.fixture
def echo() -> Iterator[tuple[int, list[dict]]]:
    """An echo server on loopback; yields its port and the handshakes it saw (path and headers)."""
    seen: list[dict] = []

    def handler(connection):
        request = connection.request
        seen.append({"path": request.path, **{k.lower(): v for k, v in request.headers.raw_items()}})
        for message in connection:
            connection.send(message)

    def only_under_datalabs(connection, request):
        if not request.path.startswith("/datalabs/"):
            return connection.respond(404, "no such socket\n")
        return None

    port = free_port()
    with serve(
        handler, "127.0.0.1", port, process_request=only_under_datalabs, compression=None, max_size=None
    ) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield port, seen
        server.shutdown()
    thread.join(10)


@pytest.fixture
def nginx(tmp_path, echo) -> Iterator[int]:
    nginx_support.require()
    port = free_port()
    with nginx_support.running_nginx(tmp_path / "nginx", [f"127.0.0.1:{echo[0]}"], port):
        yield port


def _open(port: int, host: str, path: str):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return connect(f"ws://{host}{path}", sock=sock, max_size=None, compression=None, proxy=None)


@pytest.mark.parametrize("lab_origin", [False, True], ids=["platform-host", "lab-origin"])
def test_frames_pass_both_ways(nginx, echo, lab_origin):
    host = f"ab12cd.lab.localhost:{nginx}" if lab_origin else f"localhost:{nginx}"
    path = "/datalabs/ab12cd/api/kernels/k1/channels?session_id=s1"
    big = os.urandom(3 * 2**20)
    with _open(nginx, host, path) as ws:
        ws.send('{"code": "1+1"}')
        assert ws.recv(timeout=30) == '{"code": "1+1"}'
        ws.send(big)
        assert ws.recv(timeout=30) == big
        for n in range(200):
            ws.send(f"message {n}")
        assert [ws.recv(timeout=30) for _ in range(200)] == [f"message {n}" for n in range(200)]
    (handshake,) = echo[1]
    # What the replica saw: the path and the browser's Host unchanged, an upgrade, nginx's forwarding.
    assert handshake["path"] == path
    assert handshake["host"] == host
    assert handshake["upgrade"].lower() == "websocket" and handshake["connection"].lower() == "upgrade"
    assert handshake["x-forwarded-for"] == "127.0.0.1"


def test_forged_forwarding_headers_are_replaced(nginx, echo):
    sock = socket.create_connection(("127.0.0.1", nginx), timeout=30)
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with connect(
        f"ws://localhost:{nginx}/datalabs/x/", sock=sock, additional_headers=headers, proxy=None
    ) as ws:
        ws.send("hello")
        assert ws.recv(timeout=30) == "hello"
    (handshake,) = echo[1]
    assert handshake["x-forwarded-for"] == "127.0.0.1" and handshake["x-forwarded-proto"] == "http"


def test_a_refused_upgrade_is_passed_back(nginx, echo):
    with pytest.raises(InvalidStatus) as refused:
        _open(nginx, f"localhost:{nginx}", "/elsewhere")
    assert refused.value.response.status_code == 404
    assert echo[1] == []
