"""Labs on a Slurm cluster through the whole platform (issue 16 acceptance): `datalabs serve` configured with
an "hpc" cluster on the suite's real single-node Slurm (tests/runtimes/slurm_cluster.py). JupyterLab
launched there through the API runs `1+1` over the proxied kernel WebSocket; `kill -9` of the platform
with one lab queued and one running loses neither, and the jobs nobody follows are cancelled; the
controller stopped for two minutes ends no lab. (A lab at the cluster's time limit, told so and accounted
as sacct says: tests/usage/test_slurm_usage.py, one wait for both.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.labs.test_jupyter import admin, execute, wait_running
from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm-platform")]
OUTAGE = 120  # seconds the controller is down (the "stopped for 2 minutes")


def configure(home: Path, slurm, *, time_limit: str = "") -> None:
    options = f'slurm_conf = "{slurm.conf}"\n' + (f'time_limit = "{time_limit}"\n' if time_limit else "")
    (home / "datalabs.toml").write_text(
        '[[clusters]]\nname = "local"\n\n'
        '[[clusters]]\nname = "hpc"\ntitle = "HPC cluster"\nbackend = "slurm"\n'
        f"[clusters.options]\n{options}"
    )


@contextmanager
def platform(tmp_path: Path, slurm, **config) -> Iterator[tuple[Path, Server]]:
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "mini").mkdir(parents=True)
    (catalogue / "mini" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(LABAPP, catalogue / "mini" / "labapp.py")
    home.mkdir()
    configure(home, slurm, **config)
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    server = Server(home, catalogue)
    try:
        yield home, server.start()
    finally:
        server.stop()
        slurm.cancel_all()


class Server:
    """`datalabs serve` that a test can kill -9 and start again on the same port."""

    def __init__(self, home: Path, catalogue: Path) -> None:
        self.home, self.catalogue, self.port = home, catalogue, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        token = admin(home, "create-token", "ada")
        self.ada = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.token = token

    def start(self) -> Server:
        env = {
            **os.environ,
            "DATALABS_HOME": str(self.home),
            "DATALABS_CATALOGUE__DIRS": f'["{self.catalogue}"]',
            "DATALABS_LABS__CULL_INTERVAL": "2",  # the culler polls many times while the controller is down
        }
        log = (self.home / f"server-{time.monotonic_ns()}.log").open("w")
        argv = [DATALABS, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.proc, self.home)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for lab in self.ada.get("/api/v1/labs", params={"active": True}).json():
                self.ada.post(f"/api/v1/labs/{lab['id']}/stop", json={})
            self.proc.terminate()
            self.proc.wait(30)

    def launch(self, datalab: str = "mini", **body) -> str:
        r = self.ada.post("/api/v1/labs", json={"datalab": datalab, "cluster": "hpc", **body})
        assert r.status_code == 202, r.text
        assert r.json()["cluster"] == "hpc"
        return r.json()["id"]

    def lab(self, lab_id: str) -> dict:
        return self.ada.get(f"/api/v1/labs/{lab_id}").json()

    def wait(self, lab_id: str, states: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lab = self.lab(lab_id)
            if lab["state"] in states:
                return lab
            time.sleep(0.1)
        raise AssertionError(f"lab {lab_id} not {states} in {timeout} s: {self.lab(lab_id)}")

    def events(self, lab_id: str, until: str) -> str:
        """The lab's start events up to the first that says `until` (or the end of the stream)."""
        with self.ada.stream("GET", f"/api/v1/labs/{lab_id}/events", timeout=30) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                if until in text or len(text) > 20000:
                    break
        return text


def job_of(home: Path, lab_id: str, slurm) -> dict[str, str]:
    jobs = slurm.run("squeue", "-h", "-t", "all", "-n", f"datalabs-{lab_id}", "-o", "%i").stdout.split()
    assert len(jobs) == 1, f"lab {lab_id}: jobs {jobs}"
    return {"JobId": jobs[0], **slurm.job_info(jobs[0])}


def cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_jupyterlab_on_the_hpc_cluster_runs_1_plus_1_through_the_proxy(tmp_path, slurm_cluster):
    with platform(tmp_path, slurm_cluster) as (home, server):
        clusters = {c["name"]: c for c in server.ada.get("/api/v1/clusters").json()}
        assert clusters["hpc"]["backend"] == "slurm" and "slurm_conf" not in clusters["hpc"]["options"]
        lab_id = server.launch("jupyterlab")
        lab = wait_running(server.ada, lab_id)
        assert lab["state"] == "running", lab["reason"]
        job = job_of(home, lab_id, slurm_cluster)
        assert job["JobState"] == "RUNNING" and job["Comment"].startswith("datalabs-platform-")
        base = lab["path"]
        kernel = server.ada.post(f"{base}api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws_url = server.url.replace("http", "ws") + f"{base}api/kernels/{kernel.json()['id']}/channels"
        with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {server.token}"}, open_timeout=30
        ) as ws:
            assert execute(ws, "1+1") == "2"
            # The kernel is one of the job's processes (Slurm's own account of them).
            listed = slurm_cluster.run("scontrol", "listpids", job["JobId"]).stdout.split("\n")[1:]
            commands = [cmdline(line.split()[0]) for line in listed if line.strip()]
            assert [c for c in commands if "ipykernel" in c], commands
            assert execute(ws, "open('/media/home/my_workspace/from-hpc.txt','w').write('hi')") == "2"
        assert (home / "workspaces" / "users" / "ada" / "from-hpc.txt").read_text() == "hi"
        assert server.ada.post(f"/api/v1/labs/{lab_id}/stop", json={}).json()["state"] == "stopped"
        assert slurm_cluster.wait_job(job["JobId"], {"COMPLETED", "CANCELLED"}, timeout=30)


def test_a_platform_killed_with_a_queued_and_a_running_lab_loses_neither(tmp_path, slurm_cluster):
    with platform(tmp_path, slurm_cluster) as (home, server):
        running = server.launch()
        assert server.wait(running, {"running", "failed"})["state"] == "running"
        free = slurm_cluster.cpus - 1  # the running lab holds one CPU; a job takes the rest
        blocker = slurm_cluster.sbatch(
            "#!/bin/sh\nsleep 300\n", f"--cpus-per-task={free}", "--output=/dev/null"
        )
        slurm_cluster.wait_job(blocker, {"RUNNING"})
        queued = server.launch()
        waiting = "waiting for resources: Resources"
        assert waiting in server.events(queued, until=waiting)
        assert server.lab(queued)["state"] == "starting"
        # A job the platform submitted but never recorded (killed between sbatch and saving): same tag.
        tag = job_of(home, running, slurm_cluster)["Comment"]
        stray = slurm_cluster.sbatch(
            "#!/bin/sh\nsleep 300\n", "--job-name=datalabs-0123456789abcdef", f"--comment={tag}",
            "--output=/dev/null",
        )  # fmt: skip
        other = slurm_cluster.sbatch(  # another platform's (or a person's) job: not ours to cancel
            "#!/bin/sh\nsleep 300\n", "--job-name=datalabs-fedcba9876543210", "--comment=datalabs-platform-x",
            "--output=/dev/null",
        )  # fmt: skip

        server.kill()
        server.start()

        assert slurm_cluster.wait_job(stray, {"CANCELLED"}, timeout=30)
        assert slurm_cluster.job_info(other)["JobState"] in ("PENDING", "RUNNING")
        slurm_cluster.run("scancel", other)
        assert server.lab(running)["state"] == "running"
        assert server.ada.get(f"/datalabs/{running}/").json()["ok"] is True
        assert server.lab(queued)["state"] == "starting"  # still followed, not failed
        slurm_cluster.run("scancel", blocker)
        lab = server.wait(queued, {"running", "failed"})
        assert lab["state"] == "running", lab["reason"]
        assert server.ada.get(f"/datalabs/{queued}/").json()["ok"] is True


def test_the_controller_down_for_two_minutes_ends_no_lab(tmp_path, slurm_cluster):
    with platform(tmp_path, slurm_cluster) as (home, server):
        lab_id = server.launch()
        assert server.wait(lab_id, {"running", "failed"})["state"] == "running"
        slurm_cluster.stop_controller()
        try:
            stopped = server.ada.post(f"/api/v1/labs/{lab_id}/stop", json={})
            assert stopped.status_code == 503, stopped.text
            assert stopped.json()["error"]["code"] == "cluster_unreachable"
            assert "keeps running" in stopped.json()["error"]["message"]
            deadline = time.monotonic() + OUTAGE
            while time.monotonic() < deadline:
                assert server.lab(lab_id)["state"] == "running"
                assert server.ada.get(f"/datalabs/{lab_id}/").json()["ok"] is True
                time.sleep(5)
        finally:
            slurm_cluster.start_controller()
        assert server.lab(lab_id)["state"] == "running"
        assert server.ada.post(f"/api/v1/labs/{lab_id}/stop", json={}).json()["state"] == "stopped"
