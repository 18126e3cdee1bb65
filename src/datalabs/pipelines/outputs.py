"""Delivering a run's outputs: its output folder is renamed into the owner's workspace at
`pipelines/<pipeline>/<run-id>/` in one step, so the folder appears complete or not at all, and the CWL
output object is rewritten to workspace references (`me/pipelines/hello-world/<run>/banner.txt`).

The folder was written by the run's code: before root touches it, it is confined (links out of it,
FIFOs, devices and hard links removed: sandbox/fs.py), then given to the workspace's owner without
following anything. The output object, too, came from the run (Toil prints it): a location outside the
output folder is dropped, never passed on as if it were the run's."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from datalabs.sandbox import fs
from datalabs.workspaces.paths import TEMP_PREFIX, in_dir, lstat_in
from datalabs.workspaces.service import Space


def deliver(
    space: Space, pipeline: str, run_id: str, outdir: Path, outputs: dict[str, Any]
) -> tuple[str, dict]:
    """Move `outdir` to `<space>/pipelines/<pipeline>/<run_id>` atomically; (folder reference, outputs)."""
    parts = ("pipelines", pipeline)
    owner = space.tree.owner
    outdir.mkdir(parents=True, exist_ok=True)
    fs.confine(outdir)
    if owner is not None:
        fs.chown_tree(outdir, owner.uid, owner.gid)
        if owner.shared:
            fs.share_tree(outdir, owner.gid)
    with in_dir(space.tree.root, parts, create=True, owner=owner) as dfd:
        if lstat_in(dfd, run_id) is not None:
            # A previous attempt delivered and then lost its worker before recording it: this one replaces it.
            aside = f"{TEMP_PREFIX}{run_id}-old"
            with _held(space, parts, aside):  # a crash mid-removal leaves it to start-up recovery
                os.rename(run_id, aside, src_dir_fd=dfd, dst_dir_fd=dfd)
                _remove_at(dfd, aside)
        try:
            os.rename(outdir, run_id, dst_dir_fd=dfd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Another filesystem: copy under a hidden name first, then rename into place.
            temp = f"{TEMP_PREFIX}{run_id}"
            with _held(space, parts, temp):
                shutil.copytree(outdir, f"/proc/self/fd/{dfd}/{temp}", symlinks=True)
                os.rename(temp, run_id, src_dir_fd=dfd, dst_dir_fd=dfd)
            shutil.rmtree(outdir, ignore_errors=True)
    folder = f"{space.id}/pipelines/{pipeline}/{run_id}"
    return folder, rewrite(outputs, "file://" + quote(str(outdir)), folder)


def _held(space: Space, parts: tuple[str, ...], name: str):
    """The temporary `name` recorded in the journal of temporaries while it exists (workspaces/inflight)."""
    journal = space.tree.journal
    return journal.hold(space.tree.root, parts, name) if journal is not None else contextlib.nullcontext()


def size_of(outdir: Path) -> int:
    """Bytes the outputs will add to the workspace, counted as its usage is: regular files, no links."""
    total = 0
    for root, _, files in os.walk(outdir):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def _remove_at(dfd: int, name: str) -> None:
    shutil.rmtree(f"/proc/self/fd/{dfd}/{name}", ignore_errors=True)


def rewrite(value: Any, prefix: str, folder: str) -> Any:
    """File objects' host locations turned into workspace references; host-only keys dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("path", "dirname") or key.startswith("http://commonwl.org/cwltool#"):
                continue
            if key == "location" and isinstance(item, str):
                rest = unquote(item[len(prefix) :])  # cwltool's URIs are quoted
                if (item.startswith(prefix + "/") or item == prefix) and ".." not in rest.split("/"):
                    out[key] = folder + rest
                # else: not in the output folder (a host path a run could name): never passed on
            else:
                out[key] = rewrite(item, prefix, folder)
        return out
    if isinstance(value, list):
        return [rewrite(v, prefix, folder) for v in value]
    return value
