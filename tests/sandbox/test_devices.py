"""sandbox/devices.py: a cgroup's device rule, for real — cgroup v1's devices controller through
`LabCgroup.create(devices=...)` and the cgroup v2 BPF program on a v2 hierarchy (this host's own, or the
unified one a hybrid host mounts beside its v1 controllers).

Fake device nodes with NVIDIA's numbers (major 195): no driver answers to them, so a node the rule
allows fails to open with ENXIO, one it forbids with EPERM before any driver is asked.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from datalabs.sandbox import cgroups, devices
from datalabs.sandbox.bwrap import Box, command

PROBE = (
    "import os, sys\n"
    "for p, mode in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "    flags = {'r': os.O_RDONLY, 'w': os.O_WRONLY}[mode]\n"
    "    try:\n"
    "        os.close(os.open(p, flags))\n"
    "        print(0)\n"
    "    except OSError as e:\n"
    "        print(e.errno)\n"
)


@pytest.fixture
def nodes(tmp_path) -> dict[str, Path]:
    made = {}
    for name, minor in (("gpu0", 0), ("gpu1", 1)):
        made[name] = tmp_path / name
        os.mknod(made[name], 0o666 | 0o020000, os.makedev(195, minor))
    return made


def opened_in(procs: list[str], *checks: tuple[Path | str, str]) -> list[int]:
    """errno of opening each (path, "r" | "w") from a process that first joins the cgroups `procs`."""
    joins = "".join(f"echo $$ > {p} && " for p in procs)
    args = " ".join(f"{path} {mode}" for path, mode in checks)
    done = subprocess.run(
        ["sh", "-c", f'{joins}exec python3 -c "$0" {args}', PROBE], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return [int(line) for line in done.stdout.split()]


def v2_hierarchy() -> Path | None:
    """A writable cgroup v2 hierarchy: the host's own, or the unified one of a hybrid host."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, kind, *_ = line.split()
        if kind == "cgroup2" and os.access(where, os.W_OK):
            return Path(where)
    return None


def test_rules_read_as_cgroup_v1_writes_them():
    assert devices.DeviceRule("c", 195, 0).v1_line() == "c 195:0 rw"
    assert devices.DeviceRule("c", 136, None, "rwm").v1_line() == "c 136:* rwm"
    assert devices.DeviceRule("b", None, None, "r").v1_line() == "b *:* r"


def test_rules_for_refuses_what_is_not_a_device(tmp_path, nodes):
    assert devices.rules_for([nodes["gpu1"]]) == [devices.DeviceRule("c", 195, 1)]
    (tmp_path / "plain").write_text("")
    with pytest.raises(ValueError, match="not a device node"):
        devices.rules_for([tmp_path / "plain"])


@pytest.mark.skipif(os.geteuid() != 0 or not cgroups.available()[0], reason="needs root and cgroups")
def test_a_lab_cgroup_opens_only_the_devices_it_allows(nodes):
    rules = [*devices.BASE_RULES, *devices.rules_for([nodes["gpu0"]])]
    lab = cgroups.LabCgroup.create(f"t-dev-{uuid.uuid4().hex[:8]}", cpu=1, devices=rules)
    try:
        checks = [(nodes["gpu0"], "w"), (nodes["gpu1"], "r"), ("/dev/null", "w"), ("/dev/urandom", "r")]
        assert opened_in(lab.procs_files, *checks) == [errno.ENXIO, errno.EPERM, 0, 0]
        assert opened_in([], (nodes["gpu1"], "r")) == [errno.ENXIO]  # outside it: not refused
    finally:
        lab.remove()
    assert not any(Path(d).exists() for d in lab.dirs)


@pytest.mark.skipif(os.geteuid() != 0, reason="loading a BPF program needs root")
def test_the_cgroup_v2_program_allows_exactly_its_rules(nodes):
    root = v2_hierarchy()
    if root is None:
        pytest.skip("no writable cgroup v2 hierarchy on this host")
    group = root / f"datalabs-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        rules = [
            devices.DeviceRule("c", 1, 3),  # /dev/null, read and write
            devices.DeviceRule("c", 195, 0, "r"),  # the first GPU, read only
            devices.DeviceRule("c", 1, None, "r"),  # any minor of major 1, read only
        ]
        devices.attach_v2(group, rules)
        checks = [
            ("/dev/null", "w"),
            (nodes["gpu0"], "r"),
            (nodes["gpu0"], "w"),  # write is not in its rule
            (nodes["gpu1"], "r"),  # no rule
            ("/dev/zero", "r"),  # 1:5 by the wildcard
            ("/dev/zero", "w"),
        ]
        procs = [str(group / "cgroup.procs")]
        assert opened_in(procs, *checks) == [0, errno.ENXIO, errno.EPERM, errno.EPERM, 0, errno.EPERM]
    finally:
        group.rmdir()


def test_the_verifier_refuses_a_broken_program_with_its_reason():
    if os.geteuid() != 0:
        pytest.skip("loading a BPF program needs root")
    with pytest.raises(OSError, match="the kernel refused the device program: .* last insn is not an exit"):
        devices._load(devices._insn(devices.MOV64_IMM, dst=0, imm=1))  # no exit instruction


def test_a_program_for_a_large_gpu_server_loads():
    if os.geteuid() != 0:
        pytest.skip("loading a BPF program needs root")
    rules = [*devices.BASE_RULES, *(devices.DeviceRule("c", 195, minor) for minor in range(64))]
    os.close(devices._load(devices.program(rules)))  # 600+ instructions: well within the verifier's limits


def test_device_nodes_go_only_into_dev(tmp_path, nodes):
    box = Box(command=["true"], identity=None, device_nodes=[(str(nodes["gpu0"]), "/dev/nvidia0")])
    argv = command(box, tmp_path / "state")
    assert argv[argv.index("--dev-bind") : argv.index("--dev-bind") + 3] == [
        "--dev-bind",
        str(nodes["gpu0"]),
        "/dev/nvidia0",
    ]
    for target in ("/etc/nvidia0", "/dev/../etc/passwd", "dev/nvidia0"):
        hostile = Box(command=["true"], identity=None, device_nodes=[(str(nodes["gpu0"]), target)])
        with pytest.raises(ValueError, match="is not in /dev"):
            command(hostile, tmp_path / "state")


@pytest.mark.skipif(os.geteuid() != 0 or not cgroups.available()[0], reason="needs root and cgroups")
def test_a_cgroup_whose_device_rule_cannot_be_set_is_not_left_behind(monkeypatch):
    """A kernel that refuses the rule (e.g. no BPF in it) fails the sandbox instead of leaving it able to
    open every device; the half-made cgroup goes."""

    def refuse(*_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(devices, "write_v1", refuse)
    monkeypatch.setattr(devices, "attach_v2", refuse)
    name = f"t-refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(OSError, match="device access cannot be limited here: Operation not permitted"):
        cgroups.LabCgroup.create(name, cpu=1, memory_bytes=2**30, devices=list(devices.BASE_RULES))
    places = ("", "memory", "cpu", "pids", "devices")  # v2's one folder, v1's per controller
    assert not [p for p in places if (cgroups.ROOT / p / cgroups.PARENT / name).exists()]
