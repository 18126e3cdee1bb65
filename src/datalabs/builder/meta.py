"""The metadata and build recipe of a datalab's sources: `datalab-meta.yml` checked with the catalogue's
schema (problems carry file, key and line), `requirements.txt` read for the environment.

A built datalab may leave out `runtime:`: it then runs like its base datalab (the platform's JupyterLab
by default) with its own environment's kernel. Its version is set by the builder (`0.1.0-3`): the
`version` key, if any, gives the `0.1.0` part.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from datalabs.catalogue.loader import META_FILE, LoadError, Problem, _problem, parse_meta
from datalabs.catalogue.schema import NOTEBOOKS_MOUNT, DatalabMeta, undot
from datalabs.sandbox import budget

REQUIREMENTS_FILE = "requirements.txt"
BUDGET = budget.Budget(memory=512 * 2**20, cpu=10, wall=30)
budget.preload("datalabs.builder.meta")
_BASE_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
# Keys the form shows first (DESIGN §7): what must be there, what should, and the rest.
MANDATORY = ("title", "abstract", "distribution.license")
RECOMMENDED = ("description", "creator.name", "contactPoint.email", "keywords", "mission", "domain")


@dataclass
class Recipe:
    """What the builder needs: the requirement lines, from `requirements.txt` then `runtime.requirements`."""

    requirements: list[str] = field(default_factory=list)
    has_file: bool = False


def read_yaml(path: Path) -> dict[str, Any]:
    """The sources' metadata (dotted keys undone), read within the catalogue's bounds (size, depth,
    aliases); LoadError naming the file, with the line, otherwise."""
    rel = path.name
    if not path.is_file():
        raise LoadError([Problem(rel, "", f"the sources have no {META_FILE} at their top level")])
    data, _ = parse_meta(path, rel)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LoadError([Problem(rel, "", "expected a map of keys at the top level")])
    try:
        return undot(data)
    except ValueError as exc:
        raise LoadError([Problem(rel, "", str(exc))]) from None


def base_version(data: dict[str, Any]) -> str:
    """The `0.1.0` part of built versions: the file's `version` if it looks like one, else 0.1.0."""
    v = str(data.get("version", "") or "").strip()
    return v if _BASE_VERSION.match(v) else "0.1.0"


def validate(
    sources: Path, name: str, version: str, base: DatalabMeta, overrides: dict[str, Any] | None = None
) -> DatalabMeta:
    """The sources' metadata (plus form `overrides`) as a full definition of `name` at `version`;
    LoadError with every problem (file, key, line) otherwise; `budget.OverBudget` if checking it needs
    more than `BUDGET` (it runs in a budget worker: whatever the file holds, the server never walks it)."""
    return budget.run(
        _validate, sources, name, version, base, overrides, budget=BUDGET, what=f"checking {META_FILE}"
    )


def _validate(
    sources: Path, name: str, version: str, base: DatalabMeta, overrides: dict[str, Any] | None
) -> DatalabMeta:
    path = sources / META_FILE
    data = read_yaml(path)
    data.update(undot(overrides or {}))
    data["name"], data["version"] = name, version
    if "runtime" not in data:
        data["runtime"] = copy.deepcopy(base.model_dump(mode="json", by_alias=True)["runtime"])
    elif isinstance(data["runtime"], dict):  # partial runtime sections fill in from the base
        data["runtime"] = {**base.model_dump(mode="json", by_alias=True)["runtime"], **data["runtime"]}
    runtime = data["runtime"]
    if isinstance(runtime, dict) and not runtime.get("start") and (first := _first_notebook(sources)):
        runtime["start"] = f"{NOTEBOOKS_MOUNT}/{first}"  # its labs open the app's own notebook first
    try:
        return DatalabMeta.model_validate(data)
    except ValidationError as exc:
        _, node = parse_meta(path, META_FILE)  # only now: line numbers for the error messages
        raise LoadError([_problem(Path(META_FILE), node, err) for err in exc.errors()]) from None


def recipe(sources: Path) -> Recipe:
    req = sources / REQUIREMENTS_FILE
    lines: list[str] = []
    if req.is_file():
        lines = normalise(req.read_text(encoding="utf-8", errors="replace").splitlines())
    # Only what the author's own file declares: an inherited runtime's requirements (the base datalab's)
    # are the platform's environment, already present underneath.
    extra = _declared_requirements(sources)
    return Recipe(
        requirements=lines + [r for r in normalise(extra) if r not in lines], has_file=req.is_file()
    )


def _declared_requirements(sources: Path) -> list[str]:
    try:
        runtime = read_yaml(sources / META_FILE).get("runtime") or {}
    except LoadError:
        return []
    reqs = runtime.get("requirements", []) if isinstance(runtime, dict) else []
    return [str(r) for r in reqs] if isinstance(reqs, list) else []


def _first_notebook(sources: Path) -> str | None:
    """The first notebook (by name) at the top of the sources, not following links."""
    with os.scandir(sources) as entries:
        names = [e.name for e in entries if e.name.endswith(".ipynb") and e.is_file(follow_symlinks=False)]
    return min(names, default=None)


def normalise(lines: list[str]) -> list[str]:
    """Requirement lines without comments, blank lines and spacing differences (the cache key's input)."""
    out = []
    for line in lines:
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            out.append(" ".join(line.split()))
    return out


def problems_text(exc: LoadError) -> str:
    return "; ".join(str(p) for p in exc.problems)
