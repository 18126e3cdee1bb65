"""sandbox/bwrap.py, launch.py, seccomp.py, network.py: the sandbox as a process sees it from inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from datalabs.config import SandboxSettings, Settings
from datalabs.sandbox import bwrap, launch, network, seccomp
from datalabs.sandbox.bwrap import Box, Mount
from datalabs.sandbox.identity import of as identity_of
from datalabs.sandbox.policy import Policy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes with their own uid need root")

INSIDE = r"""
import ctypes, json, os, resource, sys
libc = ctypes.CDLL(None, use_errno=True)
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
caps = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
out = {"uid": os.getuid(), "groups": sorted(os.getgroups()), "seccomp": status["Seccomp"].strip(),
       "gid": os.getgid(), "caps": caps, "no_new_privs": status["NoNewPrivs"].strip(),
       "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
       "become_dir": os.access("/run/datalabs-become", os.R_OK | os.X_OK),
       "netns": os.readlink("/proc/self/ns/net"),
       "userns": libc.unshare(0x10000000), "mount": libc.unshare(0x20000),
       "interfaces": [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]],
       "passwd": [l for l in open("/etc/passwd") if l.startswith("ada:")],
       "home": sorted(os.listdir("/media/home")) if os.path.isdir("/media/home") else None}
for path in sys.argv[1:]:
    try:
        open(path).read()
        out[path] = "read"
    except OSError as exc:
        out[path] = exc.strerror
print(json.dumps(out))
"""


def run_inside(tmp_path: Path, policy: Policy, mounts=(), args=(), **prepare) -> dict:
    box = Box(command=[sys.executable, "-I", "-S", "-c", INSIDE, *args], identity=None, mounts=mounts)
    prepared = launch.prepare(f"t{os.getpid()}", box, policy, tmp_path / "state", **prepare)
    try:
        done = subprocess.run(
            prepared.argv, capture_output=True, text=True, timeout=60, pass_fds=prepared.fds
        )
    finally:
        prepared.release()
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(params=["become", "shell"])
def entry(request, monkeypatch):
    """Both ways into a sandbox: datalabs-become (built by `make setup`), and the shell and setpriv used
    where it was not built."""
    if request.param == "become":
        assert bwrap.become_path(), "datalabs-become is not built (make setup builds it)"
    else:
        monkeypatch.setattr(bwrap, "become_path", lambda: None)
    return request.param


def test_a_sandbox_runs_as_its_user_with_no_way_out(tmp_path, entry):
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [(3, "astro")])
    secret = tmp_path / "secret.txt"
    secret.write_text("root's")
    secret.chmod(0o600)
    policy = replace(Policy.of(Settings(home=tmp_path), ada, "none", pids_max=64), nproc=777)
    seen = run_inside(tmp_path, policy, args=[str(secret)])
    assert seen["uid"] == 1_000_000_007 and seen["groups"] == [1_500_000_003]  # its teams
    assert seen["gid"] == 1_000_000_007 and seen["nproc"] == [777, 777]
    assert set(seen["caps"].values()) == {"0000000000000000"} and seen["no_new_privs"] == "1"
    assert seen["become_dir"] is False  # what datalabs-become read as root is not the user's to see
    assert seen["passwd"] and seen["passwd"][0].startswith("ada:x:1000000007:")
    assert seen["seccomp"] == "2" and seen["userns"] == -1 and seen["mount"] == -1
    assert seen["interfaces"] == ["lo"]
    assert seen[str(secret)] == "No such file or directory"  # nothing of the host beyond the system


def test_a_mount_bound_by_fd_cannot_be_redirected(tmp_path):
    ws = tmp_path / "ws"
    (ws / "folder").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada")
    policy = Policy.of(Settings(home=tmp_path), ada, "none")
    mount = Mount(ws / "folder", "/media/home/f", readonly=True, beneath=ws)
    assert run_inside(tmp_path, policy, [mount])["home"] == ["f"]
    (ws / "folder").rmdir()
    (ws / "folder").symlink_to(tmp_path / "other")  # swapped after the platform's checks
    with pytest.raises(OSError):
        run_inside(tmp_path, policy, [mount])


def test_seccomp_program_is_built_once_and_denies_what_it_lists():
    assert seccomp.available()[0]
    assert seccomp.program() is seccomp.program()
    assert len(seccomp.program()) % 8 == 0  # whole BPF instructions


@pytest.mark.skipif(not network.available()[0], reason="no pasta / ip here")
def test_an_outbound_namespace_reaches_neither_the_host_nor_private_ranges(tmp_path):
    made = network.create("t-fs", SandboxSettings().blocked_networks, ["10.250.0.0/16"])
    try:
        routes = subprocess.run(["ip", "-n", "datalabs-t-fs", "route"], capture_output=True, text=True).stdout
        assert "default via 198.18.0.1" in routes
        for blocked in ("prohibit 10.0.0.0/8", "prohibit 127.0.0.0/8", "prohibit 169.254.0.0/16"):
            assert blocked in routes
        assert "10.250.0.0/16 via 198.18.0.1" in routes  # the operator's exception
        addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        for line in addresses.splitlines():
            host = line.split()[3].split("/")[0]
            if not host.startswith("127."):
                assert f"prohibit {host}" in routes
    finally:
        network.remove(made.name, made.pasta_pid)
    assert not Path(made.path).exists()


def test_python_dirs_cover_the_platform_package():
    import datalabs

    assert any(str(Path(datalabs.__file__).resolve()).startswith(d + "/") for d in bwrap.python_dirs())


def test_labs_cannot_move_a_file_out_of_its_quota_project(tmp_path):
    """FS_IOC_FSSETXATTR (chattr -p) would move a file to another filesystem project, out of its
    workspace's quota: the seccomp filter refuses it before any filesystem sees it."""
    probe = (
        "import errno, fcntl, os; fd = os.open('/tmp/f', os.O_CREAT | os.O_RDWR)\n"
        "try:\n    fcntl.ioctl(fd, 0x401c5820, bytes(28)); print('allowed')\n"
        "except OSError as exc:\n    print(errno.errorcode[exc.errno])"
    )
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada")
    results = {}
    for filtered in (True, False):
        policy = replace(Policy.of(Settings(home=tmp_path), ada, "none"), seccomp=filtered)
        box = Box(command=[sys.executable, "-I", "-S", "-c", probe], identity=None)
        prepared = launch.prepare(f"q{os.getpid()}", box, policy, tmp_path / f"state{filtered}")
        try:
            done = subprocess.run(prepared.argv, capture_output=True, text=True, timeout=60)
        finally:
            prepared.release()
        results[filtered] = done.stdout.strip()
    assert results[True] == "EPERM" and results[False] != "EPERM", results


