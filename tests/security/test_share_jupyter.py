"""Hostile tests for a shared JupyterLab (issue 19): the lab itself refuses a forged identity and a
viewer's writes, execution and terminals, even if the proxy let them through. A real jupyter_server
from the platform's environment, on a unix socket, with datalabs.labs.jupyter_identity loaded."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TOKEN = "lab-secret-token"
BASE = "http://lab/lab/"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("labroot")
    (root / "nb.txt").write_text("hello")
    sock = Path(tmp_path_factory.mktemp("run")) / "lab.sock"
    env = {
        **os.environ,
        "JUPYTER_TOKEN": TOKEN,
        "DATALABS_LAB_OWNER": "alice",
        "JUPYTER_CONFIG_DIR": str(root / ".cfg"),
        "JUPYTER_RUNTIME_DIR": str(root / ".rt"),
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-server"),
            "--no-browser",
            f"--ServerApp.sock={sock}",
            "--ServerApp.base_url=/lab/",
            "--ServerApp.allow_remote_access=True",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.identity_provider_class=datalabs.labs.jupyter_identity.DatalabsIdentityProvider",
            "--ServerApp.authorizer_class=datalabs.labs.jupyter_identity.DatalabsAuthorizer",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url=BASE)
    try:
        for _ in range(300):
            if sock.exists():
                try:
                    client.get("api/status")
                    break
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        else:
            pytest.fail("jupyter-server did not start")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def _h(user=None, share=None, token=True):
    h = {}
    if token:
        h["Authorization"] = f"token {TOKEN}"
    if user:
        h["X-Datalabs-User"] = user
    if share:
        h["X-Datalabs-Share"] = share
    return h


def test_owner_and_guest_identity(lab):
    me = lab.get("api/me", headers=_h()).raise_for_status().json()["identity"]
    assert me["username"] == "alice"
    me = lab.get("api/me", headers=_h("bob", "collaborate")).json()["identity"]
    assert (me["username"], me["display_name"]) == ("bob", "bob") and me["color"].startswith("#")


def test_forged_user_without_token_refused(lab):
    for path in ("api/me", "api/contents/nb.txt"):
        r = lab.get(path, headers=_h("alice", "owner", token=False))
        assert r.status_code == 403
    r = lab.get(
        "api/contents/nb.txt", headers={**_h("bob", "owner", token=False), "Authorization": "token wrong"}
    )
    assert r.status_code == 403


def test_viewer_reads_but_cannot_write_execute_or_open_terminals(lab):
    v = _h("bob", "view")
    assert lab.get("api/contents/nb.txt", headers=v).json()["content"] == "hello"
    assert lab.get("api/sessions", headers=v).status_code == 200
    body = {"type": "file", "format": "text", "content": "changed"}
    assert lab.put("api/contents/nb.txt", headers=v, json=body).status_code == 403
    assert lab.post("api/contents", headers=v, json={"type": "file"}).status_code == 403
    assert lab.delete("api/contents/nb.txt", headers=v).status_code == 403
    assert lab.post("api/kernels", headers=v, json={}).status_code == 403
    assert lab.post("api/terminals", headers=v).status_code == 403
    assert lab.get("api/terminals", headers=v).status_code == 403
    # unknown mode counts as view
    assert lab.put("api/contents/nb.txt", headers=_h("bob", "admin"), json=body).status_code == 403
    assert lab.get("api/contents/nb.txt", headers=_h()).json()["content"] == "hello"
    # a collaborator writes
    assert lab.put("api/contents/nb.txt", headers=_h("bob", "collaborate"), json=body).status_code == 200
    assert lab.get("api/contents/nb.txt", headers=v).json()["content"] == "changed"
