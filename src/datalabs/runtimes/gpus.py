"""The GPUs of this host and which lab holds which: NVIDIA GPUs found as /dev/nvidiaN device nodes.

A lab asking for N GPUs is given N GPUs no other running lab holds (`claim`), or refused with the reason
("this lab asks for 2 GPUs; 1 of this server's 2 is free"). The claims live in this process (the lab
manager is the one place that starts local labs) and every lab's claim is part of its persisted state,
so a restarted platform takes back the running labs' GPUs (`reclaim`) before it starts new ones.

What a lab with GPUs gets (`GpuPlan`): its /dev/nvidiaN nodes and the control nodes (nvidiactl,
nvidia-uvm, nvidia-uvm-tools, nvidia-modeset where present) in its fresh /dev, a cgroup device rule
allowing exactly those (sandbox/devices.py), the driver's libraries read-only, and CUDA_VISIBLE_DEVICES /
NVIDIA_VISIBLE_DEVICES naming its GPUs by UUID when the driver tells them (`nvidia-smi`).

Where the nodes are looked for is `[labs] gpu_device_root` (default /dev; the tests point it at fake
nodes made with mknod). UUIDs come from `nvidia-smi` for /dev, and for another root from the file
`nvidia-uuids.csv` in it, in nvidia-smi's `--query-gpu=index,uuid --format=csv,noheader` form.

Inside a Slurm job (SLURM_JOB_ID set: runtimes/slurm_job.py starts the lab there) Slurm has placed the
GPUs: the lab gets the nodes of the job's GPUs (SLURM_JOB_GPUS) that exist, and nothing is claimed here.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from datalabs.sandbox import devices
from datalabs.sandbox.bwrap import SYSTEM_DIRS, Mount

DEFAULT_ROOT = Path("/dev")
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
UUIDS_FILE = "nvidia-uuids.csv"
DRIVER_LIBRARY = re.compile(r"^\s*(lib(?:cuda|nvidia)[\w.+-]*\.so[\w.]*) \(.*\) => (/\S+)$")
_NODE = re.compile(r"^nvidia(\d+)$")


class NotEnoughGpus(Exception):
    """The GPUs asked for are not free; the message says how many are."""


@dataclass(frozen=True)
class Gpu:
    index: int  # N of /dev/nvidiaN
    node: Path  # its device node on the host
    uuid: str = ""  # "GPU-..." when the driver says (nvidia-smi), else ""


def discover(root: Path = DEFAULT_ROOT) -> list[Gpu]:
    """The GPUs whose nvidiaN character devices are in `root`, by index."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = []
    for name in names:
        match = _NODE.match(name)
        if match and _is_char_device(root / name):
            found.append((int(match[1]), root / name))
    uuids = _uuids(root) if found else {}
    return [Gpu(index, node, uuids.get(index, "")) for index, node in sorted(found)]


def control_nodes(root: Path) -> list[Path]:
    """The driver's shared nodes present in `root` (every process using CUDA opens nvidiactl and uvm)."""
    return [root / name for name in CONTROL_NODES if _is_char_device(root / name)]


def _is_char_device(path: Path) -> bool:
    try:
        return stat.S_ISCHR(os.lstat(path).st_mode)  # a link is not a GPU of this host
    except OSError:
        return False


def _uuids(root: Path) -> dict[int, str]:
    if root == DEFAULT_ROOT:
        text = _nvidia_smi_uuids()
    else:
        try:
            text = (root / UUIDS_FILE).read_text()
        except OSError:
            text = ""
    uuids = {}
    for line in text.splitlines():
        index, _, uuid = (part.strip() for part in line.partition(","))
        if index.isdigit() and uuid.startswith(("GPU-", "MIG-")):
            uuids[int(index)] = uuid
    return uuids


