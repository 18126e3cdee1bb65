"""sandbox/quota.py and sandbox/freeze.py on real filesystems and real bubblewrap sandboxes.

Project ids are exercised on a loop-mounted XFS image (XFS keeps project ids without quota support);
limits on ext4 with prjquota: where this kernel cannot mount it (built without CONFIG_QFMT_V2, as this
project's machines are), that test runs itself again in a Debian kernel under QEMU (kernel_vm.py)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from datalabs.config import Settings
from datalabs.errors import TooLarge
from datalabs.sandbox import freeze, quota
from datalabs.workspaces.paths import os_error
from tests.sandbox.loopfs import EXT4_PROJECT, XFS_PLAIN, here_or_in_a_vm, loop_mount, needs_ext4_quotas

MB = 10**6


def projid(path: Path) -> tuple[int, bool]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        pid, flags = quota.get_project(fd)
        return pid, bool(flags & quota.FS_XFLAG_PROJINHERIT)
    finally:
        os.close(fd)


def test_without_prjquota_the_platforms_check_is_in_force_and_says_why(tmp_path):
    found = quota.detect(tmp_path)
    assert found.mechanism == "check" and found.mount is not None
    assert found.mount.point == quota.mount_of(tmp_path).point
    assert "prjquota" in found.how or "has no project quotas" in found.how
    chosen = quota.detect(tmp_path, wanted="check")
    assert chosen.mechanism == "check" and "workspaces.enforcement = check" in chosen.how
    settings = Settings(home=tmp_path / "home")
    mechanism, how = quota.enforcement_fact(settings)
    assert mechanism == "platform check" and how == quota.enforcement(settings).how
    assert quota.admin_line(settings) == (os.geteuid() == 0, how)
    assert quota.measured(settings.home / "workspaces" / "users" / "ada") is None  # the caller walks


def test_mount_of_takes_the_deepest_mount():
    assert quota.mount_of(Path("/proc/self/status")).fstype == "proc"
    assert quota.mount_of(Path("/")).point == "/"


def test_project_ids_are_stable_and_stay_in_their_range(tmp_path):
    settings = Settings(home=tmp_path, workspaces={"project_ids": (5000, 5001)})
    (tmp_path / "workspaces").mkdir()
    assert quota.project_id(settings, "user:ada") == 5000
    assert quota.project_id(settings, "team:astro") == 5001
    assert quota.project_id(settings, "user:ada") == 5000  # read back from the file, not remembered
    with pytest.raises(quota.QuotaError, match="no project id left"):
        quota.project_id(settings, "user:bob")


def test_adopt_tags_a_workspace_once_without_following_links(tmp_path):
    with loop_mount(tmp_path / "xfs.img", tmp_path / "mnt", XFS_PLAIN) as mnt:
        root = mnt / "users" / "ada"
        (root / "sub" / "deeper").mkdir(parents=True)
        (root / "sub" / "deeper" / "old.dat").write_bytes(b"x" * 1000)
        (mnt / "outside.txt").write_text("not the workspace's")
        (root / "link").symlink_to(mnt / "outside.txt")
        os.mkfifo(root / "fifo")  # opened without blocking, left alone

        changed = quota.adopt(root, 2_000_123)
        assert changed == 4  # root, sub, deeper, old.dat
        assert projid(root) == (2_000_123, True)
        assert projid(root / "sub" / "deeper") == (2_000_123, True)
        assert projid(root / "sub" / "deeper" / "old.dat") == (2_000_123, False)
        assert projid(mnt / "outside.txt") == (0, False)  # the link was not followed
        (root / "sub" / "new.dat").write_bytes(b"y")
        assert projid(root / "sub" / "new.dat")[0] == 2_000_123  # inherited from the folder
        assert quota.adopt(root, 2_000_123) == 0  # done already: one ioctl

        found = quota.detect(mnt)
        assert found.mechanism == "check" and "not mounted with prjquota" in found.how


@needs_ext4_quotas
def test_project_limits_hold_against_an_unprivileged_writer(request, tmp_path):
    if not here_or_in_a_vm(request, tmp_path):
        return  # it ran in a kernel with ext4 quotas, and passed
    with loop_mount(tmp_path / "ext4.img", tmp_path / "home" / "workspaces", EXT4_PROJECT):
        settings = Settings(home=tmp_path / "home")
        found = quota.enforcement(settings)
        assert found.project and "prjquota" in found.how, found.how
        root = settings.home / "workspaces" / "users" / "ada"
        root.mkdir(parents=True)
        os.chown(root, 65534, 65534)
        for folder in root.parents:  # pytest's folders are private: the writer below must reach its own
            if folder == Path("/tmp"):
                break
            folder.chmod(folder.stat().st_mode | 0o011)
        quota.keep(settings, "user:ada", root, 5 * MB)
        pid = quota.project_id(settings, "user:ada")
        assert projid(root) == (pid, True)
        assert quota.limit_of_project(found.mount, pid) >= 5 * MB
        write = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
             "dd", "if=/dev/zero", f"of={root / 'big'}", "bs=1M", "count=20"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert write.returncode != 0 and "quota exceeded" in write.stderr.lower(), write.stderr
        assert 4 * MB <= (root / "big").stat().st_size <= 5 * MB + 4096
        assert abs(quota.measured(root) - (root / "big").stat().st_size) < 64 * 1024
        quota.keep(settings, "user:ada", root, 50 * MB)  # an admin raised it: kept in step
        assert quota.limit_of_project(found.mount, pid) >= 50 * MB


def test_edquot_is_reported_as_the_quota_not_a_full_disk():
    error = os_error(OSError(errno.EDQUOT, "Disk quota exceeded"), ("results", "cube.fits"))
    assert isinstance(error, TooLarge) and error.status == 413 and error.code == "quota_exceeded"
    assert "results/cube.fits" in error.message and "/" not in error.message.replace("results/cube", "")


# ---- freeze: read-only inside one sandbox ------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path):
    """A bubblewrap sandbox (as root, like labs) with `tmp_path/ws` bound at /media/home/my_workspace,
    running a program that holds a file open for writing and one that does not."""
    if os.geteuid() != 0 or shutil.which("bwrap") is None:
        pytest.skip("needs root and bubblewrap (as the lab runtime when the platform is root)")
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, 65534, 65534)
    script = "(exec 3>>/media/home/my_workspace/held; exec sleep 600) & exec sleep 600"
    argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    for d in ("/usr", "/bin", "/lib", "/lib64", "/etc"):
        if Path(d).is_symlink():
            argv += ["--symlink", os.readlink(d), d]
        elif Path(d).exists():
            argv += ["--ro-bind", d, d]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/media", "--dir", "/media/home"]
    argv += ["--bind", str(ws), "/media/home/my_workspace", "--"]
    argv += ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script]
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ns = freeze.namespace_pid(proc.pid)
            if ns and len(freeze.descendants(ns)) >= 2 and (ws / "held").exists():
                break
            time.sleep(0.05)
        yield proc, ns, ws
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_make_readonly_stops_writers_and_keeps_the_mounts_flags(sandbox):
    proc, ns, ws = sandbox
    target = "/media/home/my_workspace"
    assert ns != proc.pid  # bubblewrap's outer process stays in the host's namespace
    before = freeze.mount_point(ns, target)
    assert not before.readonly and {"nosuid", "nodev"} <= before.options
    survivors = set(freeze.descendants(ns))
    holders = freeze.writers(list(survivors), before.id)
    assert len(holders) == 1  # the subshell turned sleep that holds 'held'

    done = freeze.make_readonly(ns, target)
    after = freeze.mount_point(ns, target)
    assert after.readonly and {"nosuid", "nodev"} <= after.options
    # The same process, by pid: its name may still be "sh" when `holders` is read (the subshell had not
    # exec'd sleep yet) and "sleep" when it is killed.
    assert [int(k.rsplit("pid ", 1)[1].rstrip(")")) for k in done.killed] == list(holders)
    states = {p: Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] for p in survivors}
    alive = {p for p, state in states.items() if state != "Z"}  # the killed writer's parent never reaps
    assert alive == survivors - set(holders)  # the writer only; the others were continued
    assert "T" not in states.values()  # none left stopped
    assert freeze.make_readonly(ns, target).killed == []  # already read-only: nothing to do
    fd = os.open(ws / "from-the-host", os.O_WRONLY | os.O_CREAT)  # only the sandbox's view changed
    os.close(fd)

    freeze.make_writable(ns, target)
    again = freeze.mount_point(ns, target)
    assert not again.readonly and {"nosuid", "nodev"} <= again.options


def test_a_process_outside_any_sandbox_has_no_namespace_to_freeze(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert freeze.namespace_pid(sleeper.pid) is None
        with pytest.raises(freeze.FreezeError, match="not mounted"):
            freeze.make_writable(os.getpid(), "/media/home/my_workspace")
    finally:
        sleeper.kill()
        sleeper.wait()
