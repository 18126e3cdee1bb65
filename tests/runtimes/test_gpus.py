"""GPUs for local labs (runtimes/gpus.py, LocalRuntime): inventory, distinct GPUs for concurrent labs, a
refusal with the reason when too few are free, and what a lab's sandbox sees.

The device-node and cgroup plumbing runs everywhere on fake GPUs: character devices made with mknod in
a temporary folder with NVIDIA's numbers (major 195; nvidia-uvm a free major). No driver answers to them,
so opening one the sandbox may use fails with ENXIO ("no such device"), while one its cgroup forbids
fails with EPERM before any driver is asked. The test with a real GPU runs where /dev/nvidia0 exists.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from datalabs.runtimes import gpus
from datalabs.runtimes.base import StartError
from datalabs.runtimes.local import LocalRuntime
from datalabs.sandbox import cgroups
from datalabs.sandbox.policy import Policy
from tests.contracts.runtime_support import web_spec
from tests.labs.test_jupyter import admin
from tests.labs.test_restart import DEFINITION, LABAPP
from tests.live import live_process
from tests.runtimes.test_local import ask

UUIDS = {0: "GPU-00000000-aaaa-4000-8000-000000000000", 1: "GPU-11111111-bbbb-4000-8000-111111111111"}
UVM_MAJOR = 238  # unregistered on Linux hosts (see /proc/devices): nothing answers behind it


def make_node(path: Path, major: int, minor: int) -> Path:
    os.mknod(path, 0o666 | 0o020000, os.makedev(major, minor))
    path.chmod(0o666)  # mknod's mode goes through the umask
    return path


@pytest.fixture
def fake_gpus(tmp_path) -> Path:
    """A device root with two fake GPUs, nvidiactl and nvidia-uvm(-tools), and their UUIDs."""
    root = tmp_path / "gpu-dev"
    root.mkdir()
    for index in UUIDS:
        make_node(root / f"nvidia{index}", 195, index)
    make_node(root / "nvidiactl", 195, 255)
    make_node(root / "nvidia-uvm", UVM_MAJOR, 0)
    make_node(root / "nvidia-uvm-tools", UVM_MAJOR, 1)
    (root / gpus.UUIDS_FILE).write_text("".join(f"{i}, {u}\n" for i, u in UUIDS.items()))
    return root


def gpu_spec(tmp_path: Path, root: Path, gpu: int):
    return web_spec(tmp_path, gpu=gpu, policy=Policy(gpu_root=str(root)))


@pytest.fixture
def labs():
    """Start labs (LocalRuntime) and stop them all at the end, whatever happens."""
    started: list[LocalRuntime] = []

    async def start(spec):
        lab = LocalRuntime()
        started.append(lab)
        return lab, await lab.start(spec)

    yield start

    async def stop_all():
        for lab in started:
            await lab.stop(now=True)

    asyncio.run(stop_all())


async def sh(endpoint, cmd: str) -> str:
    result = await ask(endpoint, "/sh", cmd=cmd)
    assert result["code"] == 0, result
    return result["out"]


PROBE = (
    "python3 -c 'import os,sys\n"
    "for p in sys.argv[1:]:\n"
    "  try: os.close(os.open(p, os.O_RDWR)); print(p, 0)\n"
    "  except OSError as e: print(p, e.errno)' "
)


async def open_errors(endpoint, *paths: str) -> dict[str, int]:
    """errno of opening each path read-write inside the lab (0: it opened)."""
    out = await sh(endpoint, PROBE + " ".join(paths))
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}


# ---- inventory and allocation (no sandbox) ----------------------------------------------------------


def test_discovers_gpu_nodes_and_their_uuids(fake_gpus):
    found = gpus.discover(fake_gpus)
    assert [(g.index, g.node.name, g.uuid) for g in found] == [
        (0, "nvidia0", UUIDS[0]),
        (1, "nvidia1", UUIDS[1]),
    ]
    assert [p.name for p in gpus.control_nodes(fake_gpus)] == ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]


def test_what_is_not_a_gpu_node_is_not_counted(fake_gpus):
    (fake_gpus / "nvidia7").write_text("a regular file")
    (fake_gpus / "nvidia8").symlink_to(fake_gpus / "nvidia0")  # a link is no GPU of its own
    make_node(fake_gpus / "nvidia-caps9", 195, 9)
    (fake_gpus / "nvidiactl").unlink()
    (fake_gpus / "nvidiactl").write_text("not a device")
    assert [g.index for g in gpus.discover(fake_gpus)] == [0, 1]
    assert "nvidiactl" not in [p.name for p in gpus.control_nodes(fake_gpus)]
    assert gpus.discover(fake_gpus / "missing") == []


def test_concurrent_labs_get_distinct_gpus_and_the_rest_are_refused_with_the_reason(fake_gpus):
    allocator = gpus.Allocator()
    first = allocator.claim("lab-a", 1, fake_gpus)
    second = allocator.claim("lab-b", 1, fake_gpus)
    assert {first[0].index, second[0].index} == {0, 1}
    with pytest.raises(gpus.NotEnoughGpus, match="asks for 1 GPU; 0 of this server's 2 are free"):
        allocator.claim("lab-c", 1, fake_gpus)
    allocator.release("lab-a")
    with pytest.raises(gpus.NotEnoughGpus, match="asks for 2 GPUs; 1 of this server's 2 is free"):
        allocator.claim("lab-c", 2, fake_gpus)
    assert allocator.claim("lab-c", 1, fake_gpus) == first
    assert allocator.holders(fake_gpus) == {first[0].index: "lab-c", second[0].index: "lab-b"}


def test_a_host_without_gpus_refuses_and_says_it_has_none(tmp_path):
    with pytest.raises(gpus.NotEnoughGpus, match="asks for 1 GPU; this server has none"):
        gpus.Allocator().claim("lab", 1, tmp_path)
    assert gpus.shortfall(1, tmp_path) == "needs a GPU; this server has none"
    assert gpus.shortfall(0, tmp_path) == ""


def test_shortfall_counts_the_hosts_gpus(fake_gpus):
    assert gpus.shortfall(2, fake_gpus) == ""
    assert gpus.shortfall(3, fake_gpus) == "needs 3 GPUs; this server has 2"


def test_gpus_are_named_by_uuid_or_else_by_index(fake_gpus):
    found = gpus.discover(fake_gpus)
    plan = gpus.plan_for(found[1:], fake_gpus)
    assert plan.env["CUDA_VISIBLE_DEVICES"] == plan.env["NVIDIA_VISIBLE_DEVICES"] == UUIDS[1]
    assert plan.binds() == (
        (str(fake_gpus / "nvidia1"), "/dev/nvidia1"),
        (str(fake_gpus / "nvidiactl"), "/dev/nvidiactl"),
        (str(fake_gpus / "nvidia-uvm"), "/dev/nvidia-uvm"),
        (str(fake_gpus / "nvidia-uvm-tools"), "/dev/nvidia-uvm-tools"),
    )
    (fake_gpus / gpus.UUIDS_FILE).unlink()
    plan = gpus.plan_for(gpus.discover(fake_gpus)[1:], fake_gpus)
    assert (plan.env["NVIDIA_VISIBLE_DEVICES"], plan.env["CUDA_VISIBLE_DEVICES"]) == ("1", "0")
    assert gpus.plan_for([], fake_gpus) == gpus.GpuPlan()


def test_a_slurm_job_uses_the_gpus_slurm_gave_it(fake_gpus, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpus.slurm_job_gpus(fake_gpus) is None
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_JOB_GPUS", "1")
    assert [g.index for g in gpus.slurm_job_gpus(fake_gpus)] == [1]


# ---- in a real sandbox -------------------------------------------------------------------------------

# Under `make test` (root, DATALABS_REQUIRE_SLURM=1) a missing cgroup hierarchy is a failure, not a skip.
needs_cgroups = pytest.mark.skipif(
    not cgroups.available()[0] and os.environ.get("DATALABS_REQUIRE_SLURM") != "1",
    reason="no writable cgroup hierarchy here",
)


def test_a_gpu_lab_sees_only_its_own_gpu(tmp_path, fake_gpus, labs):
    async def scenario():
        lab, endpoint = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        (index,) = lab.get_state()["gpus"]
        other = 1 - index
        listed = (await sh(endpoint, "ls /dev")).split()
        assert f"nvidia{index}" in listed and f"nvidia{other}" not in listed
        assert {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"} <= set(listed)
        env = await ask(endpoint, "/env")
        assert env["CUDA_VISIBLE_DEVICES"] == env["NVIDIA_VISIBLE_DEVICES"] == UUIDS[index]
        # Its own nodes open as far as the kernel goes (no driver behind fake nodes: ENXIO), not EPERM.
        errors = await open_errors(
            endpoint, f"/dev/nvidia{index}", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/null"
        )
        assert errors == {f"/dev/nvidia{index}": errno.ENXIO, "/dev/nvidiactl": errno.ENXIO,
                          "/dev/nvidia-uvm": errno.ENXIO, "/dev/null": 0}  # fmt: skip

    asyncio.run(scenario())


def test_a_lab_without_gpus_sees_no_gpu_node(tmp_path, fake_gpus, labs):
    async def scenario():
        lab, endpoint = await labs(gpu_spec(tmp_path, fake_gpus, 0))
        assert not [n for n in (await sh(endpoint, "ls /dev")).split() if n.startswith("nvidia")]
        env = await ask(endpoint, "/env")
        assert "CUDA_VISIBLE_DEVICES" not in env and lab.get_state()["gpus"] == []
        assert gpus.ALLOCATOR.holders(fake_gpus) == {}

    asyncio.run(scenario())


def test_two_labs_get_distinct_gpus_and_a_third_is_refused_with_the_reason(tmp_path, fake_gpus, labs):
    async def scenario():
        first, a = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        second, b = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        held = {first.get_state()["gpus"][0], second.get_state()["gpus"][0]}
        assert held == {0, 1}
        for endpoint, lab in ((a, first), (b, second)):
            nodes = [
                n for n in (await sh(endpoint, "ls /dev")).split() if n[:6] == "nvidia" and n[6:].isdigit()
            ]
            assert nodes == [f"nvidia{lab.get_state()['gpus'][0]}"]
        third = gpu_spec(tmp_path, fake_gpus, 1)
        with pytest.raises(StartError, match="asks for 1 GPU; 0 of this server's 2 are free"):
            await labs(third)
        await first.stop(now=True)  # its GPU is free again
        again, _ = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        assert again.get_state()["gpus"] == first.get_state()["gpus"]

    asyncio.run(scenario())


def test_a_lab_asking_for_more_gpus_than_free_is_refused_and_holds_none(tmp_path, fake_gpus, labs):
    async def scenario():
        await labs(gpu_spec(tmp_path, fake_gpus, 1))
        with pytest.raises(StartError, match="asks for 2 GPUs; 1 of this server's 2 is free"):
            await labs(gpu_spec(tmp_path, fake_gpus, 2))
        assert len(gpus.ALLOCATOR.holders(fake_gpus)) == 1

    asyncio.run(scenario())


def test_a_restarted_platform_keeps_a_running_labs_gpu(tmp_path, fake_gpus, labs):
    async def scenario():
        lab, _ = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        state = json.loads(json.dumps(lab.get_state()))  # as stored in the DB
        gpus.ALLOCATOR.release(state["gpu_holder"])  # what a new platform process starts from
        reattached = LocalRuntime()
        reattached.load_state(state)
        assert gpus.ALLOCATOR.holders(fake_gpus) == {state["gpus"][0]: state["gpu_holder"]}
        with pytest.raises(StartError, match="asks for 2 GPUs; 1 of this server's 2 is free"):
            await labs(gpu_spec(tmp_path, fake_gpus, 2))
        await reattached.stop(now=True)
        assert gpus.ALLOCATOR.holders(fake_gpus) == {}

    asyncio.run(scenario())


@needs_cgroups
def test_the_labs_cgroup_refuses_gpus_it_was_not_given(tmp_path, fake_gpus, labs):
    """Whatever path a node is reached by: a process in the lab's cgroup opening the other GPU's node
    (or making one) is refused by the kernel (EPERM), its own GPU's node is not."""

    async def scenario():
        lab, _ = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        (index,) = lab.get_state()["gpus"]
        procs = lab._prepared.cgroup.procs_files
        joins = "".join(f"echo $$ > {p} && " for p in procs)
        probe = PROBE + f"{fake_gpus}/nvidia{index} {fake_gpus}/nvidia{1 - index} {fake_gpus}/nvidiactl"
        mknod = f"mknod {tmp_path}/made c 195 {1 - index} 2>&1; echo mknod=$?"
        done = subprocess.run(["sh", "-c", f"{joins}{probe}; {mknod}"], capture_output=True, text=True)
        lines = done.stdout.splitlines()
        assert lines[:3] == [
            f"{fake_gpus}/nvidia{index} {errno.ENXIO}",
            f"{fake_gpus}/nvidia{1 - index} {errno.EPERM}",
            f"{fake_gpus}/nvidiactl {errno.ENXIO}",
        ], done
        assert lines[-1] == "mknod=1" and not (tmp_path / "made").exists()

    asyncio.run(scenario())


