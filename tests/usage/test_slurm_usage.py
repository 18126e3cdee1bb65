"""Issue 16's usage acceptance on the real test Slurm cluster, through `datalabs serve`: a lab on the "hpc"
cluster, stopped by its owner or killed at its walltime, shows on the usage page and in the API with the
time and CPUs Slurm accounted (sacct's Elapsed x AllocTRES cpu), not the platform's own clock."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.labs.test_slurm_labs import job_of, platform

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm-platform")]


def _page_client(server) -> httpx.Client:
    c = httpx.Client(base_url=server.url, timeout=60)
    r = c.post("/api/v1/login", json={"username": "ada", "password": "long-enough-pw"})
    assert r.status_code == 200, r.text
    return c


def _usage_session(server, job: str, timeout: float = 90) -> dict:
    """The lab session of Slurm job `job` in GET /api/v1/usage once it is accounted from sacct (the
    platform reconciles at most every 30 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = server.ada.get("/api/v1/usage").json()["sessions"]
        found = [s for s in sessions if s["slurm_job"] == job and s["source"] == "sacct"]
        if found:
            return found[0]
        time.sleep(2)
    raise AssertionError(f"job {job} never accounted from sacct: {sessions}")


def _page_row(page: str, job: str) -> dict[str, str]:
    row = re.search(rf'<tr data-session="[0-9a-f]+" data-job="{job}">(.*?)</tr>', page, re.S)
    assert row, f"no row for job {job} on the usage page"
    cells = dict(re.findall(r'data-col="(\w+)"[^>]*>(.*?)</td>', row[1], re.S))
    cells["cpu_hours_exact"] = re.search(r'data-col="cpu_hours" data-value="([\d.]+)"', row[1])[1]
    cells["row"] = row[1]
    return cells


def _seconds(elapsed: str) -> int:
    hours, minutes, seconds = (int(part) for part in elapsed.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_a_slurm_labs_usage_on_the_page_is_sacct_elapsed_times_cpus(tmp_path, slurm_cluster):
    with platform(tmp_path, slurm_cluster) as (home, server):
        lab_id = server.launch(resources={"cpu": 2, "memory": "1G"})
        assert server.wait(lab_id, {"running", "failed"})["state"] == "running"
        job = job_of(home, lab_id, slurm_cluster)["JobId"]
        time.sleep(3)  # some time to account
        assert server.ada.post(f"/api/v1/labs/{lab_id}/stop", json={}).json()["state"] == "stopped"
        accounted = slurm_cluster.wait_accounted(job)
        elapsed, cpus = int(accounted["ElapsedRaw"]), 2
        assert "cpu=2" in accounted["AllocTRES"].split(",") and elapsed >= 3

        session = _usage_session(server, job)
        assert session["state"] == "COMPLETED" and session["cluster"] == "hpc" and session["cpu"] == cpus
        assert session["hours"] == round(elapsed / 3600, 4)
        assert session["cpu_hours"] == round(elapsed * cpus / 3600, 4)

        page = _page_client(server).get("/usage").text
        row = _page_row(page, job)
        assert _seconds(row["duration"]) == elapsed  # sacct's Elapsed, to the second
        assert float(row["cpu_hours_exact"]) == pytest.approx(elapsed * cpus / 3600, abs=5e-5)
        assert row["source"] == f"Slurm (job {job})"
        # The lab is destroyed: its usage stays.
        assert server.ada.delete(f"/api/v1/labs/{lab_id}").status_code == 204
        assert _usage_session(server, job)["cpu_hours"] == session["cpu_hours"]


def test_a_walltime_kill_is_counted_with_sacct_time(tmp_path, slurm_cluster):
    with platform(tmp_path, slurm_cluster, time_limit="1") as (home, server):  # one minute
        lab_id = server.launch()
        assert server.wait(lab_id, {"running", "failed"})["state"] == "running"
        job = job_of(home, lab_id, slurm_cluster)["JobId"]
        ended = server.wait(lab_id, {"failed", "stopped"}, timeout=200)
        assert ended["reason"] == "the lab ended: it reached its time limit on HPC cluster (1 minutes)", ended
        accounted = slurm_cluster.wait_accounted(job)
        assert accounted["State"] == "TIMEOUT" and int(accounted["ElapsedRaw"]) >= 60

        session = _usage_session(server, job)
        assert session["state"] == "TIMEOUT"
        assert session["cpu_hours"] == round(int(accounted["ElapsedRaw"]) * session["cpu"] / 3600, 4)
        row = _page_row(_page_client(server).get("/usage").text, job)
        assert _seconds(row["duration"]) == int(accounted["ElapsedRaw"])
        assert "Walltime reached" in row["row"]
