"""Desktop labs and the idle culler end to end: `datalabs serve` with a tiny idle timeout, a DS9 desktop lab
on the real LocalRuntime, and an RFB client on the proxy's VNC WebSocket (as noVNC). Traffic on the VNC
connection is activity, as any proxied request is for web labs: a desktop in use stays past the timeout;
once nobody is connected, the culler stops it and its processes (Xvnc among them) are gone. A lab whose
app the user closed is recorded as stopped, not failed."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from datalabs.runtimes import desktop
from tests.desktop_support import RfbClient, WebSocketTransport, wait_for_window, xvnc_pids
from tests.labs.test_desktop_browser import runtime_dir
from tests.labs.test_jupyter import admin, wait_running
from tests.live import live_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(desktop.missing_tools(["ds9"])), reason="Xvnc / matchbox / xdotool / ds9 not installed"
    ),
]
IDLE_TIMEOUT = 4  # seconds
CULL_INTERVAL = 1


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("culling-home")
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    env = {
        "DATALABS_LABS__IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "DATALABS_LABS__CULL_INTERVAL": str(CULL_INTERVAL),
    }
    with live_server(home, env) as url:
        yield home, url, token


def test_an_unused_desktop_lab_is_culled_and_a_used_one_is_not(platform):
    assert shutil.which("ds9")
    home, url, token = platform
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    created = ada.post("/api/v1/labs", json={"datalab": "ds9"})
    assert created.status_code == 202, created.text
    lab = wait_running(ada, created.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    rt = runtime_dir(home, lab["id"])
    (xvnc,) = xvnc_pids(rt)
    try:
        # In use: a VNC client moving the pointer now and then, for three idle timeouts.
        ws_url = url.replace("http://", "ws://") + f"/datalabs/{lab['id']}/vnc"
        client = RfbClient(WebSocketTransport(ws_url, headers={"Authorization": f"Bearer {token}"}))
        try:
            assert client.frame().colours() > 1
            for step in range(3 * IDLE_TIMEOUT):
                client.t.send(struct.pack(">BBHH", 5, 0, 100 + 10 * step, 100))  # PointerEvent, no button
                time.sleep(1)
                assert ada.get(f"/api/v1/labs/{lab['id']}").json()["state"] == "running", (
                    "culled while in use"
                )
        finally:
            client.close()

        # Nobody connected: stopped by the culler within the timeout and a few cull rounds.
        deadline = time.monotonic() + IDLE_TIMEOUT + 10 * CULL_INTERVAL + 15  # + the lab's stop grace period
        while (now := ada.get(f"/api/v1/labs/{lab['id']}").json())["state"] != "stopped":
            assert time.monotonic() < deadline, f"not culled: {now['state']} {now.get('reason')}"
            time.sleep(0.5)
        assert now["reason"] == f"stopped after {IDLE_TIMEOUT} seconds without activity"
        assert xvnc_pids(rt) == [] and not _alive(xvnc), "the desktop's X server outlived the lab"
    finally:
        if ada.get(f"/api/v1/labs/{lab['id']}").json()["state"] != "stopped":
            ada.delete(f"/api/v1/labs/{lab['id']}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_closing_the_app_stops_the_lab_without_calling_it_a_failure(platform):
    home, url, token = platform
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    created = ada.post("/api/v1/labs", json={"datalab": "ds9"})
    assert created.status_code == 202, created.text
    lab = wait_running(ada, created.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    rt = runtime_dir(home, lab["id"])
    ws_url = url.replace("http://", "ws://") + f"/datalabs/{lab['id']}/vnc"
    client = RfbClient(WebSocketTransport(ws_url, headers={"Authorization": f"Bearer {token}"}))
    try:
        (window,) = wait_for_window(rt, "SAOImage ds9")
        subprocess.run(desktop.x_command(rt, ["xdotool", "windowclose", window]), check=True, timeout=30)
        deadline = time.monotonic() + 30
        while (now := ada.get(f"/api/v1/labs/{lab['id']}").json())["state"] in ("running", "stopping"):
            assert time.monotonic() < deadline, "the lab outlived its app"
            with contextlib.suppress(ConnectionClosed):  # the desktop may close it before the state changes
                client.t.send(struct.pack(">BBHH", 5, 0, 200, 200))  # in use: the idle culler has no say
            time.sleep(0.5)
        assert (now["state"], now["reason"]) == (
            "stopped",
            "the lab ended by itself (its app or session was closed)",
        )
    finally:
        client.close()
        if ada.get(f"/api/v1/labs/{lab['id']}").json()["state"] not in ("stopped", "failed"):
            ada.delete(f"/api/v1/labs/{lab['id']}")