@functools.cache
def _nvidia_smi_uuids() -> str:
    """nvidia-smi's index,uuid list (asked once: it takes a second and GPUs are not hot-plugged)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        query = [smi, "--query-gpu=index,uuid", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


@functools.cache
def driver_libraries() -> tuple[str, ...]:
    """The driver's user-space libraries (libcuda*, libnvidia*) in the linker cache that lie outside the
    system folders every sandbox already sees read-only: these must be bound in as well."""
    try:
        done = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ()
    paths = {m[2] for line in done.stdout.splitlines() if (m := DRIVER_LIBRARY.match(line))}
    outside = {p for p in paths if not any(p.startswith(d + "/") for d in SYSTEM_DIRS)}
    return tuple(sorted(p for p in outside if os.path.isfile(p)))


# ---- what a lab is given -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuPlan:
    """A lab's GPUs and what its sandbox needs for them (empty for a lab without GPUs)."""

    gpus: tuple[Gpu, ...] = ()
    nodes: tuple[Path, ...] = ()  # device nodes bound into the lab's /dev under their own names
    libraries: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def device_rules(self) -> tuple[devices.DeviceRule, ...]:
        """The cgroup device rule: the nodes of a fresh /dev and this plan's, nothing else."""
        return (*devices.BASE_RULES, *devices.rules_for(self.nodes))

    def binds(self) -> tuple[tuple[str, str], ...]:
        """(host node, path in the sandbox) of each node."""
        return tuple((str(node), f"/dev/{node.name}") for node in self.nodes)


def plan_for(gpus: list[Gpu], root: Path) -> GpuPlan:
    if not gpus:
        return GpuPlan()
    uuids = [g.uuid for g in gpus]
    visible = ",".join(uuids) if all(uuids) else None
    env = {
        # By UUID when known; else NVIDIA's host indexes, and CUDA counts only the devices it can open,
        # which in this sandbox are the lab's own: 0..n-1.
        "NVIDIA_VISIBLE_DEVICES": visible or ",".join(str(g.index) for g in gpus),
        "CUDA_VISIBLE_DEVICES": visible or ",".join(str(n) for n in range(len(gpus))),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    libs = tuple(Mount(Path(p), p, readonly=True) for p in driver_libraries()) if root == DEFAULT_ROOT else ()
    nodes = (*(g.node for g in gpus), *control_nodes(root))
    return GpuPlan(tuple(gpus), nodes, libs, env)


# ---- who holds which -------------------------------------------------------------------------------


class Allocator:
    """Which lab holds which GPU of a device root, in this process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int], str] = {}  # (root, index) -> lab id

    def claim(self, lab_id: str, count: int, root: Path = DEFAULT_ROOT) -> list[Gpu]:
        """`count` GPUs of `root` no other lab holds, now held by `lab_id` (the lowest free indexes);
        NotEnoughGpus says how many are free when there are too few."""
        if count <= 0:
            return []
        gpus = discover(root)
        with self._lock:
            free = [g for g in gpus if self._held.get((str(root), g.index), lab_id) == lab_id]
            if count > len(free):
                raise NotEnoughGpus(refusal(count, len(free), len(gpus)))
            for g in free[:count]:
                self._held[(str(root), g.index)] = lab_id
            return free[:count]

    def reclaim(self, lab_id: str, indexes: list[int], root: Path = DEFAULT_ROOT) -> list[Gpu]:
        """Hold again the GPUs a re-attached lab was given (those that still exist)."""
        by_index = {g.index: g for g in discover(root)}
        with self._lock:
            for index in indexes:
                self._held[(str(root), int(index))] = lab_id
        return [by_index[int(i)] for i in indexes if int(i) in by_index]

    def release(self, lab_id: str) -> None:
        with self._lock:
            for key in [k for k, holder in self._held.items() if holder == lab_id]:
                del self._held[key]

    def holders(self, root: Path = DEFAULT_ROOT) -> dict[int, str]:
        with self._lock:
            return {index: lab for (r, index), lab in self._held.items() if r == str(root)}


ALLOCATOR = Allocator()  # the host's: one lab manager per host starts local labs


def refusal(asked: int, free: int, total: int) -> str:
    gpus = f"{asked} GPU{'' if asked == 1 else 's'}"
    if total == 0:
        return f"this lab asks for {gpus}; this server has none"
    return f"this lab asks for {gpus}; {free} of this server's {total} {'is' if free == 1 else 'are'} free"


def slurm_job_gpus(root: Path) -> list[Gpu] | None:
    """Inside a Slurm job, the job's GPUs found in `root` (Slurm placed them: nothing is claimed); None
    outside one."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    wanted = {int(i) for i in os.environ.get("SLURM_JOB_GPUS", "").split(",") if i.strip().isdigit()}
    return [g for g in discover(root) if g.index in wanted]


def shortfall(asked: int, root: Path = DEFAULT_ROOT) -> str:
    """Why a datalab needing `asked` GPUs cannot run on this host ("" if it can, free or not now)."""
    total = len(discover(root))
    if asked <= total:
        return ""
    if total == 0:
        return f"needs {'a GPU' if asked == 1 else f'{asked} GPUs'}; this server has none"
    return f"needs {asked} GPUs; this server has {total}"
