"""The test suite's single-node Slurm cluster (tests/runtimes/slurm_cluster.py) does what SlurmRuntime
will rely on: batch jobs run and complete, fake GPUs are scheduled, queue reasons are readable, scancel
kills, a controller restart keeps running jobs, and teardown leaves nothing behind."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.runtimes import slurm_cluster as support
from tests.runtimes.slurm_cluster import MARKER, SlurmError

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]


@pytest.fixture
def slurm(slurm_cluster):
    yield slurm_cluster
    slurm_cluster.cancel_all()  # the next test gets an empty queue


def eventually(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.1)
    return result


def alive(pid: int) -> bool:
    try:
        return b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_a_batch_job_runs_on_the_node_and_completes(slurm, tmp_path):
    out = tmp_path / "out.txt"
    job = slurm.sbatch(f'#!/bin/sh\necho "$(hostname) $SLURM_JOB_ID" > {out}\n', "-o", "/dev/null")

    info = slurm.wait_job(job, {"COMPLETED"})

    assert out.read_text().split() == [socket.gethostname(), job]
    assert (info["BatchHost"], info["Partition"], info["ExitCode"]) == ("localhost", "debug", "0:0")
    # sacct answers from the cluster's own slurmdbd and MariaDB; the jobcomp log records it as well.
    accounted = slurm.wait_accounted(job)
    assert accounted["State"] == "COMPLETED" and "cpu=1" in accounted["AllocTRES"].split(",")
    finished = {entry["JobId"]: entry for entry in slurm.completed_jobs()}
    assert finished[job]["JobState"] == "COMPLETED" and finished[job]["NodeList"] == "localhost"


def test_sacct_records_the_allocated_cpus_and_gpus(slurm):
    """What usage accounting reads besides the time: the CPUs and GPUs a job held. (A walltime kill's
    TIMEOUT in sacct is checked through the platform, tests/usage/test_slurm_usage.py, in the one
    minute-long wait the suite spends on Slurm's whole-minute limits.)"""
    job = slurm.sbatch("#!/bin/sh\nsleep 1\n", "-c", "2", "-p", "gpu", "--gres=gpu:1", "-o", "/dev/null")

    row = slurm.wait_accounted(job)

    assert row["State"] == "COMPLETED" and int(row["ElapsedRaw"]) >= 1
    tres = dict(item.split("=", 1) for item in row["AllocTRES"].split(","))
    assert (tres["cpu"], tres["gres/gpu"]) == ("2", "1")


def test_without_accounting_sacct_says_so_and_jobcomp_still_records(tmp_path):
    with support.slurm_cluster(accounting=False) as bare:
        job = bare.sbatch("#!/bin/sh\ntrue\n", "-o", "/dev/null")
        bare.wait_job(job, {"COMPLETED"})
        assert "accounting storage is disabled" in bare.run("sacct", check=False).stderr
        finished = {entry["JobId"]: entry for entry in bare.completed_jobs()}
        assert finished[job]["JobState"] == "COMPLETED"


def test_the_cluster_uses_only_its_own_config_ports_and_munge(slurm):
    config = slurm.run("scontrol", "show", "config").stdout

    assert f"SlurmctldPort           = {slurm.ctld_port}" in config
    assert f"StateSaveLocation       = {slurm.root}/state" in config
    assert f"AuthInfo                = socket={slurm.root}/munge/munge.socket" in config


def test_a_gpu_job_gets_one_of_the_fake_gpus(slurm, tmp_path):
    out = tmp_path / "gpus.txt"
    script = f'#!/bin/sh\necho "$CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS" > {out}\n'
    job = slurm.sbatch(script, "-p", "gpu", "--gres=gpu:1", "-o", "/dev/null")

    slurm.wait_job(job, {"COMPLETED"})

    visible, assigned = out.read_text().split()
    assert visible in {"0", "1"} and assigned == visible


def test_more_gpus_than_the_node_has_are_refused_at_submission(slurm):
    with pytest.raises(SlurmError, match="Requested node configuration is not available"):
        slurm.sbatch("#!/bin/sh\ntrue\n", "-p", "gpu", "--gres=gpu:3", "-o", "/dev/null")


def test_a_pending_jobs_reason_is_readable_and_scancel_kills_a_running_job(slurm, tmp_path):
    pid_file = tmp_path / "pid"
    blocker = slurm.sbatch(
        f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n", "-c", str(slurm.cpus), "-o", "/dev/null"
    )
    slurm.wait_job(blocker, {"RUNNING"})
    waiting = slurm.sbatch("#!/bin/sh\ntrue\n", "-o", "/dev/null")

    def reason():
        result = slurm.run("squeue", "-h", "-j", waiting, "-o", "%r").stdout.strip()
        return result if result != "None" else ""

    assert eventually(reason, "the scheduler gives the pending job a reason") == "Resources"
    assert slurm.job_info(waiting)["JobState"] == "PENDING"

    pid = int(eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), "the job wrote its pid"))
    assert alive(pid)
    slurm.run("scancel", blocker)
    slurm.wait_job(blocker, {"CANCELLED"})
    eventually(lambda: not alive(pid), "the cancelled job's process is gone")
    slurm.wait_job(waiting, {"COMPLETED"})  # and the freed node runs the one that waited


def test_a_running_job_survives_a_controller_restart(slurm, tmp_path):
    beats = tmp_path / "beats"
    job = slurm.sbatch(
        f"#!/bin/sh\nwhile true; do echo beat >> {beats}; sleep 0.2; done\n", "-o", "/dev/null"
    )
    before = slurm.wait_job(job, {"RUNNING"})

    slurm.stop_controller()
    try:
        assert slurm.run("squeue", check=False).returncode != 0  # the controller is really down
        seen = beats.read_text().count("beat")
        eventually(lambda: beats.read_text().count("beat") > seen + 2, "the job keeps running")
    finally:
        slurm.start_controller()

    after = slurm.wait_job(job, {"RUNNING"})
    assert (after["JobId"], after["BatchHost"], after["StartTime"]) == (
        before["JobId"],
        before["BatchHost"],
        before["StartTime"],
    )
    seen = beats.read_text().count("beat")
    eventually(lambda: beats.read_text().count("beat") > seen, "the job still runs after the restart")


def test_a_second_cluster_with_more_cpus_runs_beside_and_tears_down_completely(slurm_cluster, tmp_path):
    pid_file = tmp_path / "pid"
    with support.slurm_cluster(cpus=8) as other:
        # more CPUs than the machine has, for tests that run many small jobs at once
        assert other.run("sinfo", "-h", "-o", "%c").stdout.strip() == "8"
        job = other.sbatch(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n", "-o", "/dev/null")
        other.wait_job(job, {"RUNNING"})
        pid = int(eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), "the job's pid"))
        root = other.root
        assert other._marked_pids()

    assert not root.exists()
    assert not alive(pid)
    marker = f"{MARKER}={root}".encode()
    leftovers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    leftovers.append(entry.name)
            except OSError:
                continue
    assert leftovers == []
    assert slurm_cluster.queued() == []  # the session cluster was not disturbed
