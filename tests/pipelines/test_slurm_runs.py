"""Runs placed on a cluster, end to end through the API and the in-process worker: a two-step CWL workflow
on the suite's real Slurm cluster through cwltool and through Toil, with its outputs in the workspace;
folders the nodes do not share fail the run before anything is submitted; unknown clusters, other
groups' clusters and hostile names are refused; a hostile input never becomes a Slurm option."""

from __future__ import annotations

import os
import time

import pytest

from datalabs.config import Settings
from tests.pipelines.conftest import register, wait_run
from tests.pipelines.engines.test_slurm_placement import ECHO_WC

# Under `make test` (DATALABS_REQUIRE_SLURM=1) not running as root is a failure, not a skip.
ON_SLURM = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("DATALABS_REQUIRE_SLURM") != "1",
    reason="the test cluster and sandboxes need root",
)
ECHO = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [echo]
inputs:
  text: {type: string, inputBinding: {position: 1}}
stdout: said.txt
outputs:
  said: {type: stdout}
"""


@pytest.fixture
def settings(tmp_path, db_url, smtp, request):
    """Clusters: this host, and one of the group 'astro' only; with the test Slurm cluster also an open
    Slurm cluster whose shared storage is the platform's home, and one whose shared folder the run's
    folders are not under. (Without it no Slurm cluster is configured: the platform asks each at start.)"""
    home = tmp_path / "home"
    clusters = [{"name": "local"}, {"name": "astro-only", "allowed_groups": ["astro"]}]
    if "slurm_cluster" in request.fixturenames:
        conf = str(request.getfixturevalue("slurm_cluster").conf)
        clusters += [
            {"name": "hpc", "backend": "slurm", "options": {"slurm_conf": conf, "shared_dirs": [str(home)]}},
            {
                "name": "unshared",
                "backend": "slurm",
                "options": {"slurm_conf": conf, "shared_dirs": ["/srv/nowhere-shared"]},
            },
        ]
    return Settings(
        home=home,
        db={"url": db_url},
        auth={"secret_key": "test-secret"},
        pipelines={"poll_interval": 0.2, "lease": 6, "scheduler_interval": 3600, "default_timeout": 600},
        clusters=clusters,
    )


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
@ON_SLURM
@pytest.mark.parametrize("engine", ["cwltool", "toil"])
def test_a_workflow_runs_on_slurm_and_writes_its_outputs_to_the_workspace(people, slurm_cluster, engine):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "echo-wc", ECHO_WC, engine=engine)
    before = {j["JobId"] for j in slurm_cluster.completed_jobs()}
    r = ada.post("/api/v1/pipelines/echo-wc/runs", json={"inputs": {"text": "hi"}, "cluster": "hpc"})
    assert r.status_code == 202, r.text
    assert r.json()["cluster"] == "hpc"
    run = wait_run(ada, r.json()["id"], timeout=400)
    assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run['id']}/logs").text
    got = ada.get(f"/api/v1/workspaces/me/files/pipelines/echo-wc/{run['id']}/count.txt")
    assert got.status_code == 200 and got.text.strip() == "2"
    assert "on cluster hpc (Slurm)" in ada.get(f"/api/v1/runs/{run['id']}/logs").text
    deadline = time.monotonic() + 30
    while not [j for j in slurm_cluster.completed_jobs() if j["JobId"] not in before]:
        assert time.monotonic() < deadline, "the run left no finished Slurm job"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
@ON_SLURM
def test_a_run_whose_folders_the_nodes_do_not_share_fails_and_submits_nothing(people, slurm_cluster):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "echo", ECHO)
    before = slurm_cluster.completed_jobs()
    r = ada.post("/api/v1/pipelines/echo/runs", json={"inputs": {"text": "x"}, "cluster": "unshared"})
    assert r.status_code == 202, r.text
    run = wait_run(ada, r.json()["id"])
    assert run["state"] == "failed"
    assert "not on storage shared with the nodes of cluster 'unshared'" in run["reason"]
    # The folder and the option named (server paths shortened for the user, as in every run's reason).
    assert "the run's work folder <run>/attempt-1/work" in run["reason"]
    assert "(options.shared_dirs: …/nowhere-shared); nothing was submitted" in run["reason"]
    assert slurm_cluster.queued() == [] and slurm_cluster.completed_jobs() == before


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
@ON_SLURM
def test_a_hostile_input_is_the_tools_argument_never_a_slurm_option(people, slurm_cluster):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "echo", ECHO)
    hostile = "--partition=gpu --gres=gpu:2 $(id) ; scancel -u root"
    r = ada.post("/api/v1/pipelines/echo/runs", json={"inputs": {"text": hostile}, "cluster": "hpc"})
    run = wait_run(ada, r.json()["id"], timeout=120)
    assert run["state"] == "succeeded", ada.get(f"/api/v1/runs/{run['id']}/logs").text
    said = ada.get(f"/api/v1/workspaces/me/files/pipelines/echo/{run['id']}/said.txt").text
    assert said == hostile + "\n"  # echoed as given: no shell, no option
    (job,) = [j for j in slurm_cluster.completed_jobs() if j["Name"] == f"datalabs-run-{run['id']}"]
    assert job["Partition"] == "debug" and slurm_cluster.job_info(job["JobId"]).get("TresPerNode") is None


@pytest.mark.parametrize(
    "name", ["mars", "astro-only", "hpc --wrap=id", "hpc\n#SBATCH --uid=0", "../hpc", "HPC", "h" * 64 + "x"]
)
def test_an_unknown_other_groups_or_hostile_cluster_is_refused_listing_the_users_own(people, name):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "echo", ECHO)
    r = ada.post("/api/v1/pipelines/echo/runs", json={"inputs": {"text": "x"}, "cluster": name})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    if len(name) <= 64:
        assert error["code"] == "unknown_cluster"
        assert error["message"].endswith("(yours: local)")
    assert ada.get("/api/v1/runs").json() == []  # nothing was queued


def test_a_member_of_the_group_may_use_its_cluster_and_the_default_is_the_first(people):
    people.user("ada", groups=("astro",))
    ada = people.login("ada")
    register(ada, "echo", ECHO)
    r = ada.post("/api/v1/pipelines/echo/runs", json={"inputs": {"text": "x"}, "cluster": "astro-only"})
    assert r.status_code == 202 and r.json()["cluster"] == "astro-only"
    ada.post(f"/api/v1/runs/{r.json()['id']}/cancel")
    r = ada.post("/api/v1/pipelines/echo/runs", json={"inputs": {"text": "x"}})
    assert r.status_code == 202 and r.json()["cluster"] == "local"
