"""The Toil engine: each run is one `toil-cwl-runner` process (single machine here; Toil's batch systems
- Slurm, Kubernetes, ... - through its own options for scale). Toil starts cold for every run (~4 s),
so it suits long or wide workflows, not many small runs.

With `spec.sandbox` (single machine), the whole `toil-cwl-runner` process tree runs in one bubblewrap
sandbox like cwltool's tools: the document and the input files read-only, the run's work and output folders
writable, as the labs' uid, nothing else of the host. On a cluster batch system the cluster's own isolation
applies instead. The run's log gets Toil's output; the output object is its JSON on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datalabs.pipelines import sandbox
from datalabs.pipelines.engines.base import FAILED, INFRA, SUCCEEDED, Handle, PipelineEngine, Result, RunSpec
from datalabs.runtimes.local import lab_uid
from datalabs.runtimes.sandbox import lab_path


@dataclass(eq=False)
class _Proc(Handle):
    proc: subprocess.Popen
    stdout: Path
    spec: RunSpec
    cancelled: bool = False
    result: Result | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def toil_cwl_runner() -> str:
    return str(Path(sys.executable).parent / "toil-cwl-runner")


class ToilEngine(PipelineEngine):
    name = "toil"

    def submit(self, spec: RunSpec) -> Handle:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        job = spec.workdir / "job.json"
        job.write_text(json.dumps(spec.job))
        document = spec.document
        if spec.sandbox:  # the run's own copy, readable by the sandbox's uid (the store's is private)
            document = spec.workdir / "pipeline.cwl"
            shutil.copyfile(spec.document, document)
        stdout = spec.workdir / "outputs.json"
        argv = [
            toil_cwl_runner(),
            "--no-container",
            "--batchSystem",
            "single_machine",
            "--jobStore",
            f"file:{spec.workdir / 'jobstore'}",
            "--workDir",
            str(spec.workdir),
            "--outdir",
            str(spec.outdir),
            "--logInfo",
            "--clean",
            "always",
            str(document),
            str(job),
        ]
        env = {**os.environ, "PATH": lab_path(), "TMPDIR": str(spec.workdir)}
        if spec.sandbox:
            argv = self._sandboxed(spec, argv)
            env["HOME"] = str(spec.workdir)
        with open(spec.log, "ab") as log, open(stdout, "wb") as out:
            # Its own process group, so a cancel reaches Toil's workers and the tools they started.
            proc = subprocess.Popen(argv, stdout=out, stderr=log, env=env, start_new_session=True)
        return _Proc(proc=proc, stdout=stdout, spec=spec)

    @staticmethod
    def _sandboxed(spec: RunSpec, argv: list[str]) -> list[str]:
        spec.outdir.mkdir(parents=True, exist_ok=True)
        if (uid := lab_uid()) is not None:  # Toil runs as the labs' uid: its folders are its own
            for top in (spec.workdir, spec.outdir):
                sandbox.chown_tree(top, uid)
        readonly = [(path, path) for path in host_paths(spec.job)]
        return [*sandbox.prefix(str(spec.outdir), str(spec.workdir), readonly), *argv]

    def poll(self, handle: Handle) -> Result | None:
        assert isinstance(handle, _Proc)
        with handle.lock:
            if handle.result is not None:
                return handle.result
            code = handle.proc.poll()
            if code is None:
                return None
            handle.result = self._result(handle, code)
            return handle.result

    def _result(self, handle: _Proc, code: int) -> Result:
        if handle.cancelled:
            return Result(FAILED, "cancelled")
        if code == 0:
            try:
                return Result(SUCCEEDED, outputs=json.loads(handle.stdout.read_text() or "{}"))
            except ValueError as exc:
                return Result(INFRA, f"toil-cwl-runner printed no output object: {exc}")
        if code == 33:
            return Result(FAILED, "toil-cwl-runner: unsupported requirement")
        if code < 0:  # killed by a signal we did not send: the machine, not the pipeline
            return Result(INFRA, f"toil-cwl-runner was killed by signal {-code}")
        return Result(FAILED, _tail(handle.spec.log) or f"toil-cwl-runner exited with {code}")

    def wait(self, handle: Handle, timeout: float) -> Result | None:
        assert isinstance(handle, _Proc)
        try:
            handle.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll(handle)

    def cancel(self, handle: Handle) -> None:
        assert isinstance(handle, _Proc)
        handle.cancelled = True
        if handle.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(handle.proc.pid, signal.SIGKILL)


def host_paths(value: Any) -> list[str]:
    """The host paths of the job's File and Directory inputs (and their secondary files)."""
    if isinstance(value, dict):
        location = value.get("location", "") if value.get("class") in ("File", "Directory") else ""
        own = [location[len("file://") :]] if location.startswith("file://") else []
        return own + [p for k, v in value.items() if k != "location" for p in host_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in host_paths(v)]
    return []


def _tail(log: Path, limit: int = 600) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
