"""The warm cwltool engine's own parts (engines/cwltool.py, cwltool_job.py): what its scatters share and
what they leave behind. The PipelineEngine contract itself is in tests/contracts/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cwltool.errors import WorkflowException
from cwltool.load_tool import load_tool

from datalabs.pipelines import documents
from datalabs.pipelines.engines import cwltool as engine_module
from datalabs.pipelines.engines.base import SUCCEEDED, RunSpec
from datalabs.pipelines.engines.cwltool import CwltoolEngine, _OutputDirs
from datalabs.pipelines.engines.cwltool_job import ConfinedFsAccess
from datalabs.sandbox import cgroups
from datalabs.sandbox.identity import of as identity_of
from datalabs.sandbox.policy import Policy

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes with their own uid need root")

# Each tool reports its RLIMIT_NPROC and its pid: what the sandbox made of it.
REPORT = """cwlVersion: v1.2
class: Workflow
requirements: {ScatterFeatureRequirement: {}}
inputs: {texts: 'string[]'}
outputs: {outs: {type: 'File[]', outputSource: each/out}}
steps:
  each:
    scatter: text
    in: {text: texts}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [sh, -c]
      arguments:
        - >-
          grep 'Max processes' /proc/self/limits > out.txt;
          echo "pid $$" >> out.txt
      inputs: {text: string}
      outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""


def test_the_warm_document_is_a_valid_packed_workflow(tmp_path):
    # Loading it at start only logs a failure (a cold first run follows): a document that stopped loading
    # would otherwise go unnoticed.
    path = tmp_path / "warm.json"
    path.write_text(engine_module.WARM_DOCUMENT)
    tool = load_tool(str(path), engine_module._loading_context())
    assert tool.tool["class"] == "Workflow"


def test_output_dirs_answer_with_their_parent_only_while_all_are_below_it():
    dirs = _OutputDirs("/w/out/")
    assert list(dirs) == []  # nothing made yet: nothing to move from
    dirs.add("/w/out/abc")
    dirs.add("/w/out/def")
    assert list(dirs) == ["/w/out/"] and len(dirs) == 2 and "/w/out/abc" in dirs
    dirs.add("/elsewhere/x")  # one outside: the real members, so nothing outside them counts as theirs
    assert sorted(dirs) == ["/elsewhere/x", "/w/out/abc", "/w/out/def"]


