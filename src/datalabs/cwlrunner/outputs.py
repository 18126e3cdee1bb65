"""A run's outputs brought into `--outdir` and its output object printed as cwltool prints it.

The run's output folder is fetched in one request (as a zip) and unpacked in `--outdir` with the layout the
engine gave it: outputs that share a basename were already told apart there (`out.txt`, `out.txt_2`), as
cwltool does in its own `--outdir`. File and Directory objects then get local `location` (file:// URI) and
`path`, without `nameroot`, `nameext` or `dirname`: cwltool's final output object, key for key.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from datalabs.cwlrunner.wire import Connection, files_path

HOST_ONLY = ("path", "nameext", "nameroot", "dirname")


def has_files(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("class") in ("File", "Directory") or any(has_files(v) for v in value.values())
    if isinstance(value, list):
        return any(has_files(v) for v in value)
    return False


def fetch(conn: Connection, folder: str, outdir: Path) -> None:
    """The run's output folder (a workspace reference) unpacked into `outdir`."""
    import zipfile

    data = conn.get_bytes(files_path(folder, "format=zip"))
    outdir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            parts = [p for p in info.filename.split("/") if p]
            if not parts or any(p in (".", "..") for p in parts):
                continue
            target = outdir.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_dir():
                continue  # never write through a link or over a folder already in --outdir
            with archive.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, stat.S_IMODE(mode))


def localise(value: Any, folder: str, outdir: Path) -> Any:
    """Workspace references under the run's `folder` turned into files in `outdir`."""
    if isinstance(value, list):
        return [localise(v, folder, outdir) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: localise(v, folder, outdir) for k, v in value.items() if k not in HOST_ONLY}
    if value.get("class") in ("File", "Directory") and isinstance(value.get("location"), str):
        location = value["location"]
        if location == folder or location.startswith(folder + "/"):
            local = outdir.joinpath(*[p for p in location[len(folder) :].split("/") if p])
            out["location"] = "file://" + quote(str(local))
            out["path"] = str(local)
    return out


def dumps(outputs: Any) -> str:
    return json.dumps(outputs, indent=4, ensure_ascii=False)
