"""The light `datalabs cwl-runner` client's pieces, without a platform: job reading as cwltool reads it,
what a document bundle gathers, the output object as cwltool prints it, and the start-up it costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datalabs.cwlrunner import bundle, job, outputs, yaml12


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.23e5", 123000), ("0.00001", 1e-05), ("1.5", 1.5), ("123000.0", 123000.0), ("1e-5", 1e-05)],
)
def test_floats_keep_their_command_line_form(text, value):
    got = yaml12.loads(f"x: {text}\n")["x"]
    assert got == value and type(got) is type(value)


def test_yaml_is_read_as_yaml_1_2():
    data = yaml12.loads("a: yes\nb: on\nc: true\nd: 0o17\ne: ~\nf: 2024-01-01\ng: 1e3\n")
    assert data == {"a": "yes", "b": "on", "c": True, "d": 15, "e": None, "f": "2024-01-01", "g": 1000}


def test_job_keys_that_are_not_inputs_and_format_curies():
    order = {
        "$namespaces": {"edam": "http://edamontology.org/"},
        "$schemas": ["EDAM.owl"],
        "cwl:requirements": [{"class": "EnvVarRequirement", "envDef": {"A": "1"}}],
        "s:author": "someone",
        "input": {"class": "File", "location": "whale.txt", "format": "edam:format_2330"},
    }
    out = job.normalise(order)
    assert set(out) == {job.CWL_REQUIREMENTS, "input"}
    assert out["input"]["format"] == "http://edamontology.org/format_2330"


class FakeConnection:
    def __init__(self) -> None:
        self.puts: dict[str, bytes] = {}

    def put(self, path: str, data: bytes) -> None:
        self.puts[path] = data

    def json(self, method, path, body=None):
        self.puts[path] = b"<dir>"


def test_uploads_each_file_in_its_own_folder_with_literals_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("A")
    (tmp_path / "b" / "x.txt").write_text("B")
    (tmp_path / "a" / "x.txt.idx").write_text("I")
    (tmp_path / "a" / "item #1.txt").write_text("H")
    conn = FakeConnection()
    order = {
        "one": {"class": "File", "location": "a/x.txt"},
        "two": {"class": "File", "path": str(tmp_path / "b" / "x.txt")},
        "hash": {"class": "File", "location": "a/item%20%231.txt"},
        "lit": {"class": "File", "basename": "l.txt", "contents": "hi"},
        "dir": {"class": "Directory", "basename": "d", "listing": [{"class": "File", "location": "a/x.txt"}]},
    }
    inputs = job.Uploader(conn, "me/.cwl-runner/j", siblings=True).inputs(order, tmp_path)
    assert inputs["one"]["location"] != inputs["two"]["location"]
    assert inputs["hash"]["location"].endswith("/item #1.txt")
    assert inputs["lit"] == order["lit"]
    assert inputs["dir"]["listing"][0]["location"] == inputs["one"]["location"]  # uploaded once
    sent = {p.rsplit("/", 1)[-1] for p in conn.puts}
    assert {"x.txt", "x.txt.idx", "item%20%231.txt"} <= sent
    assert sorted(conn.puts.values()).count(b"A") == 1


def test_bundle_gathers_what_the_document_names(tmp_path):
    (tmp_path / "wf").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.txt").write_text("d")
    (tmp_path / "wf" / "main.cwl").write_text(
        "cwlVersion: v1.2\nclass: Workflow\n$schemas: [onto.owl]\ninputs:\n"
        "  f: {type: File, default: {class: File, location: ../data/d.txt}}\n"
        "steps:\n  s: {run: 'tool.cwl#main', in: {}, out: []}\noutputs: []\n"
    )
    (tmp_path / "wf" / "tool.cwl").write_text("class: CommandLineTool\ninputs:\n  $import: types.yml\n")
    (tmp_path / "wf" / "types.yml").write_text("[]\n")
    (tmp_path / "wf" / "onto.owl").write_text("<owl/>")
    (tmp_path / "wf" / "unrelated.cwl").write_text("x")
    gathered = bundle.gather(str(tmp_path / "wf" / "main.cwl") + "#main")
    assert gathered.root == tmp_path and gathered.main == "wf/main.cwl#main"
    assert set(gathered.files) == {"wf/main.cwl", "wf/tool.cwl", "wf/types.yml", "wf/onto.owl", "data/d.txt"}


def test_output_object_as_cwltool_prints_it(tmp_path):
    folder = "me/pipelines/p/r1"
    result = {
        "out": {
            "location": f"{folder}/a:b #1.txt",
            "basename": "a:b #1.txt",
            "nameroot": "a:b #1",
            "nameext": ".txt",
            "class": "File",
            "checksum": "sha1$x",
            "size": 1,
            "secondaryFiles": [{"class": "File", "location": f"{folder}/a.idx", "basename": "a.idx"}],
        },
        "n": 3,
    }
    local = outputs.localise(result, folder, tmp_path)
    out = local["out"]
    assert list(out) == ["location", "basename", "class", "checksum", "size", "secondaryFiles", "path"]
    assert out["path"] == str(tmp_path / "a:b #1.txt")
    assert out["location"].endswith("/a%3Ab%20%231.txt")
    assert out["secondaryFiles"][0]["path"] == str(tmp_path / "a.idx")
    assert json.loads(outputs.dumps(local))["n"] == 3 and "🕺" in outputs.dumps({"s": "🕺"})


def test_the_runner_does_not_import_heavy_modules():
    code = (
        "import sys, datalabs.cwlrunner.main as m, datalabs.cwlrunner.job, datalabs.cwlrunner.outputs;"
        "print(sorted(k for k in ('cwltool', 'httpx', 'typer', 'rich', 'ruamel', 'schema_salad',"
        " 'http.client', 'pydantic') if k in sys.modules))"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "[]"


def test_exit_code_one_when_not_configured(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATALABS_CREDENTIALS": str(tmp_path / "none")}
    tool = tmp_path / "t.cwl"
    tool.write_text("cwlVersion: v1.2\n")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "datalabs"), "cwl-runner", str(tool)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and "no platform configured" in proc.stderr


def test_bundle_sends_the_files_a_default_s_secondary_patterns_may_name(tmp_path):
    # `secondaryFiles: [.2, ^.idx]` on a File default: the patterns are resolved by the engine, so the
    # candidates beside the file travel with it (never links, never more than MAX_SECONDARIES).
    for name in ("hello.txt", "hello.txt.2", "hello.idx", "help.txt", "other.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "hello.link").symlink_to("/etc/hostname")
    (tmp_path / "main.cwl").write_text(
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\noutputs: []\ninputs:\n"
        "  f: {type: File, secondaryFiles: [.2, ^.idx], default: {class: File, location: hello.txt}}\n"
    )
    gathered = bundle.gather(str(tmp_path / "main.cwl"))
    assert set(gathered.files) == {"main.cwl", "hello.txt", "hello.txt.2", "hello.idx"}
