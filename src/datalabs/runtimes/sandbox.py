"""The bubblewrap command line for a lab (DESIGN §5): what the lab sees, and nothing else.

System directories and the Python installation are bound read-only; the owner's workspaces, the chosen
volumes, the datalab's files and the lab's runtime dir are bound as the spec's mounts say. The platform's
home (database, other users' files, other labs' sockets) is never bound. The network namespace is
shared so labs can reach the platform API; labs listen on unix sockets only.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from datalabs.runtimes.base import LabSpec

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def lab_path() -> str:
    """PATH inside labs: the platform's environment first (JupyterLab and friends), then the system."""
    return f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin"


def python_dirs() -> list[str]:
    """The interpreter's installation and the platform's environment, so lab commands from it run."""
    dirs = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return sorted(d for d in dirs if not any(d.startswith(s + "/") for s in SYSTEM_DIRS))


def sandbox_hostname(spec: LabSpec) -> str:
    return f"lab-{spec.lab_id[:8]}"


def bwrap_command(spec: LabSpec, bwrap: str, uid: int | None = None, extra: list[str] = ()) -> list[str]:
    """The sandbox command. With `uid` (the platform runs as root) bwrap builds the sandbox as root, so it
    can bind any path, and the lab command then drops to `uid` with no capabilities left (setpriv);
    otherwise an unprivileged user namespace is used and all capabilities are dropped. `extra`: more bwrap
    arguments, applied after the standard mounts (e.g. a desktop lab's X socket directory)."""
    if uid is None:
        namespaces = ["--unshare-all", "--share-net", "--cap-drop", "ALL"]
        command = list(spec.command)
    else:
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        command = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *spec.command,
        ]
    argv = [
        bwrap,
        *namespaces,
        "--hostname",
        sandbox_hostname(spec),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # A private /tmp the lab's user can write (bwrap as root would make it 0755 root): Java, X and
        # most desktop apps need one.
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
        "--tmpfs",
        "/media",
        "--dir",
        "/media/home",
        "--dir",
        "/media/data",
    ]
    for d in SYSTEM_DIRS:
        if Path(d).exists():
            argv += (
                ["--ro-bind", d, d] if not Path(d).is_symlink() else ["--symlink", str(Path(d).readlink()), d]
            )
    for d in python_dirs():
        # bwrap (as root) would create the missing parents with mode 0700, closed to the lab's uid.
        for parent in reversed(Path(d).parents[:-1]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", d, d]
    argv += ["--bind", str(spec.runtime_dir), "/run/datalab", *extra]
    made = {"/media", "/media/home", "/media/data"}
    for m in spec.mounts:
        # Missing parents (e.g. /media/home/team_workspaces) would be made 0700 by bwrap as root.
        for parent in reversed(Path(m.target).parents[:-1]):
            if str(parent) not in made:
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        argv += ["--ro-bind" if m.readonly else "--bind", str(m.source), m.target]
    argv += ["--chdir", spec.workdir, "--setenv", "HOME", spec.workdir]
    for key, value in spec.env.items():
        argv += ["--setenv", key, value]
    return argv + ["--", *command]
