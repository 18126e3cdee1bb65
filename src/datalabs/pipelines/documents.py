"""CWL documents: load and validate with cwltool (schema-salad), pack into one self-contained document,
and describe its inputs, outputs and steps. Errors name the file, line and column and say why.

A submitted document is untrusted: it is read first through the bounded loader (`sandbox.parsing`) with
its references checked to stay in its folder (`sandbox.cwlrefs`), and cwltool then validates and packs
it in a budget worker (`sandbox.budget`), never in the server's own process. cwltool is imported there,
in the warm worker, not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datalabs.errors import Invalid
from datalabs.sandbox import budget, cwlrefs, parsing

MAX_DOCUMENT = 2 * 1024 * 1024
MAX_PACKED = 8 * 2**20  # the packed document, with everything it references
MAX_BUNDLE, MAX_BUNDLE_FILES = 5 * 2**20, 2000  # a document sent with its files (fits the JSON body limit)
# Validating a large workflow takes cwltool ~100 MB and a few seconds; ten times that is an attack.
BUDGET = budget.Budget(memory=1024 * 2**20, cpu=30, wall=60)
# The budget workers start with cwltool imported and its schemas loaded (~0.5 s): no request pays it.
budget.preload("datalabs.pipelines.cwl_warm")
# No container runtime exists on these machines: a tool that *requires* one cannot run (hints are fine).
UNSUPPORTED = ("DockerRequirement", "MPIRequirement")


class Unsupported(Invalid):
    """Valid CWL that needs a feature this platform does not offer (cwl-runner exits 33 for it)."""

    code = "unsupported_requirement"


@dataclass(frozen=True)
class Param:
    id: str
    type: Any  # the CWL type, as packed
    label: str = ""
    doc: str = ""
    default: Any = None
    has_default: bool = False

    @property
    def optional(self) -> bool:
        return self.has_default or (isinstance(self.type, list) and "null" in self.type)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "type_text": type_text(self.type),
            "label": self.label,
            "doc": self.doc,
            "default": self.default,
            "optional": self.optional,
        }


@dataclass(frozen=True)
class Document:
    packed: dict[str, Any]
    cwl_class: str
    label: str = ""
    doc: str = ""
    inputs: list[Param] = field(default_factory=list)
    outputs: list[Param] = field(default_factory=list)
    # Data files the document names (defaults, literals, $schemas), path -> base64 (`pipelines.assets`);
    # the packed document names them as `assets.PLACEHOLDER` + path until `materialise` writes them.
    files: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        content = [self.packed, self.files] if self.files else self.packed
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def main_process(packed: dict[str, Any]) -> dict[str, Any]:
    """The process a packed document runs: `#main` of a `$graph`, or the document itself."""
    if "$graph" not in packed:
        return packed
    graph = packed["$graph"]
    for proc in graph:
        if proc.get("id") == "#main":
            return proc
    return graph[0] if len(graph) == 1 else {}


def processes(packed: dict[str, Any]) -> list[dict[str, Any]]:
    return list(packed.get("$graph", [packed]))


def short_id(ident: str) -> str:
    """`#main/step1/text` -> `text`, `#hello.cwl/banner` -> `banner`."""
    return ident.rsplit("/", 1)[-1].lstrip("#")


def type_text(t: Any) -> str:
    if isinstance(t, str):
        return short_id(t) if t.startswith("#") else t
    if isinstance(t, list):
        rest = [type_text(x) for x in t if x != "null"]
        text = " | ".join(rest)
        return f"{text}?" if "null" in t else text
    if isinstance(t, dict):
        if t.get("type") == "array":
            return f"{type_text(t.get('items'))}[]"
        if t.get("type") == "enum":
            return "enum(" + ", ".join(short_id(s) for s in t.get("symbols", [])) + ")"
        return str(t.get("type"))
    return str(t)


def describe(packed: dict[str, Any]) -> Document:
    main = main_process(packed)

    def params(items: list[dict[str, Any]]) -> list[Param]:
        return [
            Param(
                id=short_id(p["id"]),
                type=p.get("type"),
                label=p.get("label", ""),
                doc=p.get("doc", "") if isinstance(p.get("doc", ""), str) else "\n".join(p["doc"]),
                default=p.get("default"),
                has_default="default" in p,
            )
            for p in items
        ]

    doc = main.get("doc", "")
    return Document(
        packed=packed,
        cwl_class=main.get("class", ""),
        label=main.get("label", ""),
        doc=doc if isinstance(doc, str) else "\n".join(doc),
        inputs=params(main.get("inputs", [])),
        outputs=params(main.get("outputs", [])),
    )


def load_file(
    path: Path,
    display: str | None = None,
    *,
    root: Path | None = None,
    fragment: str = "",
    containers: str = "refuse",
) -> Document:
    """Validate and pack the CWL document at `path` (other files it references are read from its folder,
    or from `root` above it), or its process `#fragment`.
    Invalid names `display` (default: the file name) with line and column; Unsupported for requirements
    this platform cannot meet; `cwlrefs.ReferenceOutside` for a reference out of the folder;
    `budget.OverBudget` when checking it needs more than `BUDGET` (it runs in a budget worker)."""
    display = display or path.name
    document = budget.run(
        _load_file, path, display, root, fragment, budget=BUDGET, what=f"validating {display}"
    )
    if containers == "sandbox":  # the operator runs container tools in the sandbox (settings.pipelines)
        document = replace(document, packed=containers_as_hints(document.packed))
    _check_supported(document.packed, display)
    return document


def _load_file(path: Path, display: str, root: Path | None = None, fragment: str = "") -> Document:
    """`load_file`'s work, in the budget worker: the bounded pre-check (YAML bounds, references kept
    inside the folder), then cwltool's validation and packing, then the packed size."""
    from cwltool.context import LoadingContext
    from cwltool.load_tool import fetch_document, make_tool, resolve_and_validate_document
    from cwltool.pack import pack
    from cwltool.workflow import default_make_tool
    from schema_salad.exceptions import SchemaSaladException

    from datalabs.pipelines import assets

    quiet_cwltool()
    root = root or path.parent
    _check_yaml(path, display, root)
    try:
        ctx = LoadingContext(
            {
                "do_update": True,
                "strict": True,
                "construct_tool_object": default_make_tool,
                "fetcher_constructor": confined_fetcher(root),
            }
        )
        ctx, workflowobj, uri = fetch_document(
            path.absolute().as_uri() + (f"#{fragment}" if fragment else ""), ctx
        )
        ctx, uri = resolve_and_validate_document(ctx, workflowobj, uri)
        make_tool(uri, ctx)  # builds every process: catches what schema validation alone lets through
        packed = pack(ctx, uri)
    except MemoryError:
        raise  # the budget's to report
    except (SchemaSaladException, Exception) as exc:  # cwltool raises several unrelated exception types
        raise _invalid(exc, path, display) from None
    packed, files = assets.gather(exact_floats(packed), root)
    text = json.dumps(packed)
    if len(text) > MAX_PACKED:
        raise parsing.DocumentTooLarge(
            display, f"the packed document (with what it references) is larger than {MAX_PACKED // 2**20} MiB"
        )
    return replace(describe(json.loads(text)), files=files)


