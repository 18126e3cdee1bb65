"""Finding 8 of issue 13: `kill -9` of the server during an upload used to leave the temporary file in the
user's workspace, hidden, counted against the quota and impossible to delete (a reserved name).

Against real `datalabs serve` processes: after the kill and a restart the temporary is gone, the
workspace's usage is what it was, the same name can be uploaded again and files deleted; and a
temporary of an upload still in flight in another live process on the same home is left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.labs.test_jupyter import admin
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = pytest.mark.slow
TEMP = ".datalabs-upload-"
MIB = 1 << 20


def serve(home: Path, port: int) -> subprocess.Popen:
    log = (home / f"server-{time.monotonic_ns()}.log").open("w")
    proc = subprocess.Popen(
        [DATALABS, "serve", "--port", str(port)],
        env={**os.environ, "DATALABS_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc, home)
    return proc


def slow_upload(url: str, headers: dict, release: threading.Event) -> threading.Thread:
    """PUT 64 MiB: 8 MiB at once, then nothing until `release`, then the rest."""

    def body():
        for i in range(64):
            if i == 8:
                release.wait(120)
            yield b"\x42" * MIB

    def send():
        with contextlib.suppress(httpx.HTTPError):  # the server may die under it
            r = httpx.put(
                url, content=body(), headers={**headers, "Content-Length": str(64 * MIB)}, timeout=180
            )
            send.status = r.status_code

    send.status = None
    thread = threading.Thread(target=send, daemon=True)
    thread.send = send
    thread.start()
    return thread


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TEMP)] if folder.is_dir() else []


def wait_for_temporary(folder: Path, at_least: int = 4 * MIB) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        temps = [p for p in temporaries(folder) if p.stat().st_size >= at_least]
        if temps:
            return temps[0]
        time.sleep(0.02)
    pytest.fail("the upload never got going")


def setup_user(home: Path) -> dict:
    home.mkdir()
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    return {"Authorization": f"Bearer {admin(home, 'create-token', 'ada')}"}


def test_a_killed_upload_leaves_nothing_that_counts_or_blocks(tmp_path):
    home = tmp_path / "home"
    headers = setup_user(home)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1/workspaces/me"
    folder = home / "workspaces" / "users" / "ada" / "data"
    server = serve(home, port)
    release = threading.Event()
    try:
        assert httpx.put(f"{api}/files/data/keep.txt", content=b"kept", headers=headers).status_code == 201
        used_before = httpx.get(api, headers=headers).json()["used"]
        sender = slow_upload(f"{api}/files/data/cube.bin", headers, release)
        temp = wait_for_temporary(folder)
        server.send_signal(signal.SIGKILL)
        server.wait()
        release.set()
        sender.join(30)
        assert temp.exists()  # what the kill leaves behind
        server = serve(home, port)
        assert temporaries(folder) == []
        assert list((home / "inflight").iterdir()) == []
        listing = httpx.get(f"{api}/files/data/", headers=headers).json()
        assert [i["name"] for i in listing["items"]] == ["keep.txt"]
        assert httpx.get(api, headers=headers).json()["used"] == used_before
        again = httpx.put(f"{api}/files/data/cube.bin", content=b"x" * MIB, headers=headers)
        assert again.status_code == 201, again.text
        assert httpx.delete(f"{api}/files/data/cube.bin", headers=headers).status_code == 204
        assert httpx.delete(f"{api}/files/data/keep.txt", headers=headers).status_code == 204
        assert httpx.get(api, headers=headers).json()["used"] == 0
    finally:
        release.set()
        server.terminate()
        server.wait(15)


def test_recovery_leaves_an_upload_in_flight_in_another_process_alone(tmp_path):
    home = tmp_path / "home"
    headers = setup_user(home)
    ports = free_port(), free_port()
    api = [f"http://127.0.0.1:{p}/api/v1/workspaces/me" for p in ports]
    root = home / "workspaces" / "users" / "ada"
    servers = [serve(home, ports[0])]
    live_release, dead_release = threading.Event(), threading.Event()
    try:
        live = slow_upload(f"{api[0]}/files/live/cube.bin", headers, live_release)
        live_temp = wait_for_temporary(root / "live")
        servers.append(serve(home, ports[1]))
        dead = slow_upload(f"{api[1]}/files/dead/cube.bin", headers, dead_release)
        dead_temp = wait_for_temporary(root / "dead")
        servers[1].send_signal(signal.SIGKILL)
        servers[1].wait()
        dead_release.set()
        dead.join(30)
        servers[1] = serve(home, ports[1])  # its start-up recovery runs while the other upload is in flight
        assert not dead_temp.exists()
        assert live_temp.exists()
        listing = httpx.get(f"{api[1]}/files/live/", headers=headers).json()
        assert listing["items"] == []  # in flight elsewhere: hidden, not a file of the user's yet
        assert live_temp.exists()
        live_release.set()
        live.join(60)
        assert live.send.status == 201
        assert (root / "live" / "cube.bin").stat().st_size == 64 * MIB and temporaries(root / "live") == []
    finally:
        live_release.set()
        dead_release.set()
        for server in servers:
            server.terminate()
            server.wait(15)
