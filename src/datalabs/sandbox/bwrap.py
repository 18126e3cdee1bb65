"""The bubblewrap command line of every sandbox — labs, CWL tool runs, Toil runs, builds, CWL expressions.

`command(box, state_dir)` turns a `Box` (what the sandbox sees and runs as) into one argv. As root (the
platform's normal case) bwrap builds the sandbox, so any host folder can be bound, and the command then
drops to the box's identity with no capabilities left; otherwise an unprivileged user namespace is used.
As root, the last step inside the sandbox is datalabs-become (become.c): it joins the box's cgroups,
sets the identity's RLIMIT_NPROC, drops to the identity and loads the seccomp filter. Where it was not
built, a shell around bwrap joins the cgroups, sets RLIMIT_NPROC (`ulimit`; `prlimit` where the shell
has no such option) and opens the seccomp program for bwrap, and `setpriv` drops to the identity.
`nsenter` enters a prepared network namespace (outbound access, network.py) before bwrap. Inside: new
pid, ipc, uts and cgroup namespaces, a new network namespace unless one was prepared, the seccomp filter
(seccomp.py), /etc/passwd and /etc/group naming the identity, and for labs a launcher that sets the
umask and serves the platform API on the lab's loopback.

What a sandbox sees: system folders and the platform's Python read-only, a private /tmp, /var/tmp and
/run, its mounts, and nothing else of the host (no platform state, no other user's files or sockets).
Generated files (passwd, group, seccomp program, resolv.conf) are written to `state_dir`, a folder only
root can reach, before the sandbox starts.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from datalabs.sandbox import seccomp
from datalabs.sandbox.identity import Identity

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SECCOMP_FD = 9  # one digit: dash redirects fds 0-9 only
LAUNCHER = Path(__file__).with_name("launcher.py")
NOBODY = Identity(uid=65534, gid=65534, name="nobody")


@dataclass(frozen=True)
class Mount:
    """A host path seen inside a sandbox at `target`. With `beneath` (a folder user code can change, such
    as a workspace), `source` is opened from `beneath` without following links when the sandbox is
    built and bound by its fd, so a link swapped in after the platform's checks cannot redirect it."""

    source: Path
    target: str  # absolute path inside the sandbox
    readonly: bool = True
    beneath: Path | None = None


@dataclass(frozen=True)
class ApiAccess:
    """The platform API on the sandbox's own loopback (`http://127.0.0.1:<port>`), forwarded by the
    launcher to the platform's unix socket, whose folder is bound read-only at `/run/datalabs-api`."""

    socket_dir: Path
    port: int


@dataclass(frozen=True)
class Box:
    """One sandbox: what it runs, as whom, and what it sees.

    `network`: "none" (a new network namespace with only its own loopback), "netns" (enter the prepared
    namespace at `netns`: outbound access through pasta) or "host" (the host's network: NOT isolated).
    `cgroup_procs`: cgroup.procs files the sandbox joins before it starts (cgroups.py).
    `launcher`: start the command through launcher.py (umask 007 and `api`); labs use it, tools need not.
    `command_is_pid_1`: the command is the sandbox's init (bwrap --as-pid-1), not a child of bwrap's own.
    Only with an identity (as root, bwrap then waits for its child itself). Short tools use it: with its
    init, bwrap returns as soon as the init reports the command's exit and leaves the init to the host's
    PID 1 to reap, which holds a process of the tool's cgroup until it does. Labs keep bwrap's init: a
    long-lived command as init would not reap the orphans of its session.
    """

    command: Sequence[str]
    identity: Identity | None
    mounts: Sequence[Mount] = ()
    workdir: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)
    hostname: str = "sandbox"
    network: str = "none"
    netns: str | None = None
    api: ApiAccess | None = None
    cgroup_procs: Sequence[str] = ()
    nproc: int | None = None
    seccomp: bool = True
    launcher: bool = False
    die_with_parent: bool = False
    new_session: bool = False
    command_is_pid_1: bool = False
    resolv_conf: str | None = None  # contents of /etc/resolv.conf (outbound namespaces use pasta's DNS)
    # Device nodes (host path, path under /dev) added to the fresh /dev, e.g. a lab's GPUs: only these
    # can be opened there besides null, zero, random and the terminals (devices.py enforces the same).
    device_nodes: Sequence[tuple[str, str]] = ()
    extra: Sequence[
        str
    ] = ()  # more bwrap arguments, applied after the mounts (e.g. a desktop's X socket dir)


