"""Desktop labs through the real proxy: the noVNC page and files served by the proxy itself, and the
WebSocket bridged to the lab's RFB unix socket (a small fake RFB server here: the bytes, not the pixels)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from datalabs.proxy import Route
from datalabs.proxy.novnc import NOVNC_DIR
from tests.proxy.conftest import ALICE, BOB

GREETING = b"RFB 003.008\n"


@pytest.fixture(scope="module")
def desk(env, tmp_path_factory) -> Iterator[str]:
    """A fake RFB server (greets, then echoes) on a unix socket, routed as alice's desktop lab 'desk1'."""
    path = str(tmp_path_factory.mktemp("desk") / "vnc.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.sendall(GREETING)
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    env.add_route(Route("desk1", "alice", socket=path, protocol="vnc"))
    yield "desk1"
    server.close()


@pytest.fixture(scope="module")
def tcp_desk(env) -> Iterator[str]:
    """The same fake RFB server on a loopback port, routed by host_port (a desktop on a Slurm node's port)."""
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(GREETING)
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=accept, daemon=True).start()
    host_port = f"127.0.0.1:{server.getsockname()[1]}"
    env.add_route(Route("tcpdesk", "alice", host_port=host_port, protocol="vnc"))
    yield "tcpdesk"
    server.close()


def vnc(env, headers, lab="desk1"):
    url = env.url.replace("http://", "ws://") + f"/datalabs/{lab}/vnc"
    return connect(url, additional_headers=headers, subprotocols=["binary"], open_timeout=10, proxy=None)


def test_rfb_bytes_go_both_ways_through_the_bridge(env, desk):
    with vnc(env, ALICE) as ws:
        assert ws.subprotocol == "binary"
        assert ws.recv(timeout=10) == GREETING
        big = bytes(range(256)) * 4096  # 1 MiB: arrives whole, in however many messages
        ws.send(big)
        got = b""
        while len(got) < len(big):
            got += ws.recv(timeout=10)
        assert got == big


def test_a_desktop_on_a_host_port_is_bridged_too(env, tcp_desk):
    with vnc(env, ALICE, lab=tcp_desk) as ws:
        assert ws.recv(timeout=10) == GREETING
        ws.send(b"key event")
        assert ws.recv(timeout=10) == b"key event"


def test_desktop_traffic_counts_as_activity(env, desk):
    env.activity.forget(desk)
    with vnc(env, ALICE) as ws:
        ws.recv(timeout=10)
    assert env.activity.idle_for(desk) is not None


@pytest.mark.parametrize("headers,status", [({}, 401), (BOB, 404)])
def test_other_users_cannot_open_the_desktop(env, desk, headers, status):
    with pytest.raises(InvalidStatus) as refused, vnc(env, headers):
        pass
    assert refused.value.response.status_code == status


def test_the_page_and_novnc_come_from_the_proxy(env, desk):
    with env.client(ALICE) as c:
        page = c.get(f"/datalabs/{desk}/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (
            'src="desktop.js"' in page.text
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        glue = c.get(f"/datalabs/{desk}/desktop.js")
        assert glue.status_code == 200 and glue.headers["content-type"].startswith("text/javascript")
        assert "./novnc/core/rfb.js" in glue.text and "resizeSession = true" in glue.text
        assert c.get(f"/datalabs/{desk}").status_code == 307
        assert c.get(f"/datalabs/{desk}/novnc/../../../etc/passwd").status_code == 404
        assert c.get(f"/datalabs/{desk}/novnc/%2e%2e/%2e%2e/etc/passwd").status_code == 404
        assert c.get(f"/datalabs/{desk}/anything-else").status_code == 404
        assert c.post(f"/datalabs/{desk}/", content=b"x").status_code == 405
        if NOVNC_DIR.is_dir():
            rfb = c.get(f"/datalabs/{desk}/novnc/core/rfb.js")
            assert rfb.status_code == 200 and rfb.headers["content-type"].startswith("text/javascript")
    with env.client(BOB) as c:
        assert c.get(f"/datalabs/{desk}/").status_code == 404
        assert c.get(f"/datalabs/{desk}/novnc/core/rfb.js").status_code == 404
    with env.client() as c:
        assert c.get(f"/datalabs/{desk}/desktop.js").status_code == 401


def test_route_protocol_is_checked():
    with pytest.raises(ValueError, match="protocol"):
        Route("x", "alice", socket="/tmp/x.sock", protocol="rdp")
