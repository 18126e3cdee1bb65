"""The CWL reference checker (sandbox/cwlrefs.py): every reference that would make cwltool read outside
the document's folder is refused with file, line and the reference; neighbours are followed and held to
the same rules and bounds; and, fuzzed against the URL resolution schema-salad itself uses
(`urllib.parse.urljoin`), nothing it accepts resolves outside the folder."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalabs.sandbox import cwlrefs, parsing
from datalabs.sandbox.cwlrefs import Limits, ReferenceOutside

TOOL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\noutputs: []\n"
FLOW = "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
FILE_INPUT = "inputs:\n  f:\n    type: File\n    default: {{class: File, {}}}\n"


def step(run: str) -> str:
    return f"steps:\n  s:\n    run: {run}\n    in: []\n    out: []\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def check(root: Path, main: str = "main.cwl", limits: Limits = cwlrefs.DEFAULT):
    return cwlrefs.check(root / main, root, "main.cwl", limits)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (
            TOOL + "inputs: []\nrequirements:\n  - class: InitialWorkDirRequirement\n    listing:\n"
            "      - entry: {$include: /etc/shadow}\n",
            "$include",
            9,
        ),
        (TOOL + "inputs:\n  $import: file:///etc/passwd\n", "$import", 6),
        (TOOL + "inputs:\n  $mixin: ../outside.yml\n", "$mixin", 6),
        (FLOW + step("../../x.cwl"), "run", 7),
        (FLOW + step("/etc/x.cwl"), "run", 7),
        (FLOW + step("https://example.org/x.cwl"), "run", 7),
        (FLOW + step("//host/x.cwl"), "run", 7),
        (FLOW + step("'%2e%2e/x.cwl'"), "run", 7),
        (FLOW + step("x:tool.cwl"), "run", 7),
        (
            TOOL + "inputs:\n  f:\n    type: File\n    default: {class: File, location: /etc/shadow}\n",
            "location",
            8,
        ),
        (TOOL + "inputs:\n  f:\n    type: File\n    default: {class: File, path: ../../s}\n", "path", 8),
        (TOOL + "inputs: []\n$schemas: [/etc/passwd]\n", "$schemas", 6),
        # An `id` is the base of the references below it: held to the same rules when there are any.
        (TOOL + "id: file:///etc/\n" + FILE_INPUT.format("location: shadow"), "id", 5),
        (TOOL + "id: ../../\n" + FILE_INPUT.format("location: s"), "id", 5),
    ],
)
def test_references_outside_are_refused(tmp_path, text, key, line):
    tree(tmp_path, {"main.cwl": text})
    with pytest.raises(ReferenceOutside) as err:
        check(tmp_path)
    assert err.value.code == "invalid_cwl" and err.value.status == 422
    assert err.value.message.startswith(f"main.cwl:{line}:"), err.value.message
    assert f"{key} '" in err.value.message and "outside the pipeline's folder" in err.value.message


def test_base_is_refused(tmp_path):
    tree(tmp_path, {"main.cwl": TOOL + "$base: file:///etc/\ninputs: []\n"})
    with pytest.raises(ReferenceOutside, match=r"main.cwl:5:\d+: \$base"):
        check(tmp_path)


def test_neighbours_fragments_and_ontologies_are_fine(tmp_path):
    tree(
        tmp_path,
        {
            "main.cwl": FLOW + step("tools/echo.cwl") + "$schemas: [https://edamontology.org/EDAM.owl]\n",
            "tools/echo.cwl": TOOL + "inputs:\n  $import: ../types.yml\n",
            "types.yml": "x: {type: string}\n",
            "packed.cwl": FLOW + step("'#main'"),
        },
    )
    assert check(tmp_path)["class"] == "Workflow"
    assert check(tmp_path, "packed.cwl")["class"] == "Workflow"


def test_referenced_documents_are_checked_too(tmp_path):
    tree(tmp_path, {"main.cwl": FLOW + step("a.cwl"), "a.cwl": TOOL + "inputs:\n  $include: /etc/hostname\n"})
    with pytest.raises(ReferenceOutside, match=r"^a\.cwl:6:\d+: \$include '/etc/hostname'"):
        check(tmp_path)


def test_billion_laughs_in_a_neighbour(tmp_path):
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    laughs = f"l0: &l0 {lol}\n" + "".join(
        f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9)
    )
    tree(tmp_path, {"main.cwl": FLOW + step("a.cwl"), "a.cwl": TOOL + laughs})
    with pytest.raises(parsing.DocumentTooLarge) as err:
        check(tmp_path)
    assert err.value.file == "a.cwl" and "aliases" in err.value.message


def test_tree_bounds(tmp_path):
    chain = {f"t{i}.cwl": FLOW + step(f"t{i + 1}.cwl") for i in range(12)}
    tree(tmp_path, {"main.cwl": FLOW + step("t0.cwl"), **chain, "t12.cwl": TOOL + "inputs: []\n"})
    with pytest.raises(parsing.DocumentTooLarge, match="nested deeper than 8 files"):
        check(tmp_path)
    many = (
        FLOW + "steps:\n" + "".join(f"  s{i}:\n    run: x.cwl\n    in: []\n    out: []\n" for i in range(30))
    )
    tree(tmp_path, {"many.cwl": many, "x.cwl": TOOL + "inputs: []\n"})
    with pytest.raises(parsing.DocumentTooLarge, match="more than 20 references"):
        check(tmp_path, "many.cwl", Limits(max_references=20))
    tree(tmp_path, {"big.cwl": FLOW + step("x.cwl") + "doc: " + "y" * 3000 + "\n"})
    with pytest.raises(parsing.DocumentTooLarge, match="exceed"):
        check(tmp_path, "big.cwl", Limits(max_total_bytes=2000))


# ---- fuzzing against schema-salad's own resolution -------------------------------------------------

PIECES = [
    "..",
    ".",
    "a",
    "b.cwl",
    "%2e%2e",
    "%2E.",
    "%2f",
    "/",
    "//",
    "#",
    "#main",
    "_:",
    "file:",
    "http:",
    "x:",
    "~",
    "\\",
    "..%2f",
    "?q",
    "%",
    " ",
    "\t",
    "\n",
    "é",
]
references = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join) | st.text(
    alphabet=string.ascii_letters + "./%:#_-~\\", min_size=1, max_size=30
)


def _resolved_inside(doc: Path, root: Path, ref: str) -> bool:
    """Where schema-salad would look for `ref` written in `doc`: inside `root`, or no file at all."""
    url = urljoin(doc.as_uri(), ref)
    split = urlsplit(url)
    if split.scheme != "file" or split.netloc:
        return False
    target = os.path.realpath(unquote(split.path))
    return target == str(root) or target.startswith(str(root) + "/")


def test_an_id_that_is_only_a_name_is_accepted(tmp_path):
    # Metadata (`s:author: {id: <ORCID>}`) and a tool's own id hold no reference: the id resolves nothing.
    text = TOOL + "id: https://example.org/tools/cat\ninputs: []\ns:author:\n  id: https://orcid.org/0000\n"
    tree(tmp_path, {"main.cwl": text})
    check(tmp_path)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=references, key=st.sampled_from(["run", "$import", "$include", "location", "id"]))
def test_fuzz_accepted_references_resolve_inside(tmp_path, ref, key):
    root = (tmp_path / "root").resolve()
    doc = root / "sub" / "main.cwl"
    doc.parent.mkdir(parents=True, exist_ok=True)
    node = {
        "run": FLOW + "steps:\n  s:\n    run: {ref}\n    in: []\n    out: []\n",
        "$import": TOOL + "inputs:\n  $import: {ref}\n",
        "$include": TOOL + "inputs: []\narguments:\n  - {{$include: {ref}}}\n",
        "location": TOOL
        + "inputs:\n  f:\n    type: File\n    default:\n      class: File\n      location: {ref}\n",
        "id": TOOL + "id: {ref}\ninputs:\n  f:\n    type: File\n    default: {{class: File, location: d}}\n",
    }[key]
    doc.write_text(node.format(ref=json.dumps(ref)))
    try:
        cwlrefs.check(doc, root, "main.cwl")
    except (ReferenceOutside, parsing.DocumentError):
        return
    literal_id = key == "location" and ref.startswith("_:") and "/" not in ref
    assert literal_id or _resolved_inside(doc, root, ref), f"accepted {key}: {ref!r}"


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12))
def test_fuzz_plain_neighbours_are_accepted(tmp_path, name):
    root = tmp_path.resolve()
    (root / f"{name}.cwl").write_text(TOOL + "inputs: []\n")
    (root / "main.cwl").write_text(FLOW + step(f"{name}.cwl"))
    assert check(root)["class"] == "Workflow"