def test_a_gpu_lab_without_a_cgroup_says_its_device_rule_is_missing(tmp_path, fake_gpus, labs, monkeypatch):
    """Where no cgroup can be made (an unprivileged platform), the lab still sees only its GPU, and its
    progress says that no device rule backs this: never a pretended isolation."""
    monkeypatch.setattr(cgroups, "available", lambda: (False, "cgroup v1 is not writable here (test)"))

    async def scenario():
        lab, endpoint = await labs(gpu_spec(tmp_path, fake_gpus, 1))
        (index,) = lab.get_state()["gpus"]
        assert lab._prepared.cgroup is None
        listed = (await sh(endpoint, "ls /dev")).split()
        assert [n for n in listed if n.startswith("nvidia") and n[6:].isdigit()] == [f"nvidia{index}"]
        said = " | ".join(e.message for e in lab._events.events)
        assert "NO cgroup device rule backs it: cgroup v1 is not writable here (test)" in said

    asyncio.run(scenario())


# ---- with a real GPU ---------------------------------------------------------------------------------


def _no_real_gpu() -> str:
    if not Path("/dev/nvidia0").exists():
        return "no GPU on this host (/dev/nvidia0 is missing): the real-GPU isolation test cannot run"
    if shutil.which("nvidia-smi") is None:
        return "this host has a GPU but not the NVIDIA driver's nvidia-smi"
    return ""


