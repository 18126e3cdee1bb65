"""Acceptance (issue 18 Build 3), end to end with real parts: `datalabs serve`, the builtin `mlflow` and
`jupyterlab-ml` datalabs built from PyPI (uv), bubblewrap labs, a real MLflow tracking server and real
JupyterLab behind the proxy.

A team's member launches the team's tracking server (a second launch answers the running one); a
JupyterLab lab of another member logs a run from its kernel with nothing configured (MLFLOW_TRACKING_URI
and MLFLOW_TRACKING_TOKEN); the run is seen through the proxy by every member of the team; anonymous, a
member of another team and an administrator outside the team are refused. The tracking token opens
nothing else: not the lab's own JupyterLab, not the API; and from inside a lab, its API socket opens no
lab but a team-scoped one."""

from __future__ import annotations

import httpx
import pytest
from websockets.sync.client import connect

from tests.labs.test_jupyter import execute, wait_running
from tests.mlops.conftest import PW, client

# One worker runs all of tests/mlops: they share the session platform (three datalabs built once) and
# test_tracking hands its lab from one test to the next.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlops")]


@pytest.fixture(scope="module")
def shared(platform):
    """What the tests hand on: bob's lab and the tracking server (set by the first test)."""
    return {}


def test_a_teams_tracking_server_records_a_notebooks_run_for_the_team_only(platform, shared):
    home, url, tokens = platform
    ada, bob, carol, root = (client(url, tokens[u]) for u in ("ada", "bob", "carol", "root"))

    refused = ada.post("/api/v1/labs", json={"datalab": "mlflow"})
    assert refused.status_code == 422 and "team" in refused.json()["error"]["message"]
    assert carol.post("/api/v1/labs", json={"datalab": "mlflow", "team": "astro"}).status_code == 404
    server = ada.post("/api/v1/labs", json={"datalab": "mlflow", "team": "astro"})
    assert server.status_code == 202, server.text
    server = wait_running(ada, server.json()["id"])
    assert server["state"] == "running", server["reason"]
    assert server["team"] == "astro"
    again = bob.post("/api/v1/labs", json={"datalab": "mlflow", "team": "astro"})
    assert again.json()["id"] == server["id"]  # one per team: the running one
    tracking = server["path"]  # /datalabs/<id>/

    lab = bob.post("/api/v1/labs", json={"datalab": "jupyterlab-ml", "team": "astro"})
    assert lab.status_code == 202, lab.text
    lab = wait_running(bob, lab.json()["id"])
    assert lab["state"] == "running", lab["reason"]
    assert lab["team"] is None  # an ordinary lab: bob's alone
    kernel = bob.post(f"{lab['path']}api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    ws_url = (
        url.replace("http", "ws") + f"{lab['path']}api/kernels/{kernel.json()['id']}/channels?session_id=t"
    )
    with connect(
        ws_url, additional_headers={"Authorization": f"Bearer {tokens['bob']}"}, open_timeout=30
    ) as ws:
        assert (
            execute(ws, "import os; os.environ['MLFLOW_TRACKING_URI'].endswith('" + tracking[:-1] + "')")
            == "True"
        )
        code = (
            "import mlflow\n"
            "mlflow.set_experiment('orbits')\n"
            "with mlflow.start_run() as r:\n"
            "    mlflow.log_param('alpha', 0.5)\n"
            "    mlflow.log_metric('rmse', 0.27)\n"
            "r.info.run_id"
        )
        run_id = execute(ws, code).strip("'")
        # The tracking token opens team-scoped labs only: not bob's own JupyterLab, not the API; the lab's
        # own token (DATALABS_TOKEN) opens no lab from inside.
        probe = (
            "import os, urllib.request, urllib.error\n"
            "def status(path, var):\n"
            "    req = urllib.request.Request(os.environ['DATALABS_API_URL'] + path,"
            " headers={'Authorization': 'Bearer ' + os.environ[var]})\n"
            "    try:\n"
            "        return urllib.request.urlopen(req, timeout=30).status\n"
            "    except urllib.error.HTTPError as e:\n"
            "        return e.code\n"
            f"(status('{lab['path']}api/status', 'MLFLOW_TRACKING_TOKEN'),"
            " status('/api/v1/labs', 'MLFLOW_TRACKING_TOKEN'),"
            f" status('{tracking}health', 'DATALABS_TOKEN'),"
            f" status('{tracking}health', 'MLFLOW_TRACKING_TOKEN'))"
        )
        assert execute(ws, probe) == "(403, 403, 403, 200)"

    path = f"{tracking}api/2.0/mlflow/runs/get?run_id={run_id}"
    for member in (ada, bob):
        seen = member.get(path)
        assert seen.status_code == 200, seen.text
        data = seen.json()["run"]["data"]
        assert {"key": "alpha", "value": "0.5"} in data["params"]
        assert [m["value"] for m in data["metrics"] if m["key"] == "rmse"] == [0.27]
    assert carol.get(path).status_code == 404  # a member of another team: as if there were none
    assert root.get(path).status_code == 404  # an administrator outside the team
    assert client(url).get(path).status_code == 401  # anonymous
    # Nobody outside bob reaches bob's ordinary lab, team member or not.
    assert ada.get(f"{lab['path']}api/status").status_code == 404
    # The store is in the team's workspace, beside its artifacts.
    listing = ada.get("/api/v1/workspaces/team:astro/files/.mlflow")
    assert listing.status_code == 200, listing.text
    assert "mlflow.db" in listing.text

    # The ui, through the proxy, for a member (a token here; browsers are sent to the lab's origin).
    page = bob.get(tracking)
    assert page.status_code == 200 and "MLflow" in page.text
    shared.update(lab=lab, ws_url=ws_url, tracking=tracking)


