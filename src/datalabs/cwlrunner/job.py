"""The job order as cwltool reads it, made into run inputs for the platform.

- `$namespaces` expand the format CURIEs of File objects (`edam:format_2330` -> its IRI); `$namespaces`,
  `$schemas` and other namespaced metadata are not inputs and are not sent; `cwl:requirements` is sent
  under its IRI, which the engines apply as requirements of the run (as cwltool does).
- Local files and folders (paths, file:// URIs, URL-encoded names) are uploaded into the caller's
  workspace, each in a folder of its own (two inputs named alike never collide), with the files next to
  a file that share its name's stem when the documents use secondaryFiles; explicit `secondaryFiles`,
  Directory listings and File/Directory literals keep their shape with their files uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datalabs.cwlrunner import yaml12
from datalabs.cwlrunner.bundle import local_path
from datalabs.cwlrunner.wire import ApiError, Connection, files_path

CWL_REQUIREMENTS = "https://w3id.org/cwl/cwl#requirements"
CWL_NAMESPACE = "https://w3id.org/cwl/cwl#"


def load(job: str | None) -> tuple[dict[str, Any], Path]:
    """(job order, folder its relative paths are relative to)."""
    if job is None or job == "-" and os.isatty(0):
        return {}, Path.cwd()
    text = os.read(0, 1 << 30).decode() if job == "-" else Path(job).read_text(encoding="utf-8")
    order = yaml12.loads(text) if text.strip() else {}
    if order is None:
        order = {}
    if not isinstance(order, dict):
        raise ValueError(f"{job}: the job order must be a mapping of input names to values")
    return order, (Path.cwd() if job == "-" else Path(job).absolute().parent)


def normalise(order: dict[str, Any]) -> dict[str, Any]:
    namespaces = order.get("$namespaces") or {}
    namespaces = {"cwl": CWL_NAMESPACE, **(namespaces if isinstance(namespaces, dict) else {})}
    out: dict[str, Any] = {}
    for key, value in order.items():
        full = expand(key, namespaces)
        if full == CWL_REQUIREMENTS:
            out[CWL_REQUIREMENTS] = value
        elif key.startswith("$") or ":" in key:
            continue  # metadata, not an input (cwltool ignores it too)
        else:
            out[key] = _formats(value, namespaces)
    return out


def expand(name: str, namespaces: dict[str, str]) -> str:
    prefix, sep, rest = name.partition(":")
    if sep and prefix in namespaces and not rest.startswith("//"):
        return namespaces[prefix] + rest
    return name


def _formats(value: Any, namespaces: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_formats(v, namespaces) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _formats(v, namespaces) for k, v in value.items()}
    if value.get("class") == "File" and isinstance(value.get("format"), str):
        out["format"] = expand(value["format"], namespaces)
    return out


class Uploader:
    """Uploads the local files a job names into `folder` of the caller's workspace (`me/...`)."""

    def __init__(self, conn: Connection, folder: str, siblings: bool) -> None:
        self.conn, self.folder, self.siblings = conn, folder, siblings
        self.done: dict[tuple[Path, str], str] = {}
        self.count = 0

    def inputs(self, order: dict[str, Any], base: Path) -> dict[str, Any]:
        return {k: (v if k == CWL_REQUIREMENTS else self.value(v, base)) for k, v in order.items()}

    def value(self, value: Any, base: Path) -> Any:
        if isinstance(value, list):
            return [self.value(v, base) for v in value]
        if not isinstance(value, dict):
            return value
        kind = value.get("class")
        if kind not in ("File", "Directory"):
            return {k: self.value(v, base) for k, v in value.items()}
        where = value.get("location") or value.get("path")
        rest = {k: self.value(v, base) for k, v in value.items() if k not in ("location", "path")}
        if not isinstance(where, str) or where.startswith("_:"):
            return rest  # a literal: its contents or listing are given
        if "://" in where and not where.startswith("file://"):
            return {**rest, "location": where}  # a URL: the platform decides whether it may fetch it
        return {**rest, "location": self.upload(local_path(where, base).absolute(), kind)}

    def upload(self, local: Path, kind: str) -> str:
        key = (local, kind)
        if key in self.done:
            return self.done[key]
        self.count += 1
        folder = f"{self.folder}/{self.count}"
        ref = f"{folder}/{local.name}"
        if kind == "File":
            if not local.is_file():
                raise FileNotFoundError(f"input file not found: {local}")
            self.conn.put(files_path(ref), local.read_bytes())
            if self.siblings:
                self._siblings(local, folder)
        else:
            if not local.is_dir():
                raise FileNotFoundError(f"input directory not found: {local}")
            self._tree(local, ref)
        self.done[key] = ref
        return ref

    def _siblings(self, local: Path, folder: str) -> None:
        stem = local.name.split(".", 1)[0]
        for entry in os.scandir(local.parent):
            if entry.name != local.name and entry.name.startswith(stem + ".") and entry.is_file():
                self.conn.put(files_path(f"{folder}/{entry.name}"), Path(entry.path).read_bytes())

    def _tree(self, local: Path, ref: str) -> None:
        for top, dirs, names in os.walk(local):
            rel = os.path.relpath(top, local)
            here = ref if rel == "." else f"{ref}/{Path(rel).as_posix()}"
            if not names and not dirs:
                try:
                    self.conn.json("POST", files_path(here), {"op": "mkdir", "parents": True})
                except ApiError as exc:
                    if exc.status != 409:  # there already (the same job run before)
                        raise
            for name in names:
                self.conn.put(files_path(f"{here}/{name}"), (Path(top) / name).read_bytes())
