"""The bubblewrap prefix a CWL tool runs under: the same system view as labs (runtimes/sandbox.py), the
tool's inputs bound read-only at their own paths, its output and temporary folders writable, nothing else
of the host (no platform state, no other workspace). bwrap dies with the worker (`--die-with-parent`), so
a killed worker leaves no tool running."""

from __future__ import annotations

import os
from pathlib import Path

from datalabs.runtimes.local import lab_uid
from datalabs.runtimes.sandbox import SYSTEM_DIRS, bwrap_path, python_dirs


def chown_tree(top: str | Path, uid: int) -> None:
    """Give `top` and everything under it (links themselves, not their targets) to the labs' uid."""
    os.chown(top, uid, uid)
    for root, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def available() -> bool:
    return bwrap_path() is not None


def prefix(outdir: str, tmpdir: str, readonly: list[tuple[str, str]]) -> list[str]:
    """The argv prefix (bwrap ... --) for a tool writing to `outdir` and `tmpdir` and reading the
    `(host path, path seen by the tool)` pairs of `readonly`."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    uid = lab_uid()
    argv = [bwrap, "--die-with-parent", "--new-session"]
    if uid is None:
        argv += ["--unshare-all", "--share-net", "--cap-drop", "ALL"]
    else:
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            argv += ["--symlink", str(p.readlink()), d]
        elif p.exists():
            argv += ["--ro-bind", d, d]
    made: set[str] = set()
    for d in python_dirs():
        argv += _parents(d, made) + ["--ro-bind", d, d]
    for path in (outdir, tmpdir):
        argv += _parents(path, made) + ["--bind", path, path]
    for source, target in sorted(set(readonly)):
        if Path(source).exists():
            argv += _parents(target, made) + ["--ro-bind", source, target]
    argv += ["--chdir", outdir]
    if uid is not None:
        # Built as root (so any path can be bound); the tool itself runs as the unprivileged lab uid.
        argv += [
            "--",
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
    return [*argv, "--"]


def _parents(path: str, made: set[str]) -> list[str]:
    # bwrap as root would create missing parents with mode 0700, closed to the tool's uid.
    argv: list[str] = []
    for parent in reversed(Path(path).parents[:-1]):
        if str(parent) not in made:
            made.add(str(parent))
            argv += ["--perms", "0755", "--dir", str(parent)]
    return argv
