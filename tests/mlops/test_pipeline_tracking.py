"""MLflow for CWL steps (issue 18 Build 3), with real parts: a pipeline run of a member of a team whose
tracking server runs gets MLFLOW_TRACKING_URI / MLFLOW_TRACKING_TOKEN in its tools' sandboxes (the API
socket forwarded on their own loopback, as in labs); a step logs a metric with the mlflow client and the
team's server has it; the token ends with the run. A run of a user in no such team gets no MLflow
variables."""

from __future__ import annotations

import json
import time

import pytest

from tests.labs.test_jupyter import wait_running
from tests.mlops.conftest import client

# One worker runs all of tests/mlops: they share the session platform (three datalabs built once) and
# test_tracking hands its lab from one test to the next.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlops")]

STEP = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [python3, -c]
arguments:
  - |
    import json, os
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "DATALABS_TRACKING_TEAM")
    seen = {k: os.environ.get(k) for k in names}
    if seen["MLFLOW_TRACKING_URI"]:
        import mlflow
        mlflow.set_experiment("pipeline-steps")
        with mlflow.start_run() as run:
            mlflow.log_param("station", "KOUR")
            mlflow.log_metric("snr", 12.5)
        seen["run_id"] = run.info.run_id
    json.dump(seen, open("tracking.json", "w"))
inputs: []
outputs:
  report: {type: File, outputBinding: {glob: tracking.json}}
"""


def run_step(api, name: str) -> dict:
    """Register STEP as `name`, run it, wait for the end: what its tool saw (tracking.json)."""
    made = api.post("/api/v1/pipelines", json={"name": name, "cwl": STEP})
    assert made.status_code == 201, made.text
    started = api.post(f"/api/v1/pipelines/{name}/runs", json={"inputs": {}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    deadline = time.monotonic() + 300
    while (run := api.get(f"/api/v1/runs/{run_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    logs = api.get(f"/api/v1/runs/{run_id}/logs").text
    assert run["state"] == "succeeded", (run, logs[-3000:])
    report = api.get(f"/api/v1/workspaces/me/files/pipelines/{name}/{run_id}/tracking.json")
    assert report.status_code == 200, report.text
    return json.loads(report.text)


def test_a_cwl_step_logs_to_its_owners_team_server_with_a_token_that_ends_with_the_run(platform):
    home, url, tokens = platform
    carol = client(url, tokens["carol"])  # team helio
    server = carol.post("/api/v1/labs", json={"datalab": "mlflow", "team": "helio"})
    assert server.status_code == 202, server.text
    server = wait_running(carol, server.json()["id"])
    assert server["state"] == "running", server["reason"]

    seen = run_step(carol, "tracked-step")
    assert seen["DATALABS_TRACKING_TEAM"] == "helio"
    assert seen["MLFLOW_TRACKING_URI"].endswith(f"/datalabs/{server['id']}")
    got = carol.get(f"{server['path']}api/2.0/mlflow/runs/get?run_id={seen['run_id']}")
    assert got.status_code == 200, got.text
    data = got.json()["run"]["data"]
    assert [m["value"] for m in data["metrics"] if m["key"] == "snr"] == [12.5]
    assert {"key": "station", "value": "KOUR"} in data["params"]
    # The step's token ended with its run: the tracking server refuses it, once the proxy's authentication
    # cache (a few seconds, as for every revoked token) lets go of it.
    step = client(url, seen["MLFLOW_TRACKING_TOKEN"])
    deadline = time.monotonic() + 30
    while (status := step.get(f"{server['path']}health").status_code) != 401:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def test_a_run_of_a_user_in_no_team_with_a_tracking_server_gets_no_mlflow_variables(platform):
    home, url, tokens = platform
    seen = run_step(client(url, tokens["eve"]), "untracked-step")  # eve is in no team
    assert seen == {
        "MLFLOW_TRACKING_URI": None,
        "MLFLOW_TRACKING_TOKEN": None,
        "DATALABS_TRACKING_TEAM": None,
    }
