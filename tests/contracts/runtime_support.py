"""Helpers to build lab specs for runtime tests (shared by the contract suite and LocalRuntime tests)."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

from datalabs.runtimes.base import LabSpec, Mount
from datalabs.runtimes.local import lab_uid

LABAPP_DIR = Path(__file__).parent.parent / "runtimes"


def web_spec(
    tmp_path: Path, *, command: list[str] | None = None, mounts: list[Mount] | None = None, **kw
) -> LabSpec:
    lab_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(16)
    workspace = tmp_path / "workspaces" / "users" / "ada"
    workspace.mkdir(parents=True, exist_ok=True)
    if (uid := lab_uid()) is not None:
        import os

        os.chown(workspace, uid, uid)
        tmp_path.chmod(0o755)
        for parent in workspace.parents:
            if parent == tmp_path.parent:
                break
            parent.chmod(0o755)
    base = [
        Mount(workspace, "/media/home/my_workspace", readonly=False),
        Mount(LABAPP_DIR, "/media/notebooks", readonly=True),
    ]
    return LabSpec(
        lab_id=lab_id,
        owner="ada",
        kind="web",
        command=command or [sys.executable, "/media/notebooks/labapp.py", "/run/datalab/lab.sock", secret],
        runtime_dir=Path(tempfile.mkdtemp(prefix="dl-")) / lab_id,
        log_path=tmp_path / "labs" / lab_id / "lab.log",
        mounts=base + (mounts or []),
        secret=secret,
        secret_headers={"X-Lab-Secret": secret},
        env={"DATALAB_ID": lab_id},
        start_timeout=kw.pop("start_timeout", 30),
        **kw,
    )
