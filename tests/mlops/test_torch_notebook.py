"""Acceptance (issue 18 Build 5), with real parts: the builtin `jupyterlab-ml` built with PyTorch's CPU wheel
from the site's wheel directory (builder.find_links, pip's configured find-links by default), a kernel in
a real lab training with it, and the datalab's example notebook run end to end, cell by cell, in that
lab's kernel: it trains a PyTorch model, logs the run to the team's tracking server, registers the model,
and invokes it once a serving lab (`mlflow-model`) serves the registered version."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from websockets.sync.client import connect

from tests.labs.test_jupyter import wait_running
from tests.mlops.conftest import client

# One worker runs all of tests/mlops: they share the session platform (three datalabs built once) and
# test_tracking hands its lab from one test to the next.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlops")]
NOTEBOOK = "notebooks/mlops-example.ipynb"  # as the lab sees it (its root is /media)


def run_cell(ws, code: str, timeout: float = 300) -> tuple[str, str]:
    """Execute `code` in the kernel: (its stdout, its result's text); an error in the cell fails the test."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "username": "t", "session": uuid.uuid4().hex, "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
    ws.send(
        json.dumps(
            {
                "header": {**header, "msg_type": "execute_request"},
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {**content, "allow_stdin": False, "stop_on_error": True},
            }
        )
    )
    out, result = [], ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif kind == "execute_result":
            result = msg["content"]["data"]["text/plain"]
        elif kind == "error":
            raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}\n{code}")
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out), result
    raise AssertionError(f"the cell did not finish in {timeout:.0f} s:\n{code}")


@pytest.fixture(scope="module")
def lab(platform):
    """dora's jupyterlab-ml lab, tracking to team optics' server (launched first, by fay: a user runs two
    labs at most, and dora's other is the serving lab): (client, lab, server, ws url, token)."""
    home, url, tokens = platform
    dora, fay = client(url, tokens["dora"]), client(url, tokens["fay"])
    server = fay.post("/api/v1/labs", json={"datalab": "mlflow", "team": "optics"})
    assert server.status_code == 202, server.text
    server = wait_running(fay, server.json()["id"])
    assert server["state"] == "running", server["reason"]
    made = dora.post("/api/v1/labs", json={"datalab": "jupyterlab-ml", "team": "optics"})
    assert made.status_code == 202, made.text
    lab = wait_running(dora, made.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    kernel = dora.post(f"{lab['path']}api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    ws_url = url.replace("http", "ws") + f"{lab['path']}api/kernels/{kernel.json()['id']}/channels"
    return dora, lab, server, ws_url, tokens["dora"]


def test_a_kernel_of_the_lab_trains_with_pytorchs_cpu_build(lab):
    dora, lab, server, ws_url, token = lab
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
        _, version = run_cell(ws, "import torch; torch.__version__, torch.cuda.is_available()")
        assert version == "('2.13.0+cpu', False)"
        step = (
            "torch.manual_seed(0)\n"
            "net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))\n"
            "x, y = torch.randn(64, 4), torch.randn(64, 1)\n"
            "opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
            "before = torch.nn.functional.mse_loss(net(x), y)\n"
            "before.backward(); opt.step()\n"
            "after = torch.nn.functional.mse_loss(net(x), y)\n"
            "bool(after < before), before.grad_fn is not None"
        )
        assert run_cell(ws, step)[1] == "(True, True)"


def test_the_example_notebook_trains_logs_registers_and_invokes_the_served_model(lab):
    dora, lab, server, ws_url, token = lab
    nb = dora.get(f"{lab['path']}api/contents/{NOTEBOOK}")
    assert nb.status_code == 200, nb.text
    cells = [c for c in nb.json()["content"]["cells"] if c["cell_type"] == "code"]
    assert any("import torch" in c["source"] for c in cells)
    outputs = []
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
        for cell in cells:
            outputs.append(run_cell(ws, cell["source"])[0])
            if "parameters" not in cell["metadata"].get("tags", []):
                continue
            # Where the notebook asks its reader to deploy the model: dora does, as the notebook says.
            version = run_cell(ws, "info.registered_model_version")[1].strip("'")
            model = f"models:/example-line/{version}"
            made = dora.post(
                "/api/v1/labs", json={"datalab": "mlflow-model", "team": "optics", "model": model}
            )
            assert made.status_code == 202, made.text
            served = wait_running(dora, made.json()["id"])
            assert served["state"] == "running", served["reason"]
            run_cell(ws, f"SERVING_LAB = {served['id']!r}")
        predictions = json.loads(run_cell(ws, "import json; json.dumps(predictions)")[1].strip("'"))
        run_id = run_cell(ws, "run.info.run_id")[1].strip("'")
    assert "team: optics" in outputs[0]
    assert "served model:" in outputs[-1]
    assert [round(p[0]) for p in predictions] == [7, 9], predictions  # y = 2x + 1, learnt

    # The run and the registered version are on the team's tracking server.
    tracking = server["path"]
    seen = dora.get(f"{tracking}api/2.0/mlflow/runs/get?run_id={run_id}")
    assert seen.status_code == 200, seen.text
    data = seen.json()["run"]["data"]
    assert {"key": "optimiser", "value": "Adam"} in data["params"]
    [mse] = [m["value"] for m in data["metrics"] if m["key"] == "mse"]
    assert mse < 0.2
    registered = dora.get(f"{tracking}api/2.0/mlflow/registered-models/get?name=example-line")
    assert registered.status_code == 200, registered.text
    assert registered.json()["registered_model"]["latest_versions"][0]["run_id"] == run_id
