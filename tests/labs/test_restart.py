"""`kill -9` of the platform while two labs run: after a restart both are running and reachable through
the proxy without a relaunch (state re-attached from the DB), and a lab that died meanwhile is marked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.labs.test_jupyter import admin
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = pytest.mark.slow
LABAPP = Path(__file__).parent.parent / "runtimes" / "labapp.py"
DEFINITION = """\
title: Mini web app
version: "1.0"
runtime:
  kind: web
  command: [python3, /media/notebooks/labapp.py, "{socket}"]
  secret_header: "X-Lab-Secret: {secret}"
  ready_path: "{base_url}"
"""


def serve(home: Path, port: int, catalogue: Path) -> subprocess.Popen:
    env = {**os.environ, "DATALABS_HOME": str(home), "DATALABS_CATALOGUE__DIRS": f'["{catalogue}"]'}
    log = (home / f"server-{time.monotonic_ns()}.log").open("w")
    proc = subprocess.Popen(
        [DATALABS, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_healthy(f"http://127.0.0.1:{port}", proc, home)
    return proc


def test_labs_survive_a_platform_kill(tmp_path):
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "mini").mkdir(parents=True)
    (catalogue / "mini" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, catalogue / "mini" / "labapp.py")
    home.mkdir()
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    server = serve(home, port, catalogue)
    labs = []
    try:
        for _ in range(2):
            r = ada.post("/api/v1/labs", json={"datalab": "mini"})
            assert r.status_code == 202, r.text
            labs.append(r.json()["id"])
        for lab_id in labs:
            for _ in range(200):
                if ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "running":
                    break
                time.sleep(0.05)
            assert ada.get(f"/datalabs/{lab_id}/").json()["ok"] is True
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = serve(home, port, catalogue)
        for lab_id in labs:
            assert ada.get(f"/api/v1/labs/{lab_id}").json()["state"] == "running"
            assert ada.get(f"/datalabs/{lab_id}/").json()["ok"] is True  # no relaunch needed
    finally:
        for lab_id in labs:
            ada.post(f"/api/v1/labs/{lab_id}/stop", json={})
        server.terminate()
        server.wait(15)