def test_a_registered_model_is_served_to_tokens_with_the_invoke_scope(platform, shared):
    """Build 4: bob registers a model from his notebook; ada deploys version 1 for the team; a token with
    models:invoke gets predictions, one without it (even labs:write) 403, another team 404, anonymous
    401; requests are counted on /metrics."""
    home, url, tokens = platform
    assert shared, "needs the tracking test's lab"
    ada, bob, carol = (client(url, tokens[u]) for u in ("ada", "bob", "carol"))
    with connect(shared["ws_url"], additional_headers={"Authorization": f"Bearer {tokens['bob']}"}) as ws:
        code = (
            "import mlflow, numpy as np\n"
            "from sklearn.linear_model import LinearRegression\n"
            "X = np.arange(10.0).reshape(-1, 1); y = 2 * X[:, 0] + 1\n"
            "with mlflow.start_run():\n"
            "    info = mlflow.sklearn.log_model(LinearRegression().fit(X, y), name='model',"
            " registered_model_name='line', input_example=X[:2])\n"
            "info.registered_model_version"
        )
        assert execute(ws, code) == "'1'"
    refused = ada.post("/api/v1/labs", json={"datalab": "mlflow-model", "team": "astro", "model": "line"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_model"
    refused = ada.post("/api/v1/labs", json={"datalab": "jupyterlab-ml", "model": "models:/line/1"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_a_model_datalab"
    served = ada.post(
        "/api/v1/labs", json={"datalab": "mlflow-model", "team": "astro", "model": "models:/line/1"}
    )
    assert served.status_code == 202, served.text
    served = wait_running(ada, served.json()["id"])
    assert served["state"] == "running", served["reason"]
    assert served["model"] == "models:/line/1"
    invocations = f"{served['path']}invocations"

    def token(who: str, scopes: list[str]) -> str:
        made = client(url, tokens[who]).post("/api/v1/tokens", json={"name": "t", "scopes": scopes})
        assert made.status_code in (200, 201), made.text
        return made.json()["token"]

    body = {"inputs": [[3.0], [4.0]]}
    invoke = client(url, token("bob", ["models:invoke"])).post(invocations, json=body)
    assert invoke.status_code == 200, invoke.text
    assert [round(p, 6) for p in invoke.json()["predictions"]] == [7.0, 9.0]
    assert client(url, token("bob", ["labs:write"])).post(invocations, json=body).status_code == 403
    assert client(url, token("bob", ["tracking:write"])).post(invocations, json=body).status_code == 403
    assert client(url, token("carol", ["models:invoke"])).post(invocations, json=body).status_code == 404
    assert client(url).post(invocations, json=body).status_code == 401
    # From inside bob's lab: the lab's MLFLOW_TRACKING_TOKEN grants models:invoke (the example notebook).
    with connect(shared["ws_url"], additional_headers={"Authorization": f"Bearer {tokens['bob']}"}) as ws:
        code = (
            "import json, os, urllib.request\n"
            f"req = urllib.request.Request(os.environ['DATALABS_API_URL'] + '{invocations}',"
            " data=json.dumps({'inputs': [[5.0]]}).encode(), headers={'Content-Type': 'application/json',"
            " 'Authorization': 'Bearer ' + os.environ['MLFLOW_TRACKING_TOKEN']})\n"
            "[round(p, 6) for p in json.load(urllib.request.urlopen(req, timeout=60))['predictions']]"
        )
        assert execute(ws, code) == "[11.0]"
    metrics = bob.get("/metrics").text
    lab_id = served["id"]
    assert f'datalabs_model_requests_total{{code="200",lab="{lab_id}"}} 2.0' in metrics
    assert f'datalabs_model_request_seconds_count{{lab="{lab_id}"}} 2.0' in metrics
    web = httpx.Client(base_url=url, timeout=60)  # the lab's page, as its owner sees it in a browser
    assert web.post("/api/v1/login", json={"username": "ada", "password": PW}).status_code == 200
    page = web.get(f"/labs/{lab_id}", headers={"Accept": "text/html"}).text
    assert "models:/line/1" in page and f"POST /datalabs/{lab_id}/invocations" in page
    assert "2 (200: 2), mean" in page
