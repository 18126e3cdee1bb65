"""End to end with real parts: `datalabs serve`, LocalRuntime (bubblewrap), real JupyterLab behind our
proxy. A user launches JupyterLab through the API, runs `1+1` in a kernel over the proxied WebSocket,
and a file the kernel writes appears in their workspace on disk; nobody else gets in."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.live import DATALABS, live_server

pytestmark = pytest.mark.slow


def admin(home, *args) -> str:
    out = subprocess.run(
        [DATALABS, "admin", *args],
        env={"DATALABS_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter-home")
    for user in ("ada", "bob"):
        admin(home, "create-user", user, "--password", "long-enough-pw")
    tokens = {user: admin(home, "create-token", user) for user in ("ada", "bob")}
    with live_server(home) as url:
        yield home, url, tokens


def jupyter_token(home, lab_id: str) -> str:
    with sqlite3.connect(home / "datalabs.db") as db:
        (state,) = db.execute("SELECT runtime_state FROM labs WHERE id = ?", (lab_id,)).fetchone()
    return json.loads(state)["headers"]["Authorization"].removeprefix("token ")


def wait_running(client: httpx.Client, lab_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in ("running", "failed"):
            return lab
        time.sleep(0.1)
    raise AssertionError("lab did not start in 120 s")


def execute(ws, code: str) -> str:
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "ada",
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=60))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_result":
            return msg["content"]["data"]["text/plain"]
        if msg["msg_type"] == "error":
            raise AssertionError(msg["content"])
    raise AssertionError("no execute_result")


def test_jupyterlab_end_to_end(platform):
    home, url, tokens = platform
    ada = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ada']}"}, timeout=60)
    bob = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=60)
    anonymous = httpx.Client(base_url=url, timeout=60)
    lab = ada.post("/api/v1/labs", json={"datalab": "jupyterlab"})
    assert lab.status_code == 202, lab.text
    lab = wait_running(ada, lab.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    base = lab["path"]  # on the platform's address, with the bearer token

    status = ada.get(f"{base}api/status")
    assert status.status_code == 200 and "started" in status.json()
    lab_page = ada.get(f"{base}lab")
    assert lab_page.status_code == 200 and "JupyterLab" in lab_page.text

    # nobody else gets in, and the lab's own token never reaches a browser
    assert bob.get(f"{base}api/status").status_code == 404
    assert anonymous.get(f"{base}api/status").status_code == 401
    seen = [lab_page, status]

    kernel = ada.post(f"{base}api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    seen.append(kernel)
    ws_url = url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels?session_id=t"
    for who, status in (("bob", 404), (None, 401)):
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers=headers, open_timeout=30).close()
        assert refused.value.response.status_code == status
    with connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {tokens['ada']}"},
        open_timeout=30,
        max_size=None,
    ) as ws:
        assert execute(ws, "1+1") == "2"
        assert execute(ws, "open('/media/home/my_workspace/from-kernel.txt','w').write('hi'); 42") == "42"
        # The lab's own home (issue 15): dot-folders and JupyterLab's layout are not in the owner's files.
        where = "import os, pwd; os.environ['HOME'] + ' ' + pwd.getpwuid(os.getuid()).pw_dir"
        lab_home = "/media/home/my_workspace/.datalabs/homes/jupyterlab"
        assert execute(ws, where) == repr(f"{lab_home} {lab_home}")
        assert (
            execute(ws, "os.environ['JUPYTERLAB_WORKSPACES_DIR']") == "'/run/datalab/jupyterlab-workspaces'"
        )
        assert execute(ws, "os.environ['DATALABS_LAB_OWNER']") == "'ada'"  # whom jupyter_identity serves
    workspace = home / "workspaces" / "users" / "ada"
    assert (workspace / "from-kernel.txt").read_text() == "hi"
    made_there = {p.name for p in (workspace / ".datalabs" / "homes" / "jupyterlab").iterdir()}
    assert {".jupyter", ".local"} & made_there, made_there  # JupyterLab's own settings and data went there
    listed = [item["name"] for item in ada.get("/api/v1/workspaces/me/files/").json()["items"]]
    assert listed and not [name for name in listed if name.startswith(".")], listed
    secret = jupyter_token(home, lab["id"])
    assert len(secret) > 20
    for response in seen:
        assert secret not in response.text and secret not in json.dumps(dict(response.headers))

    assert ada.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()["state"] == "stopped"
    assert ada.get(f"{base}api/status").status_code in (404, 502, 503)

    # Restarted (issue 15, Build 6): the same lab, at the same address, with its files, a new secret.
    restarted = ada.post(f"/api/v1/labs/{lab['id']}/restart", json={})
    assert restarted.status_code == 202, restarted.text
    again = wait_running(ada, lab["id"])
    assert again["state"] == "running" and again["path"] == base, again["reason"]
    assert ada.get(f"{base}api/status").status_code == 200
    kept = ada.get(f"{base}api/contents/home/my_workspace/from-kernel.txt", params={"content": 1})
    assert kept.status_code == 200 and kept.json()["content"] == "hi"
    assert jupyter_token(home, lab["id"]) != secret
    assert ada.post(f"/api/v1/labs/{lab['id']}/stop", json={}).json()["state"] == "stopped"
