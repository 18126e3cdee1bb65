"""Bounded parsing of untrusted YAML and JSON: every document a user sends is read through here.

A YAML document is small on disk but can be huge once its aliases are followed: nine lines of nine
aliases each ("billion laughs") stand for 9**9 strings. PyYAML shares an aliased node instead of copying
it, so loading is cheap and the blow-up comes later, when something walks or copies the data (pydantic
validation, `json.dumps`, a template). Checking sizes after loading is therefore too late; the composed
node graph is measured *before* any Python object is built, with each alias counted as the whole node it
stands for:

- `max_bytes`: the text itself (UTF-8);
- `max_depth`: nesting, aliases followed;
- `max_aliases`: alias uses;
- `max_nodes`: nodes once every alias is expanded;
- `max_chars`: scalar characters once every alias is expanded (one alias of a 1 MB string used a
  thousand times is a gigabyte when serialised);
- recursive aliases (a node containing itself) are refused outright.

Errors are `DocumentError` (422, bad syntax) or `DocumentTooLarge` (413, a bound exceeded), both
`Invalid`, carrying the file name the user knows, the 1-based line and column, and the reason. Nothing
else escapes: the fuzz tests in tests/sandbox hold every function here to that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from datalabs.errors import Invalid

# libyaml is ~20x faster and caps nesting at 1000 itself; the pure-Python loader recurses (RecursionError
# is caught below).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1_000_000
    max_depth: int = 64
    max_aliases: int = 1_000
    max_nodes: int = 200_000
    max_chars: int = 4_000_000


DEFAULT = Limits()
# Files of the user running the CLI (a job order): their own, so only generous bounds against mistakes.
LOCAL = Limits(
    max_bytes=64 * 2**20, max_depth=256, max_aliases=100_000, max_nodes=10**7, max_chars=256 * 2**20
)
_YAML, _JSON = "not valid YAML", "not valid JSON"


class DocumentError(Invalid):
    """A document that cannot be read: `file` (as the user named it), `line`/`column` (1-based, 0 when
    unknown), `kind` of failure ("not valid YAML", or "" for a bound) and `detail`. The message reads
    `file:line:column: reason`, as compilers (and cwltool) write them."""

    code = "invalid_document"

    def __init__(
        self, file: str, detail: str, line: int = 0, column: int = 0, *, kind: str = "", code: str = ""
    ):
        self.file, self.detail, self.kind, self.line, self.column = file, detail, kind, line, column
        where = f"{file}:{line}:{column}" if line else file
        super().__init__(f"{where}: {self.reason}", code=code or None)

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" if self.kind else self.detail

    @property
    def located_reason(self) -> str:
        """The reason with its place, for messages that name the file apart (a catalogue `Problem`):
        `not valid YAML: line 2, column 5: ...`."""
        at = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{self.kind}: {at}{self.detail}" if self.kind else f"{at}{self.detail}"


class DocumentTooLarge(DocumentError):
    """The document exceeds one of the `Limits` (413: it is too big, not wrong)."""

    status, code = 413, "document_too_large"


# ---- YAML ----------------------------------------------------------------------------------------------


def load_yaml(text: str | bytes, file: str, limits: Limits = DEFAULT) -> Any:
    """The data of one YAML document (None if empty), refused with `DocumentError` past `limits`."""
    return parse_yaml(text, file, limits)[0]


def parse_yaml(text: str | bytes, file: str, limits: Limits = DEFAULT) -> tuple[Any, yaml.Node | None]:
    """The data and its checked node graph (whose marks give line numbers for later error messages)."""
    text = _text(text, file, limits)
    loader = None
    try:
        loader = _LOADER(text)
        node = loader.get_single_node()
        if node is None:
            return None, None
        measure(node, file, limits)
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        line, column = _error_position(exc.problem_mark or exc.context_mark, text)
        detail = exc.problem or exc.context or "syntax error"
        raise DocumentError(file, detail, line, column, kind=_YAML, code="invalid_yaml") from None
    except yaml.YAMLError as exc:
        raise DocumentError(file, str(exc), kind=_YAML, code="invalid_yaml") from None
    except RecursionError:
        raise DocumentTooLarge(
            file, f"nested deeper than {limits.max_depth} levels", code="too_deep"
        ) from None
    except (ValueError, OverflowError, TypeError) as exc:  # constructors: e.g. an int of 10,000 digits
        raise DocumentError(file, str(exc), kind=_YAML, code="invalid_yaml") from None
    finally:
        if loader is not None:
            loader.dispose()


def measure(root: yaml.Node, file: str, limits: Limits = DEFAULT) -> None:
    """Refuse a node graph that exceeds `limits` once its aliases are expanded.

    Iterative post-order walk in document order, each node's expanded size computed once (so the walk
    is linear in the nodes on disk, however much they expand). A node met a second time is an alias:
    already measured, or still open above us, which makes it recursive."""
    done: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, chars, depth) once expanded
    open_nodes: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, bool, yaml.Mark]] = [(root, False, root.start_mark)]
    while stack:
        node, closing, at = stack.pop()
        key = id(node)
        if closing:
            open_nodes.discard(key)
            nodes, chars, depth = 1, 0, 0
            for child in _children(node):
                c_nodes, c_chars, c_depth = done[id(child)]
                nodes, chars, depth = nodes + c_nodes, chars + c_chars, max(depth, c_depth)
            done[key] = (nodes, chars, depth + 1)
            _check(done[key], node.start_mark, file, limits)
            continue
        if key in done or key in open_nodes:
            aliases += 1
            if key in open_nodes:
                raise DocumentError(file, "recursive alias: a node contains itself", *_pos(at))
            if aliases > limits.max_aliases:
                raise DocumentTooLarge(
                    file, f"more than {limits.max_aliases} aliases", *_pos(at), code="too_many_aliases"
                )
            continue
        if isinstance(node, yaml.ScalarNode):
            done[key] = (1, len(node.value), 1)
            _check(done[key], node.start_mark, file, limits)
            continue
        if len(open_nodes) >= limits.max_depth:
            raise DocumentTooLarge(
                file, f"nested deeper than {limits.max_depth} levels", *_pos(node.start_mark), code="too_deep"
            )
        open_nodes.add(key)
        stack.append((node, True, at))
        pairs = zip(reversed(_children(node)), reversed(_child_marks(node)), strict=True)
        stack.extend((child, False, mark) for child, mark in pairs)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _child_marks(node: yaml.Node) -> list[yaml.Mark]:
    """Where each child is used. The composer keeps no position for an alias, so: its key's, or the end
    of the list entry before it (the list's start for the first)."""
    if isinstance(node, yaml.MappingNode):
        return [mark for k, _ in node.value for mark in (k.start_mark, k.start_mark)]
    return [node.start_mark, *(item.end_mark for item in node.value[:-1])][: len(node.value)]


def _check(size: tuple[int, int, int], mark: yaml.Mark, file: str, limits: Limits) -> None:
    nodes, chars, depth = size
    if depth > limits.max_depth:
        raise DocumentTooLarge(
            file,
            f"nested deeper than {limits.max_depth} levels (aliases followed)",
            *_pos(mark),
            code="too_deep",
        )
    if nodes > limits.max_nodes:
        raise DocumentTooLarge(
            file,
            f"expands to more than {limits.max_nodes} values through aliases (a 'billion laughs')",
            *_pos(mark),
            code="too_many_aliases",
        )
    if chars > limits.max_chars:
        raise DocumentTooLarge(
            file,
            f"expands to more than {limits.max_chars} characters through aliases",
            *_pos(mark),
            code="too_many_aliases",
        )


def _error_position(mark: yaml.Mark | None, text: str) -> tuple[int, int]:
    """1-based line and column of a syntax error. At the end of a text without a final newline (`a: [`)
    libyaml points at a line the text does not have; the end of its last line is where to look."""
    if mark is None:
        return 0, 0
    lines = text.count("\n")
    if mark.line > lines:
        return lines + 1, len(text) - (text.rfind("\n") + 1) + 1
    return mark.line + 1, mark.column + 1


def _pos(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark else (0, 0)


def _text(text: str | bytes, file: str, limits: Limits) -> str:
    if isinstance(text, str):
        too_big = (
            len(text) > limits.max_bytes or len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes
        )
    else:
        too_big = len(text) > limits.max_bytes
    if too_big:
        raise DocumentTooLarge(file, f"larger than {limits.max_bytes:,} bytes", code="document_too_large")
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(file, f"not UTF-8 text (byte {exc.start})", code="invalid_encoding") from None


def read_bounded(path: Path, file: str, limits: Limits = DEFAULT) -> bytes:
    """At most `max_bytes` of a file (read, not trusted from `stat`); DocumentTooLarge if there is more."""
    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)
    except OSError as exc:
        raise DocumentError(file, f"cannot read: {exc.strerror}", code="unreadable") from None
    if len(data) > limits.max_bytes:
        raise DocumentTooLarge(file, f"larger than {limits.max_bytes:,} bytes", code="document_too_large")
    return data


def read_yaml(path: Path, file: str, limits: Limits = DEFAULT) -> Any:
    return load_yaml(read_bounded(path, file, limits), file, limits)


# ---- JSON ----------------------------------------------------------------------------------------------


def load_json(text: str | bytes, file: str, limits: Limits = DEFAULT) -> Any:
    """JSON within `max_bytes`, `max_depth` and `max_nodes` (JSON has no aliases: sizes are literal)."""
    text = _text(text, file, limits)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(file, exc.msg, exc.lineno, exc.colno, kind=_JSON, code="invalid_json") from None
    except RecursionError:
        raise DocumentTooLarge(
            file, f"nested deeper than {limits.max_depth} levels", code="too_deep"
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DocumentError(file, str(exc), kind=_JSON, code="invalid_json") from None
    _measure_data(data, file, limits)
    return data


def _measure_data(data: Any, file: str, limits: Limits) -> None:
    nodes = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > limits.max_depth:
            raise DocumentTooLarge(file, f"nested deeper than {limits.max_depth} levels", code="too_deep")
        if nodes > limits.max_nodes:
            raise DocumentTooLarge(file, f"more than {limits.max_nodes} values", code="document_too_large")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
