"""`kill -9` of the server during a 1 GiB upload: after a restart the final name holds what it held
before (here: the previous version), never a partial file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.labs.test_jupyter import admin
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = pytest.mark.slow
GIB = 1 << 30


def serve(home, port) -> subprocess.Popen:
    log = (home / f"server-{time.monotonic_ns()}.log").open("w")
    proc = subprocess.Popen(
        [DATALABS, "serve", "--port", str(port)],
        env={**os.environ, "DATALABS_HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc, home)
    return proc


def test_kill_during_a_large_upload_leaves_no_partial_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/workspaces/me/files/big/cube.bin"
    headers = {"Authorization": f"Bearer {token}"}
    server = serve(home, port)
    try:
        assert httpx.put(url, content=b"version 1", headers=headers).status_code == 201
        folder = home / "workspaces" / "users" / "ada" / "big"

        def gigabyte():
            chunk = b"\x42" * (1 << 20)
            for _ in range(GIB // len(chunk)):
                yield chunk

        def send():
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.put(
                    url, content=gigabyte(), headers={**headers, "Content-Length": str(GIB)}, timeout=120
                )

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # mid-flight: a temporary file has data, the upload is not done
            temps = [p for p in folder.iterdir() if p.name.startswith(".datalabs-upload-")]
            if temps and temps[0].stat().st_size > 64 << 20:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the upload never got going")
        server.send_signal(signal.SIGKILL)
        server.wait()
        sender.join(30)
        assert (folder / "cube.bin").read_bytes() == b"version 1"
        server = serve(home, port)
        listing = httpx.get(url.rsplit("/", 1)[0] + "/", headers=headers).json()
        assert [i["name"] for i in listing["items"]] == ["cube.bin"]  # the leftover temp is hidden
        assert httpx.get(url, headers=headers).content == b"version 1"
    finally:
        server.terminate()
        server.wait(15)
