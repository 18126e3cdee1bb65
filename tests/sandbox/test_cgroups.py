"""sandbox/cgroups.py: a cgroup that cannot be removed yet (its killed processes are still exiting) is
removed later, not leaked."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from datalabs.sandbox import cgroups

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not cgroups.pids_available()[0], reason="needs root and a pids cgroup"
)


def test_a_cgroup_still_busy_is_removed_at_the_next_removal():
    held = cgroups.LabCgroup.create(f"t-held-{uuid.uuid4().hex[:8]}", pids=16)
    procs = held.procs_files[0]
    child = subprocess.Popen(
        ["sh", "-c", f"echo $$ > {procs} && echo in && exec sleep 60"], stdout=subprocess.PIPE
    )
    assert child.stdout.readline() == b"in\n"
    held.remove()  # as after a kill whose processes have not finished exiting
    assert all(Path(d).is_dir() for d in held.dirs)  # cannot go yet
    held.kill_all()
    child.wait()
    other = cgroups.LabCgroup.create(f"t-other-{uuid.uuid4().hex[:8]}", pids=16)
    other.remove()
    assert not any(Path(d).exists() for d in (*held.dirs, *other.dirs))