def exact_floats(value: Any) -> Any:
    """Floats as written in the document kept through JSON: cwltool puts a float on a command line as it
    was written (`1.23e5` -> `123000`), a packed one as Python writes it (`123000.0`). A float written with
    an exponent whose decimal form is whole becomes that integer (a float input accepts it)."""
    from ruamel.yaml.representer import RoundTripRepresenter
    from ruamel.yaml.scalarfloat import ScalarFloat

    from datalabs.cwlrunner.yaml12 import exact_number

    if isinstance(value, dict):
        return {k: exact_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact_floats(v) for v in value]
    if isinstance(value, ScalarFloat):
        return exact_number(RoundTripRepresenter().represent_scalar_float(value).value)
    return value


def confined_fetcher(root: Path):
    """A schema-salad fetcher that reads only files under `root`: a document may `$import` or `run:` its
    neighbours, never host files (`/etc/...`) or other users' workspaces, and never fetches from the
    network."""
    from urllib.parse import unquote, urlsplit

    from schema_salad.exceptions import ValidationException
    from schema_salad.fetcher import DefaultFetcher

    inside = str(root.resolve()) + "/"

    def allowed(url: str) -> bool:
        split = urlsplit(url)
        return split.scheme == "file" and os.path.realpath(unquote(split.path)).startswith(inside)

    class Confined(DefaultFetcher):
        # The CWL schemas themselves are preloaded in the cache: those are always readable.
        def fetch_text(self, url: str, content_types=None) -> str:
            if url not in self.cache and not allowed(url):
                name = url.rstrip("/").rsplit("/", 1)[-1]
                raise ValidationException(f"'{name}' is outside the pipeline's folder: not allowed")
            return super().fetch_text(url, content_types)

        def check_exists(self, url: str) -> bool:
            return url in self.cache or (allowed(url) and super().check_exists(url))

    return Confined


def quiet_cwltool() -> None:
    """cwltool logs every resolved path at INFO on its own stderr handler: keep only warnings."""
    import logging

    logging.getLogger("cwltool").setLevel(logging.WARNING)
    logging.getLogger("salad").setLevel(logging.WARNING)


def load_text(name: str, text: str, containers: str = "refuse") -> Document:
    """Validate a document given as text (a single file or a packed `$graph` document)."""
    if len(text.encode()) > MAX_DOCUMENT:
        raise Invalid(f"{name}: the document is larger than {MAX_DOCUMENT // 1024} KiB", code="invalid_cwl")
    # Only used in messages and as the temporary file's name: keep it a plain, safe file name.
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(name or "").name).lstrip(".")[:100] or "pipeline.cwl"
    with tempfile.TemporaryDirectory(prefix="datalabs-cwl-") as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        return load_file(path, name, containers=containers)


