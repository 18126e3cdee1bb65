"""Per-cluster Prometheus metrics at /metrics: labs by state, what running labs hold, and the jobs pending
in each Slurm cluster's queue (real squeue on the test cluster; no sample when a cluster does not answer)."""

from __future__ import annotations

import re

import pytest

from datalabs.app import create_app
from datalabs.config import Settings
from datalabs.usage import metrics
from tests.api.test_labs import FAKE, wait_state
from tests.catalogue.test_loader import write


def _settings(tmp_path, db_url, slurm_conf: str) -> Settings:
    root = tmp_path / "defs"
    write(root, "fake", FAKE.format(command="fake-lab"))
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [root], "builtin": False},
        labs={"backend": "datalabs.runtimes.testing:FakeRuntime"},
        clusters=[
            {"name": "local"},
            {"name": "hpc", "backend": "slurm", "options": {"slurm_conf": slurm_conf, "partition": "debug"}},
        ],
    )


@pytest.fixture
def settings(tmp_path, db_url):
    return _settings(tmp_path, db_url, str(tmp_path / "no-such-slurm.conf"))


def samples(text: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^(datalabs_cluster_\w+\{[^}]*\}) (\S+)$", text, re.M)}


def test_labs_and_what_they_hold_per_cluster(people, app):
    people.user("ada")
    c = people.login("ada")
    for cpu in (2, 1):
        lab = c.post(
            "/api/v1/labs", json={"datalab": "fake", "resources": {"cpu": cpu, "memory": "1G"}}
        ).json()
        wait_state(c, lab["id"])
    got = samples(people.client.get("/metrics").text)  # public, as scrapers carry no credentials
    assert got['datalabs_cluster_labs{cluster="local",state="running"}'] == 2
    assert got['datalabs_cluster_labs{cluster="hpc",state="running"}'] == 0
    assert got['datalabs_cluster_cpus_allocated{cluster="local"}'] == 3
    assert got['datalabs_cluster_memory_allocated_bytes{cluster="local"}'] == 2 * 10**9
    assert got['datalabs_cluster_gpus_allocated{cluster="local"}'] == 0
    # hpc's controller cannot be asked (its slurm.conf does not exist): no sample rather than a wrong 0.
    assert not [key for key in got if key.startswith("datalabs_cluster_slurm_pending_jobs")]


@pytest.mark.slow
@pytest.mark.xdist_group("slurm-platform")
def test_pending_jobs_of_a_slurm_cluster(tmp_path, slurm_cluster):
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", str(slurm_cluster.conf))
    app = create_app(settings)
    blocker = slurm_cluster.sbatch("#!/bin/sh\nsleep 300\n", "-c", str(slurm_cluster.cpus), "-o", "/dev/null")
    slurm_cluster.wait_job(blocker, {"RUNNING"})
    waiting = [slurm_cluster.sbatch("#!/bin/sh\ntrue\n", "-o", "/dev/null") for _ in range(3)]
    try:
        text = metrics.exposition(settings, app.state.sessions).decode()
        assert samples(text)['datalabs_cluster_slurm_pending_jobs{cluster="hpc"}'] == len(waiting)
    finally:
        slurm_cluster.cancel_all()