@pytest.mark.skipif(bool(_no_real_gpu()), reason=_no_real_gpu() or "-")
def test_a_lab_on_a_real_gpu_sees_exactly_its_gpu_by_uuid(tmp_path, labs):
    async def scenario():
        lab, endpoint = await labs(gpu_spec(tmp_path, gpus.DEFAULT_ROOT, 1))
        (index,) = lab.get_state()["gpus"]
        uuid = {g.index: g.uuid for g in gpus.discover()}[index]
        listed = await sh(endpoint, "env -u CUDA_VISIBLE_DEVICES -u NVIDIA_VISIBLE_DEVICES nvidia-smi -L")
        assert len(listed.splitlines()) == 1 and uuid in listed

    asyncio.run(scenario())


# ---- through the platform: launch, refusal, kill -9 and re-attach ------------------------------------

GPU_DEFINITION = DEFINITION + "  resources:\n    maximum: {cpu: 2, memory: 4G, gpu: 2}\n"


def wait_started(client: httpx.Client, lab_id: str) -> dict:
    for _ in range(1200):
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in ("running", "failed"):
            return lab
        time.sleep(0.05)
    raise AssertionError(f"lab {lab_id} neither started nor failed")


def launch(client: httpx.Client, gpu: int) -> dict:
    made = client.post("/api/v1/labs", json={"datalab": "mini", "resources": {"gpu": gpu}})
    assert made.status_code == 202, made.text
    return wait_started(client, made.json()["id"])