def load_bundle(main: str, files: dict[str, bytes], containers: str = "refuse") -> Document:
    """Validate a document sent with the files it references (`datalabs cwl-runner`): `files` maps paths
    below one folder to contents, `main` is the document's path there with an optional `#process`. The
    references stay within that folder (the same checks as a workspace folder gets)."""
    where, _, fragment = main.partition("#")
    if sum(len(d) for d in files.values()) > MAX_BUNDLE or len(files) > MAX_BUNDLE_FILES:
        raise Invalid(
            f"the documents and files sent exceed {MAX_BUNDLE // 2**20} MiB or {MAX_BUNDLE_FILES} files",
            code="invalid_cwl",
        )
    with tempfile.TemporaryDirectory(prefix="datalabs-cwl-") as tmp:
        root = Path(tmp) / "src"
        for rel, data in files.items():
            parts = rel.split("/")
            if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or len(rel) > 1024:
                raise Invalid(
                    f"'{rel}' is not a relative path below the document's folder", code="invalid_cwl"
                )
            target = root.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        path = root.joinpath(*where.split("/"))
        if where not in files or not path.is_file():
            raise Invalid(f"'{where}' is not among the files sent", code="invalid_cwl")
        return load_file(path, where, root=root, fragment=fragment, containers=containers)


def _check_yaml(path: Path, display: str, root: Path) -> None:
    """The document and what it references, read with bounds before cwltool reads anything: YAML errors
    with their line (before schema-salad turns them into a less readable message), aliases, depth and
    size bounded, and every reference kept inside the document's folder."""
    try:
        data = cwlrefs.check(path, root, display)
    except parsing.DocumentError as exc:
        if isinstance(exc, parsing.DocumentTooLarge):
            raise
        raise Invalid(exc.message, code="invalid_cwl") from None
    if not isinstance(data, dict):
        raise Invalid(
            f"{display}:1:1: a CWL document must be a mapping (class, inputs, ...)", code="invalid_cwl"
        )
    if "cwlVersion" not in data:
        raise Invalid(f"{display}:1:1: missing 'cwlVersion' (e.g. cwlVersion: v1.2)", code="invalid_cwl")


def _invalid(exc: Exception, path: Path, display: str) -> Invalid:
    message = str(exc).strip() or type(exc).__name__
    # Host paths never reach users: show the name they gave (schema-salad writes paths relative to the
    # current directory, absolute ones, or file:// URIs).
    for form in (f"file://{path}", os.path.relpath(path), str(path)):
        message = message.replace(form, display)
    for folder in (f"file://{path.parent}/", os.path.relpath(path.parent) + "/", f"{path.parent}/"):
        message = message.replace(folder, "")
    message = re.sub(r"^\s*Resolved .*$", "", message, flags=re.M).strip()
    message = re.sub(r"\n\s{12,}", " ", message)  # schema-salad's wrapped continuation lines
    if "unsupported requirement" in message.lower():
        return Unsupported(message)
    if not re.match(r"^[^\s:]+:\d+:\d+:", message):
        message = f"{display}: {message}"
    return Invalid(message, code="invalid_cwl")


def _check_supported(packed: dict[str, Any], display: str) -> None:
    for proc in processes(packed):
        for req in proc.get("requirements", []) or []:
            if req.get("class") in UNSUPPORTED:
                where = short_id(proc.get("id", "")) or display
                raise Unsupported(
                    f"{display}: '{where}' requires {req['class']}, which this platform does not offer "
                    "(no container runtime); move it to 'hints' to run the tool without it"
                )
        for step in proc.get("steps", []) or []:
            run = step.get("run")
            if isinstance(run, dict):
                _check_supported(run, display)


def containers_as_hints(packed: Any) -> Any:
    """The document with DockerRequirement moved from each process's requirements to its hints: its tools
    then run in the platform's sandbox with the platform's software (`pipelines.containers = sandbox`)."""
    if isinstance(packed, list):
        return [containers_as_hints(v) for v in packed]
    if not isinstance(packed, dict):
        return packed
    out = {k: containers_as_hints(v) for k, v in packed.items()}
    reqs = out.get("requirements")
    if isinstance(reqs, list) and any(
        isinstance(r, dict) and r.get("class") == "DockerRequirement" for r in reqs
    ):
        moved = [r for r in reqs if isinstance(r, dict) and r.get("class") == "DockerRequirement"]
        out["requirements"] = [r for r in reqs if r not in moved]
        out["hints"] = [*(out.get("hints") or []), *moved]
    return out


def materialise(
    root: Path, version_id: int, packed: dict[str, Any], files: dict[str, str] | None = None
) -> Path:
    """The packed document of a version as a file engines can load (written once, atomically), with the
    data files it names in `v<id>.files/` beside it."""
    from datalabs.pipelines import assets

    path = root / f"v{version_id}.cwl"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(packed, ensure_ascii=False)  # cwltool's YAML reader splits escaped surrogates
        if files:
            text = assets.write(files, root / f"v{version_id}.files", text)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return path
