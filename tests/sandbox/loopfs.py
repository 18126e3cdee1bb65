"""Loop-mounted filesystem images for quota tests: made, mounted and always unmounted (and their loop
device freed) by the context manager, whatever happens in the test."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

EXT4_PROJECT = ("ext4", ["-O", "quota,project", "-E", "quotatype=prjquota"], "prjquota", 64)
XFS_PLAIN = ("xfs", [], "", 300)  # XFS needs 300 MB at least; project ids work without quota support


def kernel_config(option: str) -> str | None:
    """'y', 'm', 'n' for a kernel option from /proc/config.gz, None when the kernel does not say."""
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{option}="):
            return line.split("=", 1)[1]
        if line == f"# {option} is not set":
            return "n"
    return "n"


def ext4_project_quotas_missing() -> str:
    """Why this kernel cannot mount ext4 with project quotas ('' when it can, as far as it says)."""
    if kernel_config("CONFIG_QUOTA") == "n" or kernel_config("CONFIG_QFMT_V2") == "n":
        return "this kernel is built without CONFIG_QUOTA/CONFIG_QFMT_V2: ext4 quotas cannot be mounted"
    return ""


def need_root_and(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("loop mounts need root")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (scripts/install-system-packages.sh test)")


@contextlib.contextmanager
def loop_mount(image: Path, target: Path, kind: tuple) -> Iterator[Path]:
    """Make a `kind` filesystem in `image`, loop-mount it on `target`, yield `target`; unmount at the end
    (mount -o loop sets autoclear: the loop device is freed with the unmount)."""
    fstype, mkfs_args, options, size_mb = kind
    need_root_and(f"mkfs.{fstype}", "mount", "umount")
    with image.open("wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run([f"mkfs.{fstype}", "-q", *mkfs_args, str(image)], check=True, capture_output=True)
    target.mkdir(parents=True, exist_ok=True)
    opts = ",".join(o for o in ("loop", options) if o)
    done = subprocess.run(["mount", "-o", opts, str(image), str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"mount -o {opts} failed: {done.stderr.strip()}")
    try:
        yield target
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)  # a lab's processes may still be letting go of it
        else:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)
        image.unlink(missing_ok=True)


# The tests that need ext4 project quotas: run together in one VM (one boot), on one xdist worker.
VM_TESTS = (
    "tests/sandbox/test_quota.py::test_project_limits_hold_against_an_unprivileged_writer",
    "tests/security/test_quota_in_lab.py::test_project_quota_stops_a_lab_at_its_quota",
)


def needs_ext4_quotas(test):
    """Marks for VM_TESTS: one xdist worker for all (one VM boot), and the time a VM boot takes."""
    return pytest.mark.xdist_group("ext4-quota-vm")(pytest.mark.timeout(1800)(test))


_vm_outcomes: dict[str, str] = {}


def here_or_in_a_vm(request, tmp_path: Path) -> bool:
    """For a test that needs ext4 project quotas (one of VM_TESTS): True when it can go on here (this
    kernel has them, or this is the test VM). Otherwise the VM_TESTS are run inside a Debian kernel
    (tests/sandbox/kernel_vm.py), once for all of them, the caller's outcome is asserted and False
    returned: the caller has nothing left to do."""
    from tests.sandbox import kernel_vm

    why = ext4_project_quotas_missing()
    if not why or os.environ.get(kernel_vm.IN_VM):
        return True
    if no_vm := kernel_vm.unavailable():
        pytest.skip(f"{why}, and no test VM: {no_vm}")
    node = request.node.nodeid.partition("@")[0]  # without the xdist group pytest-xdist appends
    if node not in _vm_outcomes:
        _, output = kernel_vm.run(list(VM_TESTS), tmp_path / "vm")
        for test in VM_TESTS:
            _vm_outcomes[test] = "passed" if f"PASSED {test}" in output else output
    assert _vm_outcomes[node] == "passed", f"in the test VM:\n{_vm_outcomes[node]}"
    return False
