"""Run tests inside a Debian kernel when this host's kernel cannot run them (e.g. it is built without
ext4 quota support, as the kernels of this project's machines are): QEMU (TCG, no KVM needed) boots
the Debian kernel that `scripts/install-system-packages.sh test` unpacks into KERNEL_DIR, with a
busybox initramfs that loads the modules the tests need, mounts the host's `/` over 9p, and runs
the given pytest node ids in this very checkout and virtualenv, chrooted into it. Writes go to the
host's files as root, as the tests would on the host; temporary files to a tmpfs in the guest.
Python runs 15-20 times slower under TCG than here, so what pytest imports before the tests decides
the VM's time: it starts without tests/conftest.py (--noconftest: the VM's tests use none of its fixtures,
and its imports - the web stack, the DB layer - were most of the start; a VM test that asks for one of its
fixtures fails, it is not skipped) and with only the plugins the tests' marks need (pytest-timeout, xdist),
not every installed one (playwright, schemathesis, hypothesis, cwltest...). pytest's start up to the two
VM tests collected, in the guest on an idle host: 57-65 s as before, 40-55 s with fewer plugins, 18-28 s
with fewer plugins and no conftest (9p cache=loose instead of none: no clear difference, not taken).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL_DIR = Path(os.environ.get("DATALABS_TEST_KERNEL", "/var/cache/datalabs-test/kernel"))
IN_VM = "DATALABS_TEST_IN_VM"
MODULES = ("virtio_pci", "9pnet_virtio", "9p", "crc32c_generic", "ext4", "quota_v2", "loop", "xfs")
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none host /host
mount --bind /dev /host/dev; mount -t proc proc /host/proc; mount -t sysfs sys /host/sys
mount -t devpts devpts /host/dev/pts; mount -t tmpfs tmpfs /host/dev/shm; mount -t tmpfs tmpfs /host/run
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null
script=$(sed -n 's/.*dl.script=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
chroot /host /bin/sh "$script"
sync
poweroff -f
"""


def unavailable() -> str:
    """Why tests cannot run in the VM here ('' when they can)."""
    if os.environ.get(IN_VM):
        return "already inside the test VM"
    if os.geteuid() != 0:
        return "the test VM shares the host's files as root: run as root"
    missing = [t for t in ("qemu-system-x86_64", "busybox") if shutil.which(t) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (scripts/install-system-packages.sh test)"
    if not (KERNEL_DIR / "vmlinuz").is_file():
        return f"no test kernel in {KERNEL_DIR} (scripts/install-system-packages.sh test unpacks one)"
    return ""


def _modules(kernel: Path) -> list[Path]:
    """MODULES and what they depend on (from each module's modinfo), dependencies first."""
    found = {p.name.split(".ko")[0].replace("-", "_"): p for p in (kernel / "modules").rglob("*.ko")}
    order: list[str] = []

    def add(name: str) -> None:
        if name in order or name not in found:
            return
        depends = re.search(rb"depends=([^\x00]*)\x00", found[name].read_bytes())
        for dep in depends.group(1).decode().split(",") if depends else []:
            if dep:
                add(dep.replace("-", "_"))
        order.append(name)

    for name in MODULES:
        add(name)
    return [found[name] for name in order]


def _initramfs(kernel: Path) -> bytes:
    """A newc cpio (gzip) with busybox, the init above and the modules, numbered in load order."""
    files = {
        "init": (INIT.encode(), 0o100755),
        "bin/busybox": (Path(shutil.which("busybox")).read_bytes(), 0o100755),
    }
    for i, module in enumerate(_modules(kernel)):
        files[f"mods/{i:02d}-{module.name}"] = (module.read_bytes(), 0o100644)
    out = io.BytesIO()
    entries = [(d, b"", 0o40755) for d in ("bin", "mods", "proc", "sys", "dev", "host")]
    entries += [(name, data, mode) for name, (data, mode) in files.items()]
    for ino, (name, data, mode) in enumerate([*entries, ("TRAILER!!!", b"", 0)], start=1):
        raw = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        out.write(b"\0" * (-(110 + len(raw)) % 4) + data + b"\0" * (-len(data) % 4))
    return gzip.compress(out.getvalue(), 1)


def run(node_ids: list[str], workdir: Path, timeout: float = 1500) -> tuple[int, str]:
    """Run pytest on `node_ids` in the VM; (pytest's exit code, its output). `workdir`: a host folder for
    the run's script, initramfs and output (e.g. the calling test's tmp_path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "initrd.gz"
    initrd.write_bytes(_initramfs(KERNEL_DIR))
    output, status = workdir / "pytest.out", workdir / "pytest.status"
    root = Path(__file__).resolve().parents[2]
    script = workdir / "run.sh"
    script.write_text(
        f"cd {root} && mkdir -p /run/vmtmp && "
        f"env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "
        f"TMPDIR=/run/vmtmp {IN_VM}=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest "
        f"--noconftest -p pytest_timeout -p xdist.plugin -p no:cacheprovider -q -rA "
        f"{' '.join(node_ids)} > {output} 2>&1; echo $? > {status}\n"
    )
    qemu = [
        "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", "3072", "-smp", "2",
        "-nographic", "-no-reboot", "-kernel", str(KERNEL_DIR / "vmlinuz"), "-initrd", str(initrd),
        "-append", f"console=ttyS0 quiet edd=off panic=-1 dl.script={script}",
        "-virtfs", "local,path=/,mount_tag=host,security_model=passthrough,id=host0,multidevs=remap",
    ]  # fmt: skip
    console = subprocess.run(qemu, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if not status.exists():
        tail = console.stdout.decode(errors="replace")[-3000:]
        return 255, f"the test VM did not finish the run; its console said:\n{tail}"
    return int(status.read_text().strip() or 255), output.read_text(errors="replace")
