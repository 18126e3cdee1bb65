"""Load datalab definitions from directories, collecting a problem (file, key, reason) for each bad one.

Layout: `<dir>/<name>/datalab-meta.yml` for the current version and, optionally,
`<dir>/<name>/versions/<version>/datalab-meta.yml` for older ones. One bad file never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from datalabs.catalogue.schema import DatalabMeta, undot
from datalabs.sandbox import parsing

log = logging.getLogger(__name__)
META_FILE = "datalab-meta.yml"
BUILTIN_DIR = Path(__file__).parent / "builtin"
MAX_FILE_BYTES = 1_000_000
# Definitions come from operators' folders and from users' app sources alike: always bounded.
META_LIMITS = parsing.Limits(max_bytes=MAX_FILE_BYTES)


@dataclass(frozen=True)
class Problem:
    path: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.key + ': ' if self.key else ''}{self.reason}"


@dataclass(frozen=True)
class Loaded:
    meta: DatalabMeta
    path: Path
    source: str  # builtin | dir
    folder: Path  # the datalab's folder (older versions live below it, in versions/<v>/)

    @property
    def thumbnail_path(self) -> Path | None:
        """The thumbnail file, next to the yml or else in the datalab's folder; never outside that folder."""
        url = self.meta.thumbnailUrl
        if not url or "://" in url or url.startswith("/"):
            return None
        root = self.folder.resolve()
        for base in (self.path.parent, self.folder):
            candidate = (base / url).resolve()
            if candidate.is_file() and candidate.is_relative_to(root):
                return candidate
        return None


def parse_meta(path: Path, display: str) -> tuple[Any, yaml.Node | None]:
    """A `datalab-meta.yml`'s data and node graph (for line numbers), read within `META_LIMITS` (size,
    depth, aliases: see `sandbox.parsing`); `LoadError` naming `display` otherwise."""
    try:
        return parsing.parse_yaml(parsing.read_bounded(path, display, META_LIMITS), display, META_LIMITS)
    except parsing.DocumentError as exc:
        raise LoadError([Problem(display, "", exc.located_reason)]) from None


def load_file(path: Path, folder: Path, source: str = "dir") -> Loaded:
    """Parse one file; raises `LoadError` carrying every problem found in it."""
    data, node = parse_meta(path, str(path))
    if not isinstance(data, dict):
        raise LoadError([Problem(str(path), "", "expected a map of keys at the top level")])
    try:
        data = undot(data)
    except ValueError as exc:
        raise LoadError([Problem(str(path), "", str(exc))]) from exc
    folder_name = folder.name
    data.setdefault("name", folder_name)
    try:
        meta = DatalabMeta.model_validate(data)
    except ValidationError as exc:
        raise LoadError([_problem(path, node, err) for err in exc.errors()]) from exc
    if meta.name != folder_name:
        raise LoadError(
            [Problem(str(path), "name", f"'{meta.name}' differs from its folder name '{folder_name}'")]
        )
    return Loaded(meta=meta, path=path, source=source, folder=folder)


def _problem(path: Path, node: Any, err: dict) -> Problem:
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal"))]
    key = ".".join(loc)
    line = _line_of(node, loc)
    where = f" (line {line})" if line else ""
    reason = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        reason = "required key is missing"
    return Problem(str(path), key, reason + where)


def _line_of(node: Any, loc: list[str]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its deepest existing parent), for error messages."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            match = node.value[int(part)]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


class LoadError(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def load_directories(dirs: list[tuple[Path, str]]) -> tuple[list[Loaded], list[Problem]]:
    """Every definition under the given (directory, source) pairs, and the problems met."""
    loaded: list[Loaded] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Path] = {}
    for root, source in dirs:
        if not root.is_dir():
            problems.append(Problem(str(root), "", "catalogue directory does not exist"))
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = [folder / META_FILE] + sorted((folder / "versions").glob(f"*/{META_FILE}"))
            for path in files:
                if not path.is_file():
                    if path.parent == folder:
                        problems.append(Problem(str(folder), "", f"no {META_FILE} in this folder"))
                    continue
                try:
                    item = load_file(path, folder, source)
                except LoadError as exc:
                    problems.extend(exc.problems)
                    continue
                key = (item.meta.name, item.meta.version)
                if key in seen:
                    problems.append(
                        Problem(
                            str(path),
                            "version",
                            f"version {key[1]} of '{key[0]}' is also defined in {seen[key]}",
                        )
                    )
                    continue
                seen[key] = path
                loaded.append(item)
    for problem in problems:
        log.warning("datalab definition rejected: %s", problem)
    return loaded, problems
