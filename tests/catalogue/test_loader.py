"""Loading definitions: every bad file is reported with file, key and reason; good ones still load."""

from pathlib import Path

import pytest

from datalabs.catalogue.loader import BUILTIN_DIR, load_directories
from datalabs.catalogue.schema import parse_memory, undot

GOOD = """\
title: Good Lab
abstract: works
version: "1.0"
contactPoint.email: someone@example.org
contactPoint.organisation-name: ESA
mission: [Gaia, Planck]
keywords: tables, plots
runtime:
  kind: web
  command: jupyter-lab --ServerApp.sock={socket}
extraKey: kept
"""
KEEP = "extraKey: kept\n"


def write(root: Path, name: str, text: str, version_dir: str | None = None) -> Path:
    folder = root / name / "versions" / version_dir if version_dir else root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "datalab-meta.yml").write_text(text)
    return folder / "datalab-meta.yml"


def test_builtin_definitions_all_load():
    loaded, problems = load_directories([(BUILTIN_DIR, "builtin")])
    assert problems == []
    names = {item.meta.name for item in loaded}
    assert {
        "jupyterlab",
        "jupyterlab-astro",
        "jupyterlab-gnss",
        "topcat",
        "aladin",
        "ds9",
        "qfitsview",
        "fv",
        "filezilla",
        "octave",
    } <= names
    assert {i.meta.version for i in loaded if i.meta.name == "jupyterlab"} == {"4.3.0", "4.2.0"}
    assert all(item.thumbnail_path for item in loaded), "every built-in has a thumbnail, older versions too"


def test_dotted_and_nested_keys_and_unknown_keys(tmp_path):
    write(tmp_path, "good", GOOD)
    (loaded,), problems = load_directories([(tmp_path, "dir")])
    assert problems == []
    meta = loaded.meta
    assert meta.contactPoint.email == "someone@example.org"
    assert meta.contactPoint.organisation_name == "ESA"
    assert meta.keywords == ["tables", "plots"]
    assert meta.runtime.command == ["jupyter-lab", "--ServerApp.sock={socket}"]
    assert meta.model_dump()["extraKey"] == "kept"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("title: [unclosed", "", "not valid YAML: line "),
        ("- a list\n- not a map\n", "", "expected a map"),
        (GOOD.replace('version: "1.0"\n', ""), "version", "required key is missing"),
        (GOOD.replace('version: "1.0"', "version: 1.10"), "version", "quoted string"),
        (GOOD.replace("kind: web", "kind: spaceship"), "runtime.kind", "line 9"),
        (
            GOOD.replace(KEEP, "  resources:\n    default: {memory: lots}\n" + KEEP),
            "runtime.resources.default.memory",
            "memory size",
        ),
        (
            GOOD.replace(KEEP, "  resources:\n    default: {cpu: 8}\n    maximum: {cpu: 2}\n" + KEEP),
            "runtime.resources",
            "exceed",
        ),
        (GOOD.replace("title: Good Lab", "title: Good Lab\nname: other"), "name", "differs from its folder"),
        (
            GOOD.replace("  command: jupyter-lab --ServerApp.sock={socket}\n", ""),
            "runtime",
            "needs runtime.command",
        ),
    ],
)
def test_bad_definition_is_reported_and_others_still_load(tmp_path, text, key, reason):
    write(tmp_path, "good", GOOD)
    bad = write(tmp_path, "bad", text)
    loaded, problems = load_directories([(tmp_path, "dir")])
    assert [item.meta.name for item in loaded] == ["good"]
    assert len(problems) >= 1
    problem = problems[0]
    assert problem.path == str(bad)
    assert problem.key == key
    assert reason in problem.reason


def test_versions_folder_and_duplicates(tmp_path):
    write(tmp_path, "good", GOOD)
    write(tmp_path, "good", GOOD.replace('"1.0"', '"0.9"'), "0.9")
    dup = write(tmp_path, "good", GOOD, "1.0-copy")
    loaded, problems = load_directories([(tmp_path, "dir")])
    assert sorted(i.meta.version for i in loaded) == ["0.9", "1.0"]
    assert problems[0].path == str(dup) and "also defined" in problems[0].reason


def test_folder_without_file_and_missing_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    loaded, problems = load_directories([(tmp_path, "dir"), (tmp_path / "nope", "dir")])
    assert loaded == []
    assert {p.reason for p in problems} == {
        "no datalab-meta.yml in this folder",
        "catalogue directory does not exist",
    }


def test_thumbnail_must_stay_inside_the_definition_folder(tmp_path):
    (tmp_path / "secret.svg").write_text("<svg/>")
    write(tmp_path, "good", GOOD + "thumbnailUrl: ../secret.svg\n")
    (loaded,), _ = load_directories([(tmp_path, "dir")])
    assert loaded.thumbnail_path is None


def test_undot_and_memory_parsing():
    assert undot({"creator.name": "x", "creator": {"email": "y"}, "a.b": 1}) == {
        "creator": {"name": "x", "email": "y"},
        "a.b": 1,
    }
    assert parse_memory("2G") == 2 * 10**9 and parse_memory("512Mi") == 512 * 2**20 and parse_memory(10) == 10
    with pytest.raises(ValueError):
        parse_memory("much")


def test_billion_laughs_definition_is_rejected_with_its_line_and_others_load(tmp_path):
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    laughs = f"l0: &l0 {lol}\n" + "".join(
        f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9)
    )
    bad = write(tmp_path, "laughs", GOOD + laughs + "more: *l8\n")
    write(tmp_path, "good", GOOD)
    loaded, problems = load_directories([(tmp_path, "dir")])
    assert [item.meta.name for item in loaded] == ["good"]
    (problem,) = problems
    assert problem.path == str(bad) and problem.key == ""
    assert problem.reason.startswith("line ") and "aliases" in problem.reason
