"""A replica that froze (SIGSTOP, or a host that stopped answering without closing its connections) still
accepts connections in the kernel. nginx must not wait for it the hours a lab's WebSocket may stay idle: a
lab's plain request is retried on another replica after the site's lab read timeout, while a WebSocket
stays open past it. Real nginx; the replicas are stand-ins (a socket that accepts and never answers, a
small HTTP server, and a WebSocket echo)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from websockets.sync.client import connect
from websockets.sync.server import serve

from tests.deploy import nginx_support
from tests.live import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-nginx")]

READ_TIMEOUT = 1  # seconds: the site's --lab-read-timeout here


@pytest.fixture
def frozen() -> Iterator[tuple[int, list[socket.socket]]]:
    """A listening socket whose connections are accepted (by the kernel's backlog and by us) and never
    answered; yields its port and the connections it holds."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], held
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def alive() -> Iterator[int]:
    """A replica that answers every GET with 200 and an upgrade with a WebSocket echo (two ports)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"answered by the live replica"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join(5)


@pytest.fixture
def echo() -> Iterator[int]:
    def handler(connection):
        for message in connection:
            connection.send(message)

    port = free_port()
    with serve(handler, "127.0.0.1", port, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield port
        server.shutdown()
    thread.join(5)


@pytest.mark.parametrize("where", ["lab-origin", "platform-path"])
def test_a_lab_request_held_by_a_frozen_replica_is_answered_by_another(tmp_path, frozen, alive, where):
    nginx_support.require()
    port = free_port()
    replicas = [f"127.0.0.1:{frozen[0]}", f"127.0.0.1:{alive}"]
    host, path = (
        (f"ab12cd.lab.localhost:{port}", "/lab/tree")
        if where == "lab-origin"
        else (f"localhost:{port}", "/datalabs/ab12cd/lab")
    )
    with (
        nginx_support.running_nginx(
            tmp_path / "nginx", replicas, port, lab_read_timeout=f"{READ_TIMEOUT}s", fail_timeout="1s"
        ),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Host": host}, timeout=20) as client,
    ):
        answers = [client.get(path) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6
    assert {r.text for r in answers} == {"answered by the live replica"}
    assert frozen[1], "nginx never tried the frozen replica: the test proved nothing"


def test_a_lab_websocket_stays_open_past_the_lab_read_timeout(tmp_path, echo):
    nginx_support.require()
    port = free_port()
    with nginx_support.running_nginx(
        tmp_path / "nginx", [f"127.0.0.1:{echo}"], port, lab_read_timeout=f"{READ_TIMEOUT}s"
    ):
        for host, path in ((f"ab12cd.lab.localhost:{port}", "/api/kernels/k/channels"),
                           (f"localhost:{port}", "/datalabs/ab12cd/api/kernels/k/channels")):  # fmt: skip
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            with connect(f"ws://{host}{path}", sock=sock, proxy=None, compression=None) as ws:
                ws.send("before")
                assert ws.recv(timeout=10) == "before"
                time.sleep(READ_TIMEOUT * 3)  # idle for longer than a plain request may wait
                ws.send("after")
                assert ws.recv(timeout=10) == "after"
