"""A real JupyterLab on a unix socket behind the real proxy: pages, REST API with the injected token, and a
kernel WebSocket that executes code (Jupyter's Origin/Host check and XSRF rules included)."""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.proxy.conftest import ALICE, BOB, wait_ready

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None, reason="no lab"
    ),
]


def test_api_and_pages_through_the_proxy_without_leaking_the_token(env, jupyter):
    with env.client(ALICE) as c:
        assert wait_ready(c).status_code == 200
        page = c.get("/datalabs/jl1/lab", headers={"Accept": "text/html"})
        root = c.get("/datalabs/jl1/")  # Jupyter redirects to its default URL
    assert page.status_code == 200 and "<html" in page.text.lower()
    for r in (page, root):
        assert jupyter not in r.text and jupyter not in str(r.headers.raw)
    assert root.status_code == 302 and root.headers["location"].startswith("/datalabs/jl1/lab")
    with env.client() as anonymous, env.client(BOB) as bob:
        assert anonymous.get("/datalabs/jl1/api/status").status_code == 401
        assert bob.get("/datalabs/jl1/api/status").status_code == 404


def test_kernel_runs_code_over_the_websocket(env, jupyter):
    with env.client(ALICE) as c:
        assert wait_ready(c).status_code == 200
        kernel = c.post("/datalabs/jl1/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        try:
            url = env.url.replace("http://", "ws://") + f"/datalabs/jl1/api/kernels/{kernel_id}/channels"
            with connect(url, additional_headers=ALICE, origin=env.url, proxy=None, open_timeout=30) as ws:
                msg_id = uuid.uuid4().hex
                ws.send(json.dumps(execute_request(msg_id, "print(6 * 7)")))
                assert read_stdout(ws, msg_id) == "42\n"
        finally:
            c.delete(f"/datalabs/jl1/api/kernels/{kernel_id}")


def execute_request(msg_id: str, code: str) -> dict:
    header = {"msg_id": msg_id, "username": "alice", "session": uuid.uuid4().hex, "date": ""}
    return {
        "header": {**header, "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}},
        "channel": "shell",
        "buffers": [],
    }


def read_stdout(ws, msg_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=60))
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            return message["content"]["text"]
        if message["msg_type"] == "error":
            raise AssertionError(message["content"])
    raise AssertionError("no output from the kernel")