def test_generated_files_are_shared_by_content_and_never_half_written(tmp_path):
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [])
    bob = identity_of(1_000_000_000, 1_500_000_000, 8, "bob", [])
    state = tmp_path / "state"

    def etc_passwd(identity) -> str:
        argv = bwrap.command(Box(command=["true"], identity=identity), state)
        return argv[argv.index("/etc/passwd") - 1]

    first, again, other = etc_passwd(ada), etc_passwd(ada), etc_passwd(bob)
    assert first == again != other  # the tools of one run find theirs written; another user's differs
    assert "ada:x:1000000007:" in Path(first).read_text() and "bob:" not in Path(first).read_text()
    assert oct(state.stat().st_mode & 0o777) == "0o700" and oct(Path(first).stat().st_mode & 0o777) == "0o644"
    assert not list(state.glob(".*"))  # no temporary left behind


def test_a_sandbox_joins_its_cgroup_whichever_way_in(tmp_path, entry):
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada")
    box = Box(command=["sh", "-c", "echo ready; exec sleep 30"], identity=None)
    policy = Policy.of(Settings(home=tmp_path), ada, "none", pids_max=64)
    prepared = launch.prepare(f"c{os.getpid()}{entry}", box, policy, tmp_path / "state")
    assert prepared.cgroup is not None
    proc = subprocess.Popen(prepared.argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        inside = prepared.cgroup.pids()
        assert inside and all(Path(f"/proc/{pid}/status").exists() for pid in inside)
        assert prepared.cgroup.pids_limit()[1] == 64
    finally:
        prepared.release()  # kills what is in the cgroup: the sandbox ends with it
        assert proc.wait(timeout=30) != 0


def test_datalabs_become_refuses_what_it_must(tmp_path):
    become = bwrap.become_path()
    assert become, "datalabs-become is not built (make setup builds it)"

    def run(*argv, user=None):
        return subprocess.run([become, *argv], capture_output=True, text=True, timeout=10, user=user)

    staying_root = run("0", "0", "", "-", "-", "-", "--", "true")
    assert staying_root.returncode == 126 and "refusing to stay root" in staying_root.stderr
    assert run("12x", "5", "", "-", "-", "-", "--", "true").returncode == 126  # not a number
    assert "usage" in run("5", "5", "", "-", "-", "--", "true").stderr  # too few arguments
    assert run("5", "5", "", "-", "-", "-", "true").returncode == 126  # no "--"
    not_root = run("1000000007", "1000000007", "", "-", "-", "-", "--", "true", user=65534)
    assert not_root.returncode == 126 and "Operation not permitted" in not_root.stderr  # nothing to gain
    missing = run("1000000007", "1000000007", "", "-", str(tmp_path / "nope.bpf"), "-", "--", "true")
    assert missing.returncode == 126 and "seccomp program" in missing.stderr
    (tmp_path / "odd.bpf").write_bytes(b"\0" * 7)  # not whole instructions
    odd = run("1000000007", "1000000007", "", "-", str(tmp_path / "odd.bpf"), "-", "--", "true")
    assert odd.returncode == 126 and "reading the seccomp program" in odd.stderr
    ran = run(
        "1000000007", "1000000007", "1500000003", "99", "-", "-", "--", "sh", "-c", "id -u; id -G; ulimit -p"
    )
    assert ran.returncode == 0
    assert ran.stdout.split("\n")[:3] == ["1000000007", "1000000007 1500000003", "99"]


@pytest.mark.skipif(not network.available()[0], reason="no ip here")
def test_sandboxes_without_network_can_share_a_namespace_with_only_a_loopback(tmp_path):
    """The tools of one run share their run's namespace (datalabs-become enters it): still nothing but
    a loopback, and not the host's."""
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada")
    policy = Policy.of(Settings(home=tmp_path), ada, "none")
    name = f"t-share-{os.getpid()}"
    shared = network.create_isolated(name)
    inode = os.stat(shared).st_ino
    try:
        one = run_inside(tmp_path, policy, shared_netns=shared)
        two = run_inside(tmp_path, policy, shared_netns=shared)
        alone = run_inside(tmp_path, policy)
    finally:
        network.remove(name)
    assert one["interfaces"] == two["interfaces"] == alone["interfaces"] == ["lo"]
    assert one["netns"] == two["netns"] == f"net:[{inode}]" != alone["netns"]
    assert one["netns"] != os.readlink("/proc/self/ns/net")
    assert not Path(shared).exists()
