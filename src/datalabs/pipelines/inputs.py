"""Run inputs: checked against the pipeline's CWL inputs before anything is queued, and file references
resolved to host paths only through the caller's workspaces and the data volumes they may read.

A file is given as a reference `<space>/<path>`: `me/data/x.txt`, `team:astro/obs.rnx` or
`volume:GsscDataProducts/2024/obs.rnx` (or as `{"class": "File", "location": <reference>}`). Every
message names the input and says why, e.g. "input 'count': expected int, got 'abc'".
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.errors import DatalabsError, Invalid
from datalabs.pipelines.documents import Param, short_id, type_text
from datalabs.sandbox import fs
from datalabs.volumes import service as volumes
from datalabs.workspaces import paths
from datalabs.workspaces import service as workspaces

SCALARS = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Place:
    root: Path
    parts: tuple[str, ...]
    ref: str

    @property
    def host_path(self) -> str:
        return os.path.join(self.root, *self.parts)


def split_ref(ref: str) -> tuple[str, str]:
    if isinstance(ref, str) and ref.startswith(("/", "file:")):
        raise Invalid(
            f"'{ref}' is a host path: give a file of yours as me/<path>, team:<team>/<path> or "
            "volume:<volume>/<path>",
            code="bad_file_reference",
        )
    if not isinstance(ref, str) or "/" not in ref.strip("/"):
        raise Invalid(
            f"'{ref}' is not a file reference: use me/<path>, team:<team>/<path> or volume:<volume>/<path>",
            code="bad_file_reference",
        )
    space, _, rest = ref.partition("/")
    return space, rest


def place_of(db: Session, settings: Settings, principal: Principal, ref: str) -> Place:
    """Where `ref` lives, if the principal may read it (NotFound/Forbidden otherwise)."""
    space, rest = split_ref(ref)
    parts = paths.parts_of(rest)
    if space.startswith("volume:"):
        volume = volumes.get_visible(db, principal, space[7:])
        return Place(Path(volume.host_path), parts, ref)
    ws = workspaces.resolve(db, settings, principal, space)
    return Place(ws.tree.root, parts, ref)


def check_readable(place: Place, directory: bool) -> None:
    """Walk to the file or folder without following links (what a lab could plant cannot redirect us)."""
    if directory:
        os.close(paths.open_dir(place.root, place.parts))
        return
    fd, _ = paths.open_file(place.root, place.parts)
    os.close(fd)


# Requirements given with the job (CWL's `cwl:requirements`): applied to the run by the engines, as
# cwltool applies them; not an input.
CWL_REQUIREMENTS = "https://w3id.org/cwl/cwl#requirements"


def validate(params: list[Param], given: dict[str, Any], ignore_unknown: bool = False) -> dict[str, Any]:
    """The inputs with unknown names (unless `ignore_unknown`: then left out, as cwltool ignores job keys
    that are not inputs), missing required values and mistyped values refused."""
    if not isinstance(given, dict):
        raise Invalid("inputs must be an object mapping input names to values", code="bad_inputs")
    known = {p.id: p for p in params}
    if CWL_REQUIREMENTS in given:
        _check_requirements(given[CWL_REQUIREMENTS])
    extra = set(given) - set(known) - {CWL_REQUIREMENTS}
    if ignore_unknown:
        given = {k: v for k, v in given.items() if k not in extra}
    elif unknown := sorted(extra):
        names = ", ".join(f"'{n}'" for n in unknown)
        raise Invalid(
            f"unknown input {names}; this pipeline takes: {', '.join(known) or 'no inputs'}",
            code="unknown_input",
        )
    for p in params:
        if p.id not in given or given[p.id] is None:
            if not p.optional:
                raise Invalid(f"input '{p.id}' ({type_text(p.type)}) is required", code="missing_input")
            continue
        _check(p.type, given[p.id], f"input '{p.id}'")
    return given


def _check_requirements(value: Any) -> None:
    if not isinstance(value, list) or not all(
        isinstance(r, dict) and isinstance(r.get("class"), str) for r in value
    ):
        raise Invalid(
            "cwl:requirements: a list of requirements, each an object with its 'class'", code="bad_input"
        )


def _check(t: Any, value: Any, where: str) -> None:
    if isinstance(t, list):
        errors = []
        for option in t:
            if option == "null":
                if value is None:
                    return
                continue
            try:
                _check(option, value, where)
                return
            except Invalid as exc:
                errors.append(exc.message)
        raise Invalid(
            errors[0] if len(errors) == 1 else f"{where}: expected {type_text(t)}", code="bad_input"
        )
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "array":
            if not isinstance(value, list):
                raise Invalid(f"{where}: expected a list of {type_text(t['items'])}", code="bad_input")
            for i, item in enumerate(value):
                _check(t["items"], item, f"{where}[{i}]")
            return
        if kind == "enum":
            symbols = [short_id(s) for s in t.get("symbols", [])]
            if value not in symbols:
                raise Invalid(f"{where}: '{value}' is not one of {', '.join(symbols)}", code="bad_input")
            return
        if kind == "record":
            if not isinstance(value, dict):
                raise Invalid(f"{where}: expected an object", code="bad_input")
            for f in t.get("fields", []):
                name = short_id(f["name"])
                if name not in value and "default" in f:
                    continue
                _check(f["type"], value.get(name), f"{where}.{name}")
            return
        return  # other complex types: cwltool validates them when the run starts
    if t in ("File", "Directory"):
        _check_file(t, value, where)
        return
    if t == "Any":
        return
    expected = SCALARS.get(t)
    if expected is None:
        return
    ok = isinstance(value, expected) and not (t != "boolean" and isinstance(value, bool))
    if not ok:
        raise Invalid(f"{where}: expected {t}, got {value!r}", code="bad_input")


def _check_file(t: str, value: Any, where: str) -> None:
    if isinstance(value, str):
        split_ref(value)
        return
    if isinstance(value, dict) and value.get("class") == t:
        if "location" in value or "path" in value:
            split_ref(value.get("location") or value.get("path"))
            for i, item in enumerate(value.get("secondaryFiles") or []):
                _check_file(
                    item.get("class") if isinstance(item, dict) else "File",
                    item,
                    f"{where}.secondaryFiles[{i}]",
                )
            return
        if t == "File" and isinstance(value.get("contents"), str):
            return  # a literal file: contents given inline
        if t == "Directory" and isinstance(value.get("listing"), list):
            for i, item in enumerate(value["listing"]):  # a literal folder: its entries given
                kind = item.get("class") if isinstance(item, dict) else None
                if kind not in ("File", "Directory"):
                    raise Invalid(f"{where}.listing[{i}]: expected a File or Directory", code="bad_input")
                _check_file(kind, item, f"{where}.listing[{i}]")
            return
    raise Invalid(
        f"{where}: expected a {t} reference such as 'me/data/file.txt' or 'volume:<volume>/<path>'",
        code="bad_input",
    )


def file_refs(value: Any) -> list[tuple[str, bool]]:
    """(reference, is_directory) for every file or folder reference inside an input value."""
    found: list[tuple[str, bool]] = []
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        ref = value.get("location") or value.get("path")
        if ref:
            found.append((ref, value["class"] == "Directory"))
        for key in ("secondaryFiles", "listing"):
            found += file_refs(value.get(key))
    elif isinstance(value, dict):
        for v in value.values():
            found += file_refs(v)
    elif isinstance(value, list):
        for v in value:
            found += file_refs(v)
    return found


def normalise(
    params: list[Param], given: dict[str, Any], namespaces: dict[str, str] | None = None
) -> dict[str, Any]:
    """String references of File/Directory inputs turned into CWL objects, so later steps see one form;
    File formats written as CURIEs of the document's `namespaces` (`edam:format_2330`) expanded to IRIs,
    as cwltool reads a job with the document's namespaces."""
    out = dict(given)
    for p in params:
        if p.id in out and out[p.id] is not None:
            out[p.id] = _formats(_objects(p.type, out[p.id]), namespaces or {})
    return out


