"""A real `datalabs serve` process on a free port, for tests that need a server over the network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

DATALABS = str(Path(sys.executable).parent / "datalabs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, home: Path, timeout: float = 60) -> None:
    """Wait until the server at `base` answers /healthz; fail with its log if it exits or hangs."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            logs = "\n".join(p.read_text() for p in sorted(home.glob("server*.log")))
            pytest.fail(f"server exited with {proc.returncode}: {logs}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server did not become healthy in {timeout:.0f} s")
        time.sleep(0.1)


@contextmanager
def live_server(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the platform on `home`, wait until /healthz answers, yield its base URL, stop it."""
    with live_process(home, env) as (base, _):
        yield base


@contextmanager
def live_process(home: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """As `live_server`, also yielding the server process (e.g. to watch its memory in /proc)."""
    port = free_port()
    full_env = {**os.environ, "DATALABS_HOME": str(home), **(env or {})}
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [DATALABS, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, home)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def destroy_labs(base: str, admin: str, password: str) -> None:
    """Labs outlive the platform by design (re-attached at its next start): end every lab a test made,
    as the administrator `admin`, so none goes on running after the test."""
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.post("/api/v1/login", json={"username": admin, "password": password})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]  # cookie-authenticated changes
        for lab in client.get("/api/v1/labs", params={"active": True, "all": True}).json():
            client.delete(f"/api/v1/labs/{lab['id']}")