def refused(client: httpx.Client, gpu: int) -> str:
    """A launch refused at once (labs.service counts the GPUs active labs hold), nothing recorded."""
    made = client.post("/api/v1/labs", json={"datalab": "mini", "resources": {"gpu": gpu}})
    assert made.status_code == 409 and made.json()["error"]["code"] == "no_free_gpu", made.text
    return made.json()["error"]["message"]


def gpu_nodes(client: httpx.Client, lab_id: str) -> list[str]:
    listed = client.get(f"/datalabs/{lab_id}/sh", params={"cmd": "ls /dev"}).json()["out"].split()
    return [n for n in listed if n.startswith("nvidia") and n[6:].isdigit()]


@pytest.mark.slow
def test_gpus_through_the_platform_survive_its_kill_and_restart(tmp_path, fake_gpus):
    home, catalogue = tmp_path / "home", tmp_path / "defs"
    (catalogue / "mini").mkdir(parents=True)
    (catalogue / "mini" / "datalab-meta.yml").write_text(GPU_DEFINITION)
    shutil.copy(LABAPP, catalogue / "mini" / "labapp.py")
    home.mkdir()
    admin(home, "create-user", "ada", "--password", "long-enough-pw")
    token = admin(home, "create-token", "ada")
    env = {
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(catalogue)]),
        "DATALABS_LABS__GPU_DEVICE_ROOT": str(fake_gpus),
        "DATALABS_LABS__MAX_RUNNING_PER_USER": "5",
    }
    made: list[str] = []

    def client(url: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    try:
        with live_process(home, env) as (url, server):
            ada = client(url)
            first, second = launch(ada, 1), launch(ada, 1)
            made += [first["id"], second["id"]]
            assert first["state"] == second["state"] == "running", (first, second)
            nodes = {lab["id"]: gpu_nodes(ada, lab["id"]) for lab in (first, second)}
            assert sorted(nodes.values()) == [["nvidia0"], ["nvidia1"]]  # one each, never the same
            assert refused(ada, 1) == "this lab asks for 1 GPU; 0 of this server's 2 are free"
            server.kill()  # kill -9: nothing is released
            server.wait()
        with live_process(home, env) as (url, _):
            ada = client(url)
            assert {lab["id"]: gpu_nodes(ada, lab["id"]) for lab in (first, second)} == nodes  # re-attached
            assert refused(ada, 1) == "this lab asks for 1 GPU; 0 of this server's 2 are free"
            assert ada.post(f"/api/v1/labs/{first['id']}/stop").status_code in (200, 202)
            for _ in range(600):
                if ada.get(f"/api/v1/labs/{first['id']}").json()["state"] == "stopped":
                    break
                time.sleep(0.05)
            after = launch(ada, 1)
            made.append(after["id"])
            assert after["state"] == "running" and gpu_nodes(ada, after["id"]) == nodes[first["id"]]
    finally:
        with live_process(home, env) as (url, _), client(url) as ada:
            for lab_id in made:
                ada.delete(f"/api/v1/labs/{lab_id}")


def _no_torch_gpu() -> str:
    import importlib.util

    if not Path("/dev/nvidia0").exists():
        return "no GPU on this host (/dev/nvidia0 is missing): the PyTorch isolation test cannot run"
    if importlib.util.find_spec("torch") is None:
        return "this host has a GPU but PyTorch is not installed in the platform's environment"
    return ""


@pytest.mark.skipif(bool(_no_torch_gpu()), reason=_no_torch_gpu() or "-")
def test_torch_in_a_lab_sees_exactly_its_gpu_by_uuid(tmp_path, labs):
    async def scenario():
        lab, endpoint = await labs(gpu_spec(tmp_path, gpus.DEFAULT_ROOT, 1))
        (index,) = lab.get_state()["gpus"]
        uuid = {g.index: g.uuid for g in gpus.discover()}[index]
        code = "import torch; print(torch.cuda.device_count(), torch.cuda.get_device_properties(0).uuid)"
        out = await sh(endpoint, f"env -u CUDA_VISIBLE_DEVICES -u NVIDIA_VISIBLE_DEVICES python3 -c '{code}'")
        count, seen = out.split()
        assert (count, f"GPU-{seen}") == ("1", uuid)

    asyncio.run(scenario())
