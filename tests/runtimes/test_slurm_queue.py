"""Reading squeue: states, reasons, raw wait statuses, and what counts as ended (no cluster needed; the
batched query against a real controller, up and down, is in test_slurm_runtime.py)."""

from __future__ import annotations

import asyncio

import pytest

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
