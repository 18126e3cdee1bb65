"""A lab asking for more GPUs than this server has free is refused at launch, with the reason, before
anything is recorded (the runtime's allocator, tests/runtimes/test_gpus.py, stays the guard at start)."""

from __future__ import annotations

import pytest

from datalabs.config import Settings
from tests.runtimes.test_gpus import fake_gpus  # noqa: F401 (two fake GPUs under tmp_path)
from tests.web.labs_support import _write

GPU_LAB = """\
title: GPU Lab
version: "1.0"
runtime:
  kind: web
  command: [fake-lab]
  resources:
    default: {cpu: 1, memory: 1G, gpu: 1}
    maximum: {cpu: 2, memory: 4G, gpu: 2}
"""


@pytest.fixture
def settings(tmp_path, db_url, fake_gpus):  # noqa: F811
    _write(tmp_path / "defs" / "gpulab", GPU_LAB)
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        catalogue={"dirs": [tmp_path / "defs"], "builtin": False},
        labs={
            "backend": "datalabs.runtimes.testing:FakeRuntime",
            "max_running_per_user": 5,
            "gpu_device_root": str(fake_gpus),
        },
        clusters=[{"name": "local"}, {"name": "hpc", "backend": "slurm"}],
    )


def test_more_gpus_than_are_free_are_refused_at_launch(people):
    people.user("ada")
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    first = ada.post("/api/v1/labs", json={"datalab": "gpulab"})
    assert first.status_code == 202, first.text

    r = bob.post("/api/v1/labs", json={"datalab": "gpulab", "resources": {"gpu": 2}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_free_gpu"
    assert r.json()["error"]["message"] == "this lab asks for 2 GPUs; 1 of this server's 2 is free"
    assert bob.get("/api/v1/labs").json() == []  # nothing recorded
    assert bob.post("/api/v1/labs", json={"datalab": "gpulab"}).status_code == 202  # the one left
    r = ada.post("/api/v1/labs", json={"datalab": "gpulab"})
    assert r.json()["error"]["message"] == "this lab asks for 1 GPU; 0 of this server's 2 are free"

    # Not this server's GPUs: a Slurm cluster places its own (the request is its scheduler's to judge).
    assert ada.post("/api/v1/labs", json={"datalab": "gpulab", "cluster": "hpc"}).status_code == 202
    # GPUs come back when a lab ends.
    assert ada.post(f"/api/v1/labs/{first.json()['id']}/stop", json={}).status_code == 200
    assert ada.post("/api/v1/labs", json={"datalab": "gpulab"}).status_code == 202
