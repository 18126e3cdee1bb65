"""The files a CWL document makes cwltool read, checked before cwltool (running as root) reads any.

schema-salad follows `$import`, `$include` and `$mixin`, resolves `run:` of workflow steps, fetches
`$schemas`, and lets `$base` or an absolute `id` move the base every relative reference resolves from;
File and Directory literals (`default: {class: File, location: ...}`) are read when a run starts. A
submitted document may only name files in its own folder (the folder it was submitted as, or a
temporary one holding the text alone): never a host path (`/etc/shadow`, the platform's `secret_key`),
a `file://` or `http(s)://` URL, or a path climbing out with `..`.

`check` walks the main document and every document it references (each through the bounded YAML loader
of `sandbox.parsing`), refusing the first reference that leaves the folder with `ReferenceOutside`
(422, `invalid_cwl`) naming the file, line, key and reference, and bounding the whole tree: number of
references, depth of reference chains, total bytes read. The confined fetcher in
`pipelines.documents` stays as a second line: it refuses whatever this check did not foresee.
"""

from __future__ import annotations

import posixpath
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from datalabs.errors import Invalid
from datalabs.sandbox import parsing

# The keys whose values name a document or text schema-salad fetches (followed by `check`), and `id`,
# which names a place (the base of its object's relative references) but is not fetched.
FETCHED = ("$import", "$include", "$mixin", "run")
NAMED = (*FETCHED, "id")
LITERAL_CLASSES = ("File", "Directory")


@dataclass(frozen=True)
class Limits:
    document: parsing.Limits = field(
        default_factory=lambda: parsing.Limits(max_bytes=2 * 2**20, max_nodes=500_000, max_chars=8 * 2**20)
    )
    max_references: int = 200  # every reference met, in all documents together
    max_chain: int = 8  # a references b references c ...
    max_total_bytes: int = 8 * 2**20  # every document and included text read


DEFAULT = Limits()


class ReferenceOutside(Invalid):
    """A reference to something outside the document's folder (or a directive that would allow one).
    Its code is the one every invalid CWL document has (API clients know it); the message says which
    reference, where."""

    code = "invalid_cwl"


@dataclass(frozen=True)
class Reference:
    source: str  # the referring file, as the user knows it
    line: int
    column: int
    key: str
    value: str


def check(path: Path, root: Path, display: str, limits: Limits = DEFAULT) -> Any:
    """Check the document at `path` (under `root`) and the tree of documents it references; returns the
    main document's data. `display` is the main file's name in messages; others are named by their path
    below `root`. Raises ReferenceOutside, `parsing.DocumentError`, or `TooLarge` for the tree."""
    root = root.resolve()
    main_rel = path.resolve().relative_to(root).as_posix()
    queue: deque[tuple[str, int]] = deque([(main_rel, 0)])
    seen = {main_rel}
    total = references = 0
    main_data: Any = None
    while queue:
        rel, chain = queue.popleft()
        name = display if rel == main_rel else rel
        text = parsing.read_bounded(root / rel, name, limits.document)
        total += len(text)
        _check_total(total, limits)
        data, node = parsing.parse_yaml(text, name, limits.document)
        if rel == main_rel:
            main_data = data
        for ref in references_in(node, name):
            references += 1
            if references > limits.max_references:
                raise parsing.DocumentTooLarge(
                    name, f"more than {limits.max_references} references to other files", ref.line, ref.column
                )
            target = inside(ref, posixpath.dirname(rel))
            if ref.key not in FETCHED or target is None or target in seen or not (root / target).is_file():
                continue  # fragments and literals name no file; a missing file is cwltool's to report
            seen.add(target)
            if ref.key == "$include":  # text, not a document: only its size matters
                total += (root / target).stat().st_size
                _check_total(total, limits)
                continue
            if chain + 1 > limits.max_chain:
                raise parsing.DocumentTooLarge(
                    name,
                    f"references nested deeper than {limits.max_chain} files ({ref.key} '{ref.value}')",
                    ref.line,
                    ref.column,
                )
            queue.append((target, chain + 1))
    return main_data


def _check_total(total: int, limits: Limits) -> None:
    if total > limits.max_total_bytes:
        raise parsing.DocumentTooLarge(
            "the pipeline", f"its documents and included files exceed {limits.max_total_bytes // 2**20} MiB"
        )


def references_in(node: yaml.Node | None, source: str) -> list[Reference]:
    """Every reference in a (measured) node graph, each node visited once however often it is aliased.
    Directives that move the base of relative references (`$base`, an absolute `id`) are refused here."""
    found: list[Reference] = []
    stack = [node] if node is not None else []
    visited: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
            continue
        if not isinstance(current, yaml.MappingNode):
            continue
        pairs = {k.value: v for k, v in current.value if isinstance(k, yaml.ScalarNode)}
        is_literal = _scalar(pairs.get("class")) in LITERAL_CLASSES
        for key, value in current.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            text = _scalar(value)
            at = value.start_mark
            if name == "$base":
                raise ReferenceOutside(
                    f"{source}:{at.line + 1}:{at.column + 1}: $base would make references resolve from "
                    "elsewhere than the pipeline's folder: not allowed"
                )
            # An `id` becomes the base its object's relative references resolve from: kept inside too,
            # unless the object holds no reference at all (metadata such as `s:author: {id: <ORCID>}`).
            if name == "id" and text is not None and not _holds_references(current):
                continue
            if text is not None and (name in NAMED or (is_literal and name in ("location", "path"))):
                found.append(Reference(source, at.line + 1, at.column + 1, name, text))
            elif name == "$schemas" and isinstance(value, yaml.SequenceNode):
                # Ontologies (EDAM) are named by http URL: never fetched (the fetcher refuses the
                # network, cwltool warns and goes on), so only local paths are references here.
                found.extend(
                    Reference(source, v.start_mark.line + 1, v.start_mark.column + 1, name, v.value)
                    for v in value.value
                    if isinstance(v, yaml.ScalarNode) and urlsplit(v.value).scheme not in ("http", "https")
                )
            stack.extend((key, value))
    return found


def _holds_references(node: yaml.MappingNode) -> bool:
    """Whether a fetched key, a File/Directory literal or a `$schemas` list is anywhere below `node`."""
    stack: list[yaml.Node] = [node]
    visited: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name in (*FETCHED, "$schemas", "$base") or (
                    name == "class" and _scalar(value) in LITERAL_CLASSES
                ):
                    return True
                stack.append(value)
    return False


def inside(ref: Reference, base: str) -> str | None:
    """The path below the root that `ref` names (from the folder `base` of its file), None when it names
    no file (a `#fragment`, a `_:` blank node); ReferenceOutside when it leaves the root."""
    value = ref.value
    if not value or (ref.key in ("location", "path") and value.startswith("_:") and "/" not in value):
        return None  # a literal's blank-node id (cwltool never reads it)
    split = urlsplit(value)
    path = unquote(split.path)
    leaves = bool(split.scheme or split.netloc) or path.startswith("/")
    joined = posixpath.normpath(posixpath.join(base, path)) if path else ""
    if leaves or joined == ".." or joined.startswith("../"):
        raise ReferenceOutside(
            f"{ref.source}:{ref.line}:{ref.column}: {ref.key} '{ref.value}' is outside the pipeline's "
            "folder: a document may only reference files next to it (relative paths, no '..' above it, "
            "no absolute paths or URLs)"
        )
    return joined or None


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None