@functools.cache
def bwrap_path() -> str | None:
    return shutil.which("bwrap")  # looked up once: a wide scatter asks for every tool


def sandbox_path() -> str:
    """PATH inside sandboxes: the platform's environment first (JupyterLab and friends), then the system."""
    return f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin"


@functools.cache
def python_dirs() -> tuple[str, ...]:
    """The interpreter's installation and the platform's environment (and the platform's own source when
    it is installed in development mode), so commands and `import datalabs` work in sandboxes."""
    import datalabs

    here = Path(datalabs.__file__).resolve().parent.parent
    dirs = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, here)}
    dirs = {d for d in dirs if not any(d.startswith(s + "/") for s in SYSTEM_DIRS)}
    # Keep only the outermost of nested folders (the source may lie inside the project's venv's parent).
    return tuple(sorted(d for d in dirs if not any(d.startswith(o + "/") for o in dirs)))


def command(box: Box, state_dir: Path, bwrap: str | None = None, fds: list[int] | None = None) -> list[str]:
    """The full argv that starts `box` (see the module docstring); writes its generated files to
    `state_dir` (made 0700 if missing). Mounts with `beneath` are opened now: their fds are appended to
    `fds`, which the caller passes to the process (pass_fds) and then closes."""
    bwrap = bwrap or bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if box.identity is None and os.geteuid() == 0:
        # Never a sandbox as root (an unprivileged user namespace of root maps to root): nobody at least.
        box = replace(box, identity=NOBODY)
    argv = [bwrap, *_namespaces(box)]
    if box.die_with_parent:
        argv.append("--die-with-parent")
    if box.new_session:
        argv.append("--new-session")
    if box.command_is_pid_1 and box.identity is not None:
        argv.append("--as-pid-1")
    argv += _filesystem(box, state_dir, fds)
    argv += ["--chdir", box.workdir]
    for key, value in box.env.items():
        argv += ["--setenv", key, value]
    become = become_path() if box.identity is not None else None
    if become is not None:
        binds, steps = _become(box, state_dir, become)
        return argv + [*binds, "--", *steps, *_launch(box), *box.command]
    if box.seccomp:
        argv += ["--seccomp", str(SECCOMP_FD)]
    argv += ["--", *_drop_privileges(box.identity), *_launch(box), *box.command]
    return _wrap(box, argv, state_dir)


@functools.cache
def become_path() -> str | None:
    """datalabs-become (become.c), built by `make setup` beside the environment's Python; None without it
    (then a shell and `setpriv` do its work, two executables more per sandbox)."""
    path = Path(sys.prefix) / "bin" / "datalabs-become"
    return str(path) if os.access(path, os.X_OK) else None


BECOME_DIR = "/run/datalabs-become"  # made by bwrap as root, 0700: the sandbox's user never sees into it