@ROOT_ONLY
def test_a_scatter_s_tools_share_one_cgroup_and_leave_nothing_behind(tmp_path, monkeypatch):
    if not cgroups.available()[0] or not cgroups.pids_available()[0]:
        pytest.skip("no pids cgroup on this host")
    doc = documents.load_text("report.cwl", REPORT)
    path = documents.materialise(tmp_path / "docs", 1, doc.packed)
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [])
    policy = Policy(identity=ada, pids_max=64, nproc=333)
    spec = RunSpec(
        "r1",
        1,
        path,
        {"texts": ["a", "b", "c", "d"]},
        tmp_path / "work",
        tmp_path / "out",
        tmp_path / "log.txt",
        sandbox=True,
        parallel=True,
        policy=policy,
    )
    made = []
    create = cgroups.LabCgroup.create

    def recorded(name, *args, **kwargs):
        made.append(create(name, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(cgroups.LabCgroup, "create", recorded)
    engine = CwltoolEngine()
    try:
        result = engine.wait(engine.submit(spec), 120)
    finally:
        engine.close()
    assert result is not None and result.state == SUCCEEDED, spec.log.read_text()
    reports = [Path(f["location"][7:]).read_text().splitlines() for f in result.outputs["outs"]]
    assert len(reports) == 4
    for lines in reports:
        assert lines[0].split()[2:4] == ["333", "333"]  # the user's RLIMIT_NPROC, soft and hard
        assert lines[1] == "pid 1"  # the tool is its sandbox's init: bwrap itself waits for it
    # One cgroup for the run's four tools, gone with the run: no process of it was left for the host's
    # init to reap (bwrap's own init used to be, holding a process of the cgroup until then).
    assert len(made) == 1 and Path(made[0].dirs[0]).name.startswith("run-r1-")
    assert not any(Path(d).exists() for d in made[0].dirs)


LINKED = """cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
  InitialWorkDirRequirement:
    listing:
      - entryname: renamed.txt
        entry: $(inputs.f)
      - |-
        ${ return {"class": "File", "location": "file://" + inputs.elsewhere, "basename": "stolen.txt"}; }
baseCommand: [sh, -c]
arguments: ['cat renamed.txt > seen.txt; cat stolen.txt >> seen.txt 2>/dev/null || echo no >> seen.txt']
inputs: {f: File, elsewhere: string}
outputs:
  seen: {type: File, outputBinding: {glob: seen.txt}}
  renamed: {type: File, outputBinding: {glob: renamed.txt}}
  stolen: {type: 'File?', outputBinding: {glob: stolen.txt}}
"""


@ROOT_ONLY
def test_initial_workdir_links_to_inputs_resolve_inside_and_no_other_link_does(tmp_path):
    given = tmp_path / "given.txt"
    given.write_text("mine\n")
    secret = tmp_path / "secret.txt"  # readable by anyone, but not the run's
    secret.write_text("not yours\n")
    doc = documents.load_text("linked.cwl", LINKED)
    path = documents.materialise(tmp_path / "docs", 2, doc.packed)
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [])
    spec = RunSpec(
        "r2",
        2,
        path,
        {"f": {"class": "File", "location": given.as_uri()}, "elsewhere": str(secret)},
        tmp_path / "work",
        tmp_path / "out",
        tmp_path / "log.txt",
        sandbox=True,
        policy=Policy(identity=ada, pids_max=64),
    )
    engine = CwltoolEngine()
    try:
        result = engine.wait(engine.submit(spec), 120)
    finally:
        engine.close()
    assert result is not None and result.state == SUCCEEDED, spec.log.read_text()
    # The input under its new name: read by the tool in its sandbox, and delivered.
    assert Path(result.outputs["seen"]["location"][7:]).read_text() == "mine\nno\n"
    assert Path(result.outputs["renamed"]["location"][7:]).read_text() == "mine\n"
    # The expression's link to a file the run was not given: unreadable inside, removed at confinement.
    assert result.outputs["stolen"] is None
    assert "stolen.txt' removed" in spec.log.read_text()


# An expression names a host file the run was not given; cwltool (root) would copy it into the tool's
# folder (a writable InitialWorkDir entry) or read it into the job (loadContents).
COPIED = """cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
  InitialWorkDirRequirement:
    listing:
      - entry: |-
          ${ return {"class": "File", "location": "file://" + inputs.elsewhere, "basename": "s.txt"}; }
        writable: true
baseCommand: [sh, -c]
arguments: ['cat s.txt > seen.txt']
inputs: {elsewhere: string}
outputs: {seen: {type: File, outputBinding: {glob: seen.txt}}}
"""
LOADED = """cwlVersion: v1.2
class: Workflow
requirements: {InlineJavascriptRequirement: {}}
inputs: {elsewhere: string}
outputs: {seen: {type: string, outputSource: read/seen}}
steps:
  make:
    in: {elsewhere: elsewhere}
    out: [f]
    run:
      class: ExpressionTool
      inputs: {elsewhere: string}
      outputs: {f: File}
      expression: '${ return {"f": {"class": "File", "location": "file://" + inputs.elsewhere}}; }'
  read:
    in: {f: make/f}
    out: [seen]
    run:
      class: ExpressionTool
      inputs: {f: {type: File, loadContents: true}}
      outputs: {seen: string}
      expression: '${ return {"seen": inputs.f.contents}; }'
"""


@ROOT_ONLY
@pytest.mark.parametrize("cwl", [COPIED, LOADED], ids=["writable-initial-workdir", "load-contents"])
def test_a_file_an_expression_names_outside_the_run_is_never_read_by_root(tmp_path, cwl):
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root-only secret\n")
    secret.parent.chmod(0o700)
    doc = documents.load_text("hostile.cwl", cwl)
    path = documents.materialise(tmp_path / "docs", 4, doc.packed)
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [])
    spec = RunSpec(
        "r4",
        4,
        path,
        {"elsewhere": str(secret)},
        tmp_path / "attempt" / "work",
        tmp_path / "attempt" / "out",
        tmp_path / "attempt" / "log.txt",
        sandbox=True,
        parallel=cwl is LOADED,
        policy=Policy(identity=ada, pids_max=64),
    )
    engine = CwltoolEngine()
    try:
        result = engine.wait(engine.submit(spec), 120)
    finally:
        engine.close()
    assert result is not None and result.state != SUCCEEDED
    assert "not one of the run's" in spec.log.read_text()
    leaked = [p for p in (tmp_path / "attempt").rglob("*") if p.is_file() and b"root-only" in p.read_bytes()]
    assert "root-only" not in json.dumps(result.outputs) + result.reason and not leaked


