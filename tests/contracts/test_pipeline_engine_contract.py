"""The PipelineEngine contract, run against every engine (cwltool warm in-process, Toil)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datalabs.pipelines import documents
from datalabs.pipelines.engines.base import FAILED, SUCCEEDED, RunSpec, get_engine

ECHO = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "$0" > out.txt; echo "$0" >&2']
arguments: [$(inputs.text)]
inputs: {text: string}
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""
FAIL = ECHO.replace("""'echo "$0" > out.txt; echo "$0" >&2'""", """'echo "broken: $0" >&2; exit 4'""")
SLEEP = ECHO.replace("""'echo "$0" > out.txt; echo "$0" >&2'""", """'sleep 60'""")

ENGINES = ["cwltool", pytest.param("toil", marks=pytest.mark.slow)]


@pytest.fixture(params=ENGINES)
def engine(request):
    e = get_engine(request.param)
    yield e
    e.close()


def _spec(tmp_path: Path, cwl: str, job: dict, n: int = 0) -> RunSpec:
    doc = documents.load_text("tool.cwl", cwl)
    path = documents.materialise(tmp_path / "docs", n, doc.packed)
    run = tmp_path / f"run{n}"
    return RunSpec(f"r{n}", n, path, job, run / "work", run / "out", run / "log.txt")


def test_success_gives_outputs_under_outdir(engine, tmp_path):
    spec = _spec(tmp_path, ECHO, {"text": "hi"})
    handle = engine.submit(spec)
    result = engine.wait(handle, 120)
    assert result is not None and result.state == SUCCEEDED, result
    location = result.outputs["out"]["location"]
    assert location.startswith(f"file://{spec.outdir}")
    assert Path(location[7:]).read_text() == "hi\n"
    assert engine.poll(handle) is result and engine.outputs(handle) == result.outputs


def test_failure_reports_the_tool_s_stderr(engine, tmp_path):
    spec = _spec(tmp_path, FAIL, {"text": "x"}, 1)
    result = engine.wait(engine.submit(spec), 120)
    assert result.state == FAILED
    assert "broken: x" in spec.log.read_text()


def test_cancel_stops_the_run(engine, tmp_path):
    spec = _spec(tmp_path, SLEEP, {"text": "x"}, 2)
    handle = engine.submit(spec)
    time.sleep(2 if engine.name == "cwltool" else 6)
    assert engine.poll(handle) is None
    started = time.monotonic()
    engine.cancel(handle)
    engine.cancel(handle)  # idempotent
    result = engine.wait(handle, 30)
    assert result is not None and result.state == FAILED and time.monotonic() - started < 30


PEEK = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'cat "$0" > out.txt; cat "$1" >> out.txt 2>/dev/null || echo hidden >> out.txt']
arguments: [$(inputs.data.path), $(inputs.elsewhere)]
inputs: {data: File, elsewhere: string}
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""


def test_tools_read_their_inputs_and_nothing_else_of_the_host(engine, tmp_path):
    (tmp_path / "given.txt").write_text("visible\n")
    (tmp_path / "secret.txt").write_text("do not read\n")
    job = {"data": {"class": "File", "location": f"file://{tmp_path / 'given.txt'}"}}
    spec = _spec(tmp_path, PEEK, {**job, "elsewhere": str(tmp_path / "secret.txt")}, 3)
    result = engine.wait(engine.submit(spec), 120)
    assert result is not None and result.state == SUCCEEDED, (result, spec.log.read_text())
    assert Path(result.outputs["out"]["location"][7:]).read_text() == "visible\nhidden\n"