def _become(box: Box, state_dir: Path, become: str) -> tuple[list[str], list[str]]:
    """bwrap arguments binding what datalabs-become reads as root inside the sandbox (the seccomp program,
    the prepared network namespace, the cgroups' procs files), and its command line: it enters the
    namespace, joins the cgroups, sets RLIMIT_NPROC, drops to the box's identity with no capabilities,
    loads the seccomp filter and execs the rest."""
    identity = box.identity
    assert identity is not None
    binds = ["--perms", "0700", "--dir", BECOME_DIR]
    seccomp_file = "-"
    if box.seccomp:
        seccomp_file = f"{BECOME_DIR}/seccomp.bpf"
        binds += ["--ro-bind", str(_state_file(state_dir, "seccomp.bpf", seccomp.program())), seccomp_file]
    netns = "-"
    if box.network == "netns":  # entered by datalabs-become itself: no nsenter in front of bwrap
        netns = f"{BECOME_DIR}/net"
        binds += ["--ro-bind", str(box.netns), netns]
    procs = []
    for n, path in enumerate(box.cgroup_procs):
        procs.append(f"{BECOME_DIR}/cgroup-{n}.procs")
        binds += ["--bind", str(path), procs[-1]]
    nproc = str(int(box.nproc)) if box.nproc is not None else "-"
    groups = ",".join(str(g) for g in identity.groups)
    steps = [become, str(identity.uid), str(identity.gid), groups, nproc, seccomp_file, netns, *procs, "--"]
    return binds, steps


def _netns(box: Box, argv: list[str]) -> list[str]:
    if box.network == "netns" and box.identity is not None:
        return ["nsenter", f"--net={box.netns}", "--", *argv]
    return argv


def _namespaces(box: Box) -> list[str]:
    if box.identity is None:  # unprivileged: a user namespace makes the rest possible
        shared = ["--share-net"] if box.network == "host" else []
        return ["--unshare-all", *shared, "--cap-drop", "ALL", "--hostname", box.hostname]
    spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if box.network == "none":
        spaces.append("--unshare-net")
    return [*spaces, "--hostname", box.hostname]


def _filesystem(box: Box, state_dir: Path, fds: list[int] | None) -> list[str]:
    argv = ["--proc", "/proc", "--dev", "/dev"]
    for node, target in box.device_nodes:
        if not target.startswith("/dev/") or ".." in target.split("/"):
            raise ValueError(f"device node {target} is not in /dev")
        argv += ["--dev-bind", node, target]
    # A private /tmp the sandbox's user can write (bwrap as root would make it 0755 root): Java, X and
    # most desktop apps need one.
    argv += [
        "--perms",
        "01777",
        "--tmpfs",
        "/tmp",
        "--perms",
        "01777",
        "--tmpfs",
        "/var/tmp",
        "--tmpfs",
        "/run",
    ]
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            argv += ["--symlink", str(p.readlink()), d]
        elif p.exists():
            argv += ["--ro-bind", d, d]
    made: set[str] = {"/", "/tmp", "/var/tmp", "/run"}
    for d in python_dirs():
        argv += _parents(d, made) + ["--ro-bind", d, d]
    if box.identity is not None:
        argv += _etc_file(state_dir, "passwd", _host_file("/etc/passwd") + box.identity.passwd_entry())
        argv += _etc_file(state_dir, "group", _host_file("/etc/group") + box.identity.group_entries())
    if box.resolv_conf is not None:
        argv += _etc_file(state_dir, "resolv.conf", box.resolv_conf)
    if box.api is not None:
        argv += ["--ro-bind", str(box.api.socket_dir), "/run/datalabs-api"]
    for m in box.mounts:
        argv += _parents(m.target, made)
        if m.beneath is not None:
            if fds is None:
                raise ValueError(f"mount {m.target} must be bound by fd: pass `fds`")
            fd = open_beneath(m.beneath, m.source)
            fds.append(fd)
            argv += ["--ro-bind-fd" if m.readonly else "--bind-fd", str(fd), m.target]
        else:
            argv += ["--ro-bind" if m.readonly else "--bind", str(m.source), m.target]
        made.add(m.target)
    return argv + list(box.extra)