ANY = """cwlVersion: v1.2
class: CommandLineTool
requirements: {InlineJavascriptRequirement: {}}
inputs: {bar: Any}
outputs: {t1: {type: Any, outputBinding: {outputEval: $(inputs.bar.class || inputs.bar)}}}
baseCommand: "true"
"""


ANY_WORKFLOW = """cwlVersion: v1.2
class: Workflow
requirements: {InlineJavascriptRequirement: {}}
inputs: {bar: Any}
outputs: {t1: {type: Any, outputSource: step/t1}}
steps:
  step:
    in: {bar: bar}
    out: [t1]
    run:
      class: ExpressionTool
      inputs: {bar: Any}
      outputs: {t1: Any}
      expression: '$({"t1": inputs.bar.class || inputs.bar})'
"""


@pytest.mark.parametrize("cwl", [ANY, ANY_WORKFLOW], ids=["tool", "workflow"])
def test_one_loaded_tool_serves_runs_of_any_input_type_in_turn(tmp_path, cwl):
    # The engine keeps a version's loaded tool: a job with a File must not fix its `Any` input for the next.
    doc = documents.load_text("any.cwl", cwl)
    path = documents.materialise(tmp_path / "docs", 5, doc.packed)
    whale = tmp_path / "whale.txt"
    whale.write_text("x")
    jobs = [{"class": "File", "location": whale.as_uri()}, [1, "a"], {"moo": 1, "cow": 5}, 7]
    expected = ["File", [1, "a"], {"moo": 1, "cow": 5}, 7]
    engine = CwltoolEngine()
    try:
        for i, (bar, want) in enumerate(zip(jobs, expected, strict=True)):
            attempt = tmp_path / f"attempt{i}"
            spec = RunSpec(f"a{i}", 5, path, {"bar": bar}, attempt / "work", attempt / "out", attempt / "log")
            result = engine.wait(engine.submit(spec), 60)
            assert result is not None and result.state == SUCCEEDED, spec.log.read_text()
            assert result.outputs["t1"] == want
    finally:
        engine.close()


def test_a_loaded_tool_serves_one_run_at_a_time_and_is_kept_for_the_next(tmp_path):
    doc = documents.load_text("any.cwl", ANY)
    path = documents.materialise(tmp_path / "docs", 6, doc.packed)
    spec = RunSpec("a", 6, path, {}, tmp_path / "w", tmp_path / "o", tmp_path / "l")
    engine = CwltoolEngine()
    try:
        first, second = engine.checkout(spec), engine.checkout(spec)  # two runs at once: two tools
        assert first is not second
        engine.checkin(spec, first)
        assert engine.checkout(spec) is first  # the next run reuses it: loaded once
        assert engine.checkout(spec, fresh=True) is not second  # a job with its own requirements
    finally:
        engine.close()


def test_root_s_file_access_for_a_run_neither_reads_nor_sees_what_is_not_the_run_s(tmp_path):
    """Output globs and expressions name any path: outside the run's folders nothing is read, listed,
    measured, or even said to exist (cwltool runs as root)."""
    run = tmp_path / "run"
    (run / "out").mkdir(parents=True)
    (run / "out" / "a.txt").write_text("mine")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "secret.txt").write_text("root-only secret")
    (run / "out" / "sneaky").symlink_to(private / "secret.txt")
    fs_access = ConfinedFsAccess(str(run), roots=(str(run),))
    assert fs_access.exists("out/a.txt") and fs_access.isfile("out/a.txt") and fs_access.isdir("out")
    assert fs_access.size("out/a.txt") == 4 and fs_access.open("out/a.txt", "r").read() == "mine"
    assert [Path(u).name for u in fs_access.glob(str(run / "out" / "*.txt"))] == ["a.txt"]
    for outside in (str(private / "secret.txt"), str(run / "out" / "sneaky")):
        assert not fs_access.exists(outside) and not fs_access.isfile(outside)
        with pytest.raises(WorkflowException, match="not one of the run's"):
            fs_access.size(outside)
        with pytest.raises(WorkflowException, match="not one of the run's"):
            fs_access.open(outside, "r")
    assert not fs_access.isdir(str(private)) and fs_access.glob(str(private / "*")) == []
    assert fs_access.glob(str(run / "out" / "sneak*")) == []  # a link out of the run is not the run's
    assert fs_access.glob("/etc/pass*") == [] and not fs_access.exists("/etc/shadow")
