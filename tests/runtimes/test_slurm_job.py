"""The node side of a Slurm lab: the LabSpec travels as JSON (every field, nested ones included) and the
lab's end becomes the job's exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from datalabs.runtimes.base import DesktopApp, LabSpec, Mount
from datalabs.runtimes.slurm_job import exit_status, main, spec_from_json, spec_to_json
from datalabs.sandbox.bwrap import ApiAccess
from datalabs.sandbox.identity import Identity
from datalabs.sandbox.policy import Policy


def full_spec() -> LabSpec:
    return LabSpec(
        lab_id="abc123",
        owner="ada",
        kind="desktop",
        command=["ds9", "$(id)"],
        runtime_dir=Path("/srv/run/abc123"),
        log_path=Path("/srv/labs/abc123/lab.log"),
        env={"A": "1\n2"},
        mounts=[Mount(Path("/srv/ws/ada"), "/media/home/my_workspace", False, Path("/srv/ws"))],
        cpu=1.5,
        memory_bytes=3 * 2**30,
        gpu=1,
        secret="s3cret",
        secret_headers={"Authorization": "token s3cret"},
        apps=(DesktopApp("DS9", ("ds9", "-samp"), autostart=False),),
        samp_hub=True,
        policy=Policy(
            identity=Identity(2001, 2001, (3001,), "ada", ("optics",), "/media/home/my_workspace"),
            network="outbound",
            api=ApiAccess(Path("/srv/api"), 8900),
            pids_max=512,
            nproc=4096,
            blocked_networks=("10.0.0.0/8",),
            allowed_networks=("10.1.0.0/16",),
        ),
    )


def test_a_spec_survives_the_trip_to_the_node_field_for_field():
    spec = full_spec()
    assert spec_from_json(spec_to_json(spec)) == spec
    plain = LabSpec("x", "bo", "web", ["lab"], Path("/r"), Path("/l/lab.log"))
    assert spec_from_json(spec_to_json(plain)) == plain


@pytest.mark.parametrize(("code", "status"), [(0, 0), (3, 3), (-15, 143), (-9, 137), (None, 1), (300, 255)])
def test_the_labs_end_becomes_the_jobs_exit_status(code, status):
    assert exit_status(code) == status


def test_an_unreadable_spec_ends_the_job_with_its_reason(tmp_path, capsys):
    (tmp_path / "spec.json").write_text('{"lab_id": 1}')
    assert main([str(tmp_path / "spec.json")]) == 1
    assert capsys.readouterr().err.startswith("datalabs: cannot read the lab's spec")
    assert main([]) == 2