def _formats(value: Any, namespaces: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_formats(v, namespaces) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _formats(v, namespaces) for k, v in value.items()}
    fmt = value.get("format")
    if value.get("class") == "File" and isinstance(fmt, str):
        prefix, sep, rest = fmt.partition(":")
        if sep and isinstance(namespaces.get(prefix), str) and not rest.startswith("//"):
            out["format"] = namespaces[prefix] + rest
    return out


def _objects(t: Any, value: Any) -> Any:
    if isinstance(value, str):
        kinds = [x for x in (t if isinstance(t, list) else [t]) if x in ("File", "Directory")]
        if kinds:
            return {"class": kinds[0], "location": value}
        return value
    if isinstance(value, list):
        items = t.get("items") if isinstance(t, dict) else None
        if items is None and isinstance(t, list):
            items = next(
                (x.get("items") for x in t if isinstance(x, dict) and x.get("type") == "array"), None
            )
        return [_objects(items, v) for v in value] if items is not None else value
    return value


def check_access(db: Session, settings: Settings, principal: Principal, inputs: dict[str, Any]) -> None:
    """Every referenced file exists and the principal may read it; the message names the input."""
    for name, value in inputs.items():
        for ref, directory in file_refs(value):
            try:
                check_readable(place_of(db, settings, principal, ref), directory)
            except DatalabsError as exc:
                raise type(exc)(f"input '{name}': {exc.message}", code=exc.code) from None


