"""Finding 7 of issue 13: quotas must hold for what a lab writes, not only for the platform's uploads.

(a) With project quotas (ext4 mounted with prjquota, here a loop-mounted image as the workspaces'
    filesystem; in a Debian kernel under QEMU when this kernel has no ext4 quotas), a real bubblewrap
    lab writing 100 MB with a 30 MB quota is stopped by the kernel at about 30 MB with EDQUOT, and the
    platform reads the usage from the quota accounting.
(b) Without them, the platform's check: a lab that writes past its quota through a real `datalabs serve`
    finds its workspace read-only (the program that held a file open for writing is stopped), the user
    is told, the platform refuses uploads, and once files are deleted through the platform the lab can
    write again; bubblewrap's nosuid/nodev survive both remounts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from datalabs.config import Settings
from datalabs.runtimes.base import Mount
from datalabs.runtimes.local import LocalRuntime
from tests.contracts.runtime_support import web_spec
from tests.labs.test_jupyter import admin
from tests.live import live_server
from tests.sandbox.loopfs import EXT4_PROJECT, here_or_in_a_vm, loop_mount, needs_ext4_quotas
from tests.workspaces.test_lab_mounts import wait_running

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
MB = 10**6
DEFINITION = """\
title: Writer
version: "1.0"
runtime:
  kind: web
  command: [python3, /media/notebooks/writerlab.py, "{socket}", "{secret}"]
  secret_header: "X-Lab-Secret: {secret}"
  ready_path: "{base_url}"
"""


async def ask(endpoint, route, **params):
    transport = httpx.AsyncHTTPTransport(uds=endpoint.socket)
    async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=120) as client:
        return (await client.get(route, params=params, headers=endpoint.headers)).json()


@needs_ext4_quotas
def test_project_quota_stops_a_lab_at_its_quota(request, tmp_path):
    from datalabs.sandbox import quota  # here: (b) must fail on a platform without the module by behaviour

    if not here_or_in_a_vm(request, tmp_path):
        return  # it ran in a kernel with ext4 quotas (this one has none), and passed
    with loop_mount(tmp_path / "workspaces.img", tmp_path / "workspaces", EXT4_PROJECT):
        settings = Settings(home=tmp_path, workspaces={"user_quota": 30 * MB})
        spec = web_spec(tmp_path)  # makes workspaces/users/ada (the lab's uid owns it) on the image
        root = tmp_path / "workspaces" / "users" / "ada"
        found = quota.enforcement(settings)
        assert found.project, found.how
        quota.keep(settings, "user:ada", root, 30 * MB)
        spec = dataclasses.replace(
            spec,
            command=[sys.executable, "/media/tools/writerlab.py", "/run/datalab/lab.sock", spec.secret],
            mounts=[*spec.mounts, Mount(HERE, "/media/tools", readonly=True)],
        )
        lab = LocalRuntime()

        async def scenario():
            endpoint = await lab.start(spec)
            try:
                return await ask(endpoint, "/fill", path="/media/home/my_workspace/big.bin", mb=100)
            finally:
                await lab.stop(now=True)

        wrote = asyncio.run(scenario())
        assert wrote["errno"] == errno.EDQUOT, wrote
        assert 25 * MB <= wrote["written"] <= 31 * MB, wrote
        assert (root / "big.bin").stat().st_size == wrote["written"]
        used = quota.measured(root)
        assert used is not None and abs(used - wrote["written"]) < 2 * MB


def _until(what, check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def _workspace_mount(lines: list[str]) -> set[str]:
    line = next(x for x in lines if x.split(" ")[4] == "/media/home/my_workspace")
    return set(line.split(" ")[5].split(","))


@pytest.mark.skipif(os.geteuid() != 0, reason="the platform's check remounts inside labs only as root")
def test_the_platforms_check_makes_a_workspace_read_only_past_its_quota(tmp_path):
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "writer").mkdir(parents=True)
    (catalogue / "writer" / "datalab-meta.yml").write_text(DEFINITION)
    shutil.copy(HERE / "writerlab.py", catalogue / "writer" / "writerlab.py")
    home.mkdir()
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    env = {
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(catalogue)]),
        "DATALABS_WORKSPACES__USER_QUOTA": "30MB",
        "DATALABS_WORKSPACES__ENFORCEMENT": "check",  # whatever this host's filesystem offers
        "DATALABS_LABS__CULL_INTERVAL": "1",
    }
    ws = "/media/home/my_workspace"
    with live_server(home, env) as url:
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        r = c.post("/api/v1/labs", json={"datalab": "writer"})
        assert r.status_code == 202, r.text
        lab_id = r.json()["id"]
        try:
            wait_running(c, lab_id)

            def lab(route: str, **params) -> dict:
                return c.get(f"/datalabs/{lab_id}/{route}", params=params).json()

            assert lab("fill", path=f"{ws}/a.bin", mb=20)["errno"] is None
            grower = lab("grow", path=f"{ws}/grow.bin")["pid"]  # keeps writing, file held open

            _until(
                "the lab's workspace is read-only",
                lambda: lab("write", path=f"{ws}/p")["errno"] == errno.EROFS,
            )
            options = _workspace_mount(lab("mounts")["lines"])
            assert {"ro", "nosuid", "nodev"} <= options
            assert not lab("alive", pid=grower)["alive"]  # it held grow.bin open for writing: stopped
            stopped_at = (home / "workspaces/users/ada/grow.bin").stat().st_size
            time.sleep(1.5)
            assert (home / "workspaces/users/ada/grow.bin").stat().st_size == stopped_at
            notices = [n["text"] for n in c.get("/api/v1/notices").json()]
            assert any("read-only in your running labs" in n for n in notices), notices
            assert any("stopped programs" in n for n in notices), notices
            assert c.put("/api/v1/workspaces/me/files/more.bin", content=b"x" * 1000).status_code == 413

            # Deleting through the platform brings it under the quota: the lab may write again.
            assert c.delete("/api/v1/workspaces/me/files/grow.bin").status_code == 204
            _until(
                "the lab's workspace is writable again", lambda: lab("write", path=f"{ws}/p")["errno"] is None
            )
            options = _workspace_mount(lab("mounts")["lines"])
            assert "rw" in options and {"nosuid", "nodev"} <= options
            notices = [n["text"] for n in c.get("/api/v1/notices").json()]
            assert any("within its quota again" in n for n in notices), notices
        finally:
            c.post(f"/api/v1/labs/{lab_id}/stop", json={})
