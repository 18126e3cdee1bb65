"""The files a CWL document needs, gathered on the client to be sent as they are: the document, the
documents it names (`run:`, `$import`, `$mixin`), texts it includes (`$include`), ontologies (`$schemas`)
and the files and folders its literals name (`default: {class: File, location: ...}`).

The client only finds them; the platform's warm worker resolves, validates and packs them (cwltool is not
imported here). A reference to a file that does not exist is left for cwltool to report or warn about.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from datalabs.cwlrunner import yaml12

DOCUMENT_KEYS = ("run", "$import", "$mixin")
MAX_FILES = 2000


class Bundle:
    """`root`: the folder every gathered file is below; `main`: the main document below it, with its
    `#fragment` if one was given; `files`: path below `root` -> content. (A plain class: `dataclasses`
    imports `inspect`, a few milliseconds of the runner's start-up.)"""

    def __init__(self, root: Path, main: str, files: dict[str, bytes] | None = None) -> None:
        self.root, self.main, self.files = root, main, files or {}

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.main.encode())
        for name in sorted(self.files):
            h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {
            "main": self.main,
            "files": {name: base64.b64encode(data).decode() for name, data in self.files.items()},
        }

    def mentions(self, word: bytes) -> bool:
        return any(word in data for data in self.files.values())


def local_path(ref: str, base: Path) -> Path:
    """A path or file:// URI as a local path (URL-encoded names decoded), relative ones from `base`."""
    if ref.startswith("file://"):
        return Path(unquote(urlsplit(ref).path))
    return base / unquote(ref) if "%" in ref else base / ref


def gather(tool: str) -> Bundle:
    """The bundle of the document `tool` (a path or file:// URI, optionally with `#fragment`)."""
    where, _, fragment = tool.partition("#") if not Path(tool).exists() else (tool, "", "")
    main = local_path(where, Path.cwd()).absolute()
    found: dict[Path, bytes] = {}
    queue = [main]
    while queue:
        path = queue.pop()
        if path in found or len(found) > MAX_FILES:
            continue
        data = path.read_bytes()
        found[path] = data
        for target, kind in references(data, path.parent):
            if kind == "document" and target.is_file():
                queue.append(target)
            elif target.is_file():
                for data_file in (target, *secondary_candidates(target)):
                    found.setdefault(data_file, data_file.read_bytes())
            elif target.is_dir():
                for inner in _files_below(target):
                    found.setdefault(inner, inner.read_bytes())
    root = Path(os.path.commonpath([str(p.parent) for p in found]))
    rel = main.relative_to(root).as_posix()
    bundle = Bundle(root, rel + (f"#{fragment}" if fragment else ""))
    bundle.files = {p.relative_to(root).as_posix(): data for p, data in found.items()}
    return bundle


MAX_SECONDARIES = 32  # per data file: a folder of thousands of `data.*` files is not sent whole


def secondary_candidates(path: Path) -> list[Path]:
    """Files beside `path` that its secondaryFiles patterns may name (`hello.txt` -> `hello.txt.2`,
    `hello.idx`: what starts with its name up to the first dot, then a dot). The patterns are only known
    once the job is built, so the platform keeps them all (bounded) next to the document."""
    stem = path.name.split(".", 1)[0] + "."
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    return [
        path.parent / n
        for n in names[: MAX_FILES * 4]
        if n != path.name
        and n.startswith(stem)
        and (path.parent / n).is_file()
        and not (path.parent / n).is_symlink()
    ][:MAX_SECONDARIES]


def _files_below(folder: Path) -> list[Path]:
    out = []
    for top, _, names in os.walk(folder):
        out += [Path(top) / n for n in names]
        if len(out) > MAX_FILES:
            break
    return out


def references(data: bytes, base: Path) -> list[tuple[Path, str]]:
    """(path, 'document' | 'data') of what a document names, from its folder `base`."""
    try:
        doc = yaml12.loads(data.decode())
    except (ValueError, UnicodeDecodeError):
        return []
    found: list[tuple[Path, str]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        literal = node.get("class") in ("File", "Directory")
        for key, value in node.items():
            if isinstance(value, str) and (key in DOCUMENT_KEYS or key == "$include"):
                kind = "document" if key in DOCUMENT_KEYS else "data"
                found += _named(value.split("#", 1)[0], base, kind)
            elif literal and key in ("location", "path") and isinstance(value, str):
                found += _named(value, base, "data")
            elif key == "$schemas" and isinstance(value, list):
                found += [t for v in value if isinstance(v, str) for t in _named(v, base, "data")]
            else:
                stack.append(value)
    return found


def _named(ref: str, base: Path, kind: str) -> list[tuple[Path, str]]:
    if not ref or ref.startswith("_:") or urlsplit(ref).scheme not in ("", "file"):
        return []
    return [(Path(os.path.normpath(local_path(ref, base))), kind)]