def to_host(
    db: Session, settings: Settings, principal: Principal, value: Any, stage: Path | None = None
) -> Any:
    """The input value with every reference replaced by the host path the engine reads (checked again now:
    the file may have changed since the run was queued).

    With `stage` (a new folder private to the run), files and folders of workspaces — which the user's labs
    can change at any moment, e.g. swap a file for a link to a host file — are taken as private snapshots
    there (hard links to the very inodes checked, see sandbox/fs.py), so whatever the engine later reads as
    root is what was checked. Data volumes are not writable by users and are read in place. Files next to a
    staged file that share its name's stem come along (CWL finds secondary files next to their primary)."""
    counter = iter(range(1, 1 << 30))
    if stage is not None:
        stage.mkdir(parents=True, exist_ok=True, mode=0o700)
    return _to_host(db, settings, principal, value, stage, counter)


def _to_host(db, settings, principal, value: Any, stage: Path | None, counter) -> Any:
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        ref = value.get("location") or value.get("path")
        rest = {
            k: _to_host(db, settings, principal, v, stage, counter)
            for k, v in value.items()
            if k not in ("location", "path")
        }
        if not ref:
            return rest
        place = place_of(db, settings, principal, ref)
        directory = value["class"] == "Directory"
        if stage is None or place.ref.startswith("volume:"):
            check_readable(place, directory)
            return {**rest, "location": file_uri(place.host_path)}
        return {**rest, "location": file_uri(str(_snapshot(place, directory, stage / str(next(counter)))))}
    if isinstance(value, dict):
        return {k: _to_host(db, settings, principal, v, stage, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_host(db, settings, principal, v, stage, counter) for v in value]
    return value


MAX_SIBLINGS = 100


def file_uri(path: str) -> str:
    """A host path as the file:// URI cwltool expects (`#`, `%`, spaces and the like percent-encoded)."""
    return "file://" + quote(path)


def _snapshot(place: Place, directory: bool, folder: Path) -> Path:
    """`place` (walked without following links) as a private snapshot in the new `folder`."""
    folder.mkdir(mode=0o755)
    name = place.parts[-1] if place.parts else "workspace"
    dst = os.open(folder, fs.DIR_FLAGS)
    try:
        if directory:
            src = paths.open_dir(place.root, place.parts)
            try:
                os.mkdir(name, 0o755, dir_fd=dst)
                inner = os.open(name, fs.DIR_FLAGS, dir_fd=dst)
                try:
                    fs.snapshot_tree(src, inner)
                finally:
                    os.close(inner)
            finally:
                os.close(src)
            return folder / name
        fd, _ = paths.open_file(place.root, place.parts)
        try:
            fs.snapshot_file(fd, dst, name)
        finally:
            os.close(fd)
        _siblings(place, name, dst)
    finally:
        os.close(dst)
    return folder / name


def _siblings(place: Place, name: str, dst: int) -> None:
    stem = name.split(".", 1)[0]
    with paths.in_dir(place.root, place.parts[:-1]) as parent:
        with os.scandir(parent) as entries:
            found = [
                e.name
                for e in entries
                if e.name != name and e.name.startswith(stem + ".") and e.is_file(follow_symlinks=False)
            ][:MAX_SIBLINGS]
        for sibling in found:
            try:
                fd = os.open(
                    sibling, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
                )
            except OSError:
                continue
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    fs.snapshot_file(fd, dst, sibling)
            except OSError:
                pass  # a sibling that vanished or cannot be linked is simply not offered
            finally:
                os.close(fd)
