"""Reading squeue and sinfo: states, reasons, raw wait statuses, what counts as ended, and what a cluster
can give now (its capacity, read from the real cluster too). The batched query against a real
controller, up and down, is in test_slurm_runtime.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from datalabs.runtimes import slurm_queue
from datalabs.runtimes.slurm_queue import JobQueue, JobStatus, parse_squeue

OUTPUT = """\
12                      PENDING                 0           n/a                 Resources
13                      RUNNING                 0           localhost           None
14                      FAILED                  768         localhost           NonZeroExitCode
15                      CANCELLED+              15          localhost           None
16    PENDING    0    n/a    ReqNodeNotAvail, UnavailableNodes:n1
"""


def test_squeue_lines_become_statuses():
    jobs = parse_squeue(OUTPUT + "garbage\n\n")
    assert sorted(jobs) == ["12", "13", "14", "15", "16"]
    assert jobs["12"] == JobStatus("12", "PENDING", "Resources", 0, "")
    assert jobs["13"].host == "localhost" and jobs["13"].reason == ""
    assert jobs["15"].state == "CANCELLED"
    assert jobs["16"].reason == "ReqNodeNotAvail, UnavailableNodes:n1"


@pytest.mark.parametrize(
    ("status", "pending", "ended", "finished", "code"),
    [
        (JobStatus("1", "PENDING", "Priority", 0), True, False, False, None),
        (JobStatus("1", "RUNNING"), False, False, False, None),
        (JobStatus("1", "COMPLETING", wait_status=0), False, True, False, -1),
        (JobStatus("1", "COMPLETED", wait_status=0), False, True, True, 0),
        (JobStatus("1", "FAILED", wait_status=768), False, True, True, 3),
        (JobStatus("1", "CANCELLED", wait_status=15), False, True, True, -15),
        (JobStatus("1", "TIMEOUT", wait_status=0), False, True, True, -1),
        (JobStatus("1", "GONE"), False, True, True, -1),
    ],
)
def test_states_map_to_starting_running_and_ended_with_a_code(status, pending, ended, finished, code):
    assert (status.pending, status.ended, status.finished) == (pending, ended, finished)
    if ended:
        assert status.exit_code() == code


def test_a_missing_squeue_keeps_what_was_known(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue at all: as unreachable as a controller gets
    queue = JobQueue(str(tmp_path / "slurm.conf"))
    queue.known["7"] = JobStatus("7", "RUNNING")
    assert asyncio.run(queue.status("7", fresh=True)) == JobStatus("7", "RUNNING")
    assert "squeue" in queue.last_error and queue.queries == 1


def fake_squeue(tmp_path, monkeypatch, state: str = "RUNNING") -> Path:
    """A `squeue` on PATH that lists every job it is asked about as `state` and logs each call."""
    calls = tmp_path / "calls"
    script = tmp_path / "squeue"
    script.write_text(
        "#!/bin/sh\n"
        f"echo x >> {calls}\n"
        'while [ "$1" != "-j" ]; do shift; done\n'
        f'for id in $(echo "$2" | tr , " "); do echo "$id {state} 0 node1 None"; done\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return calls


def test_a_restarted_platforms_labs_are_asked_for_in_one_squeue(tmp_path, monkeypatch):
    from datalabs.runtimes.slurm import SlurmRuntime

    calls = fake_squeue(tmp_path, monkeypatch)
    conf = str(tmp_path / "slurm.conf")
    monkeypatch.setattr(JobQueue, "_queues", {})
    backends = []
    for job in range(100, 300):
        backend = SlurmRuntime()
        backend.load_state({"job_id": str(job), "slurm_conf": conf, "ready": True, "socket": "/x"})
        backends.append(backend)

    async def poll_in_turn():  # as the culler does: one lab after the other
        return [await backend.poll() for backend in backends]

    assert asyncio.run(poll_in_turn()) == [None] * 200
    assert len(calls.read_text().split()) == 1 and JobQueue.of(conf).queries == 1


def test_a_status_older_than_stale_waits_for_a_squeue(tmp_path, monkeypatch):
    calls = fake_squeue(tmp_path, monkeypatch, state="CANCELLED")
    queue = JobQueue(str(tmp_path / "slurm.conf"))
    queue.known["7"], queue.tried_at = JobStatus("7", "RUNNING"), 0.0  # long ago: the culler's last pass
    assert asyncio.run(queue.status("7")).state == "CANCELLED"  # today's answer, not the last pass's
    assert len(calls.read_text().split()) == 1


def test_sinfo_lines_become_a_capacity_counting_each_node_once():
    sinfo = (
        "node1    2/6/0/8    64000    16000    gpu:a100:2(S:0-1)\n"
        "node1    2/6/0/8    64000    16000    gpu:a100:2(S:0-1)\n"  # again, in a second partition
        "node2    4/0/0/4    32000    32000    (null)\n"
        "garbage\n"
    )
    found = slurm_queue._parse_capacity(sinfo, queued=3)
    assert (found.cpus_idle, found.cpus_total, found.gpus_total, found.queued) == (6, 12, 2, 3)
    assert (found.memory_free, found.memory_total) == (48000 * 2**20, 96000 * 2**20)
    assert found.summary == "6 of 12 CPUs free · 50 of 101 GB memory free · 2 GPUs · 3 jobs queued"


def test_a_cluster_that_does_not_answer_has_an_unknown_capacity_without_its_paths(tmp_path):
    found = slurm_queue.capacity(str(tmp_path / "no-such-slurm.conf"), "debug")
    assert found.cpus_total is None and found.summary == "the cluster did not say what is free right now"


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_the_capacity_of_the_real_cluster_follows_its_jobs(slurm_cluster, monkeypatch):
    monkeypatch.setattr(slurm_queue, "_capacity", {})
    conf = str(slurm_cluster.conf)
    idle = slurm_queue.capacity(conf, "")
    assert (idle.cpus_idle, idle.cpus_total, idle.gpus_total, idle.queued) == (
        slurm_cluster.cpus, slurm_cluster.cpus, 2, 0
    )  # fmt: skip
    assert idle.memory_total == slurm_cluster.memory_mib * 2**20 == idle.memory_free
    script = "#!/bin/sh\nsleep 300\n"
    blocker = slurm_cluster.sbatch(script, f"--cpus-per-task={slurm_cluster.cpus}", "--output=/dev/null")
    slurm_cluster.wait_job(blocker, {"RUNNING"})
    slurm_cluster.sbatch(script, "--output=/dev/null")
    assert slurm_queue.capacity(conf, "") is idle  # cached: a page view does not run sinfo
    monkeypatch.setattr(slurm_queue, "_capacity", {})
    busy = slurm_queue.capacity(conf, "gpu")
    assert (busy.cpus_idle, busy.queued) == (0, 0)  # the waiting job is in the default partition
    assert slurm_queue.capacity(conf, "debug").queued == 1
    slurm_cluster.cancel_all()
