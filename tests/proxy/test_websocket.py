"""WebSockets through the real proxy to the real lab (websockets' sync client plays the browser), both
ways the proxy can carry them: bridged message by message by the ASGI app, and piped as bytes after the
handshake by the uvicorn protocol `datalabs serve` uses. Both must behave the same."""

from __future__ import annotations

import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.proxy.conftest import ALICE, BOB, SECRET


@pytest.fixture(params=["asgi", "passthrough"])
def env(request):
    return request.getfixturevalue("env" if request.param == "asgi" else "passthrough_env")


def ws_url(env, lab: str = "lab1") -> str:
    return env.url.replace("http://", "ws://") + f"/datalabs/{lab}/ws"


def open_ws(env, headers: dict[str, str] | None = None, lab: str = "lab1", **kwargs):
    return connect(
        ws_url(env, lab),
        additional_headers=headers or {},
        origin=env.url,
        open_timeout=10,
        max_size=None,
        proxy=None,
        **kwargs,
    )


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_text_and_binary_messages_go_both_ways(env):
    with open_ws(env, ALICE) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"
        big = "z" * (2 * 2**20)
        ws.send(big)
        assert ws.recv(timeout=10) == big


def test_a_lab_on_a_host_port_carries_websockets_too(env):
    """A lab served at host:port (a Slurm node's port): the same WebSocket, bridged or piped."""
    with open_ws(env, ALICE, lab="tcplab") as ws:
        ws.send("over tcp")
        assert ws.recv(timeout=10) == "over tcp"
        ws.send(b"\x00bytes")
        assert ws.recv(timeout=10) == b"\x00bytes"


def test_subprotocol_chosen_by_the_lab_reaches_the_browser(env):
    with open_ws(env, ALICE, subprotocols=["v1.kernel.websocket.jupyter.org", "other"]) as ws:
        assert ws.subprotocol == "v1.kernel.websocket.jupyter.org"
    assert env.lab.recorder.websockets[-1]["subprotocols"] == ["v1.kernel.websocket.jupyter.org", "other"]


def test_handshake_carries_the_secret_not_the_platform_credentials(env):
    headers = {"Cookie": "datalabs_session=alice-session; _xsrf=abc", "Authorization": "Bearer alice-token"}
    with open_ws(env, headers) as ws:
        ws.send("ping")
        ws.recv(timeout=10)
    seen = dict(env.lab.recorder.websockets[-1]["headers"])
    assert seen["authorization"] == SECRET
    assert seen["cookie"] == "_xsrf=abc"
    assert seen["origin"] == env.url  # Jupyter compares Origin with Host
    assert seen["host"] == env.url.removeprefix("http://")
    assert "alice-token" not in str(seen)


def test_handshake_says_who_asks_and_drops_a_forged_identity(env):
    headers = {**ALICE, "X-Datalabs-User": "bob", "X-Datalabs-Share": "view"}
    with open_ws(env, headers) as ws:
        ws.send("ping")
        ws.recv(timeout=10)
    seen = env.lab.recorder.websockets[-1]["headers"]
    assert [v for k, v in seen if k == "x-datalabs-user"] == ["alice"]
    assert [v for k, v in seen if k == "x-datalabs-share"] == ["owner"]


def test_lab_close_code_reaches_the_browser(env):
    with open_ws(env, ALICE) as ws:
        ws.send("close:4001")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 4001
    assert ws.close_reason == "lab says bye"


def test_browser_close_code_reaches_the_lab(env):
    closes = len(env.lab.recorder.closes)
    with open_ws(env, ALICE) as ws:
        ws.send("x")
        ws.recv(timeout=10)
        ws.close(4002, "browser says bye")
    wait_for(lambda: len(env.lab.recorder.closes) > closes)
    assert env.lab.recorder.closes[-1] == 4002


@pytest.mark.parametrize(
    ("headers", "lab_id", "status"),
    [
        ({}, "lab1", 401),  # anonymous
        ({"Authorization": "Bearer forged"}, "lab1", 401),
        (BOB, "lab1", 404),  # someone else's lab: as if there were none
        (ALICE, "nosuchlab", 404),
        (ALICE, "dead", 502),  # the lab is not answering
    ],
)
def test_refused_before_accept_with_an_http_status(env, headers, lab_id, status):
    handshakes = len(env.lab.recorder.websockets)
    with pytest.raises(InvalidStatus) as refused, open_ws(env, headers, lab=lab_id):
        pass
    assert refused.value.response.status_code == status
    assert len(env.lab.recorder.websockets) == handshakes  # nothing reached the lab


def test_websocket_traffic_counts_as_activity(env):
    with open_ws(env, ALICE) as ws:
        env.activity.forget("lab1")
        time.sleep(1.05)  # past the per-connection throttle of the handshake's own record
        ws.send("tick")
        ws.recv(timeout=10)
    assert env.activity.last_seen("lab1") is not None


def test_many_sockets_at_once(env):
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_ws(env, ALICE)) for _ in range(20)]
        for i, ws in enumerate(sockets):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=10) for ws in sockets] == [f"m{i}" for i in range(20)]


def test_large_messages_both_ways_under_flow_control(env):
    """12 MiB each way (under uvicorn's 16 MiB message limit): more than the socket buffers, so both
    sides must pause and resume reading."""
    with open_ws(env, ALICE) as ws:
        for payload in (b"\x01" * (12 * 2**20), "t" * (12 * 2**20)):
            ws.send(payload)
            assert ws.recv(timeout=60) == payload


def test_a_websocket_outside_the_lab_prefix_is_answered_by_the_app(passthrough_env):
    """Not a lab path: the passthrough protocol hands the connection to uvicorn's own WebSocket protocol,
    and the app (here the proxy itself) refuses it over the regular ASGI path."""
    url = passthrough_env.url.replace("http://", "ws://") + "/elsewhere/ws"
    with pytest.raises(InvalidStatus) as refused, connect(url, additional_headers=ALICE, proxy=None):
        pass
    assert refused.value.response.status_code == 404
