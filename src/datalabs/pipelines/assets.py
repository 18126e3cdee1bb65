"""The data files a CWL document names, kept with its pipeline version.

Packing inlines the documents a workflow references but not the files its File and Directory defaults
and literals name (`default: {class: File, location: data.txt}`), nor the ontologies of its `$schemas`:
the packed document names them by absolute `file://` URIs of the folder it was validated in, a temporary
one. `gather` (in the validating budget worker) takes those files, bounded, and names them by a
placeholder; `write` (where an engine runs the version) puts them in a folder of the platform's own next
to the packed document and points the document there. Files are written by the platform from the stored
content, never linked, so nothing a user's lab can change is read through them.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from datalabs.errors import Invalid

PLACEHOLDER = "datalabs-files:/"
MAX_BYTES = 8 * 2**20
MAX_FILES = 2000
MAX_SECONDARIES = 32  # candidates per named file (cwlrunner.bundle sends no more)


def gather(packed: dict[str, Any], root: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(packed with the folder's file URIs replaced by the placeholder, {path: base64 content})."""
    prefix = root.resolve().as_uri() + "/"
    named: set[str] = set()

    def visit(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: visit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v) for v in value]
        if isinstance(value, str) and value.startswith(prefix):
            rest = value[len(prefix) :]
            named.add(unquote(rest.split("#", 1)[0]))
            return PLACEHOLDER + rest
        return value

    packed = visit(packed)
    files: dict[str, str] = {}
    budget = [MAX_BYTES]
    for rel in sorted(named):
        _take(root, rel, files, budget)
    return packed, files


def _take(root: Path, rel: str, files: dict[str, str], budget: list[int]) -> None:
    path = root / rel
    try:
        st = os.lstat(path)
    except OSError:
        return  # a default that does not exist: cwltool warns when the run starts
    if stat.S_ISREG(st.st_mode):
        _add(files, rel, path.read_bytes(), budget)
        _take_secondaries(root, rel, files, budget)
    elif stat.S_ISDIR(st.st_mode):
        for top, dirs, names in os.walk(path):  # does not follow links to folders
            here = Path(top).relative_to(root).as_posix()
            if not dirs and not names:
                files.setdefault(here + "/", "")
            for name in names:
                inner = Path(top) / name
                if stat.S_ISREG(os.lstat(inner).st_mode):
                    _add(files, f"{here}/{name}", inner.read_bytes(), budget)


def _take_secondaries(root: Path, rel: str, files: dict[str, str], budget: list[int]) -> None:
    """Regular files beside `rel` that its secondaryFiles patterns may name (`hello.txt.2`, `hello.idx`:
    its name up to the first dot, then a dot; cwlrunner.bundle sends the same), within the budget."""
    folder, _, name = rel.rpartition("/")
    stem = name.split(".", 1)[0] + "."
    try:
        names = sorted(os.listdir(root / folder)) if folder else sorted(os.listdir(root))
    except OSError:
        return
    taken = 0
    for other in names:
        if other == name or not other.startswith(stem) or taken >= MAX_SECONDARIES:
            continue
        taken += 1
        other_rel = f"{folder}/{other}" if folder else other
        with_path = root / other_rel
        if other_rel not in files and stat.S_ISREG(os.lstat(with_path).st_mode):
            _add(files, other_rel, with_path.read_bytes(), budget)


def _add(files: dict[str, str], rel: str, data: bytes, budget: list[int]) -> None:
    budget[0] -= len(data)
    if budget[0] < 0 or len(files) >= MAX_FILES:
        raise Invalid(
            f"the files the document names exceed {MAX_BYTES // 2**20} MiB or {MAX_FILES} files",
            code="invalid_cwl",
        )
    files.setdefault(rel, base64.b64encode(data).decode())


def write(files: dict[str, str], folder: Path, text: str) -> str:
    """Write `files` into `folder` (once; a complete folder or none) and return the document `text` with
    the placeholder pointing there."""
    if not folder.exists():
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-files-"))
        try:
            for rel, content in files.items():
                parts = [p for p in rel.split("/") if p]
                if not parts or any(p in (".", "..") for p in parts):
                    continue
                target = tmp.joinpath(*parts)
                if rel.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(content))
                target.chmod(0o644)
            for top, dirs, _ in os.walk(tmp):
                for d in dirs:
                    os.chmod(Path(top) / d, 0o755)
            tmp.chmod(0o755)
            os.rename(tmp, folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not folder.exists():
                raise
    return text.replace(PLACEHOLDER, "file://" + quote(str(folder)) + "/")