def open_beneath(root: Path, path: Path) -> int:
    """An O_PATH fd of the folder `path` below `root`, reached without following any link."""
    from datalabs.sandbox.fs import DIR_FLAGS, O_PATH, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, openat2

    rel = os.path.relpath(path, root)
    if rel.startswith(".."):
        raise ValueError(f"{path} is not below {root}")
    top = os.open(root, DIR_FLAGS)
    try:
        return openat2(top, rel, O_PATH | os.O_DIRECTORY, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
    finally:
        os.close(top)


def _parents(path: str, made: set[str]) -> list[str]:
    # Missing parents (e.g. /media/home/team_workspaces) would be made 0700 by bwrap as root, closed to
    # the sandbox's uid.
    argv: list[str] = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in made:
            made.add(str(parent))
            argv += ["--perms", "0755", "--dir", str(parent)]
    return argv


def _host_file(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return _host_file_text(path, st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=8)
def _host_file_text(path: str, *version: int) -> str:
    """The text of a host file as it was at `version` (mtime, size, inode): read once per change, not
    once per sandbox (a wide scatter starts hundreds)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    return text if text.endswith("\n") or not text else text + "\n"


def _state_file(state_dir: Path, name: str, data: bytes) -> Path:
    """`data` in `state_dir`, named after its content: sandboxes that share a state folder (the tools of
    one run) find it written, and a writer never changes what another sandbox is binding. Written to a
    private name first, then renamed: never seen half-written."""
    stem, dot, ext = name.partition(".")
    path = state_dir / f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}{dot}{ext}"
    if not path.exists():
        tmp = state_dir / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        tmp.replace(path)
    return path


def _etc_file(state_dir: Path, name: str, text: str) -> list[str]:
    return ["--ro-bind", str(_state_file(state_dir, name, text.encode())), f"/etc/{name}"]


def _drop_privileges(identity: Identity | None) -> list[str]:
    if identity is None:
        return []
    groups = ",".join(str(g) for g in identity.groups)
    return [
        "setpriv",
        f"--reuid={identity.uid}",
        f"--regid={identity.gid}",
        f"--groups={groups}" if groups else "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]


def _launch(box: Box) -> list[str]:
    if not box.launcher:
        return []
    port = str(box.api.port) if box.api is not None else "0"
    return [sys.executable, "-I", "-S", str(LAUNCHER), port, "/run/datalabs-api/api.sock", "--"]


@functools.cache
def _shell_nproc_flag() -> str | None:
    """The option of /bin/sh's `ulimit` that sets RLIMIT_NPROC (not in POSIX): dash and busybox say -p,
    bash -u; None for a shell not known here (then the `prlimit` command sets it, one exec more)."""
    shell = os.path.basename(os.path.realpath("/bin/sh"))
    return {"dash": "-p", "busybox": "-p", "bash": "-u"}.get(shell)


def _wrap(box: Box, argv: list[str], state_dir: Path) -> list[str]:
    """What runs before bwrap, outermost first: a shell (cgroups, RLIMIT_NPROC, seccomp fd), nsenter.
    Every exec here is paid by each tool of a wide scatter: the shell does what it can itself."""
    argv = _netns(box, argv)
    steps = [f"echo $$ > {procs}" for procs in box.cgroup_procs]
    if box.nproc is not None and box.identity is not None:
        flag = _shell_nproc_flag()
        if flag is None:
            argv = ["prlimit", f"--nproc={box.nproc}:{box.nproc}", "--", *argv]
        else:
            steps.append(f"ulimit {flag} {int(box.nproc)}")  # no -H/-S: both limits
    redirect = ""
    if box.seccomp:
        program = _state_file(state_dir, "seccomp.bpf", seccomp.program())
        redirect = f' {SECCOMP_FD}<"$0"'
        state = str(program)
    else:
        state = "sandbox"
    if not steps and not redirect:
        return argv
    script = "".join(f"{s} && " for s in steps) + f'exec "$@"{redirect}'
    return ["/bin/sh", "-c", script, state, *argv]


def state_dir_for(root: Path) -> Path:
    """Where `command` keeps a sandbox's generated files below a root-only folder `root`."""
    path = root / "sandbox"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path
