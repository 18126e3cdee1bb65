"""The Toil engine: each run is one `toil-cwl-runner` process (single machine here; Toil's batch systems
- Slurm, Kubernetes, ... - through its own options for scale). Toil starts cold for every run (~4 s),
so it suits long or wide workflows, not many small runs.

With `spec.sandbox` (single machine), the whole `toil-cwl-runner` process tree runs in one bubblewrap
sandbox like cwltool's tools: the document and the input files read-only, the run's work and output folders
writable, as the labs' uid, nothing else of the host. On a cluster batch system the cluster's own isolation
applies instead. The run's log gets Toil's output; the output object is its JSON on stdout.

On a Slurm cluster (`spec.cluster`) Toil runs with `--batchSystem slurm` (engines/toil_slurm.py: its
leader here, its workers as Slurm jobs, every tool still in its sandbox); a cancel also scancels the
run's jobs.
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
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from datalabs.pipelines import placement, sandbox
from datalabs.pipelines.engines import toil_slurm
from datalabs.pipelines.engines.base import FAILED, INFRA, SUCCEEDED, Handle, PipelineEngine, Result, RunSpec
from datalabs.sandbox import fs, launch, network
from datalabs.sandbox.bwrap import NOBODY, sandbox_path

TOIL_PIDS = 1024
MAX_OUTPUT_OBJECT = 16 * 2**20


@dataclass(eq=False)
class _Proc(Handle):
    proc: subprocess.Popen
    stdout: Any  # the output object, as Toil printed it: read from our own file object, never by path
    spec: RunSpec
    prepared: launch.Prepared | None = None
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
        job.write_text(json.dumps(spec.job, ensure_ascii=False), encoding="utf-8")
        document = spec.document
        if spec.sandbox:  # the run's own copy, readable by the sandbox's uid (the store's is private)
            document = spec.workdir / "pipeline.cwl"
            shutil.copyfile(spec.document, document)
        stdout = spec.workdir / "outputs.json"
        if spec.cluster is not None:
            batch = toil_slurm.batch_options(spec, spec.cluster)
        else:
            batch = ["--batchSystem", "single_machine"]
        argv = [
            toil_cwl_runner(),
            "--no-container",
            "--relax-path-checks",
            *batch,
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
        env = {**os.environ, "PATH": sandbox_path(), "TMPDIR": str(spec.workdir)}
        prepared = None
        out = open(stdout, "w+b")  # noqa: SIM115 (kept until the run's result is read)
        if spec.cluster is not None:  # the leader here, the tools sandboxed by toil_slurm
            argv, env = toil_slurm.leader(spec, argv[1:])
        elif spec.sandbox:
            try:
                prepared = self._sandboxed(spec, argv)
            except BaseException:
                out.close()
                raise
            argv = prepared.argv
            env["HOME"] = str(spec.workdir)
        with open(spec.log, "ab") as log:
            # Its own process group, so a cancel reaches Toil's workers and the tools they started.
            proc = subprocess.Popen(argv, stdout=out, stderr=log, env=env, start_new_session=True)
        return _Proc(proc=proc, stdout=out, spec=spec, prepared=prepared)

    @staticmethod
    def _sandboxed(spec: RunSpec, argv: list[str]) -> launch.Prepared:
        """The whole toil-cwl-runner process tree in one sandbox, as the run's owner, with the network
        the document asks for (NetworkAccess anywhere in it) and the operator allows."""
        spec.outdir.mkdir(parents=True, exist_ok=True)
        policy = spec.policy
        identity = policy.identity or (NOBODY if os.geteuid() == 0 else None)
        if identity is not None:  # Toil runs as the run's owner: its folders are its own
            for top in (spec.workdir, spec.outdir):
                fs.chown_tree(top, identity.uid, identity.gid)
        readonly = input_binds(spec)
        files = spec.document.with_name(spec.document.stem + ".files")  # what the document names
        if files.is_dir():
            readonly.append((str(files), str(files)))
        box = replace(
            sandbox.tool_box(str(spec.outdir), str(spec.workdir), readonly, {}),
            command=argv,
            workdir=str(spec.workdir),
            hostname="cwl-toil",
        )
        wants_network = "NetworkAccess" in spec.document.read_text(errors="replace")
        # Toil's leader and workers are many threads: the lab limit, not the single tool's.
        policy = replace(policy, network=policy.network if wants_network else "none", pids_max=TOIL_PIDS)
        state = spec.workdir.parent / "toil-sandbox"
        try:
            return launch.prepare(f"toil-{uuid.uuid4().hex[:12]}", box, policy, state)
        except network.NetworkError as exc:
            raise RuntimeError(f"the run's sandbox could not be prepared: {exc}") from None

    def poll(self, handle: Handle) -> Result | None:
        assert isinstance(handle, _Proc)
        with handle.lock:
            if handle.result is not None:
                return handle.result
            code = handle.proc.poll()
            if code is None:
                return None
            handle.result = self._result(handle, code)
            handle.stdout.close()
            if handle.prepared is not None:
                handle.prepared.release()
            return handle.result

    def _result(self, handle: _Proc, code: int) -> Result:
        if handle.cancelled:
            return Result(FAILED, "cancelled")
        if code == 0:
            try:
                handle.stdout.seek(0)
                printed = handle.stdout.read(MAX_OUTPUT_OBJECT + 1)
                if len(printed) > MAX_OUTPUT_OBJECT:
                    return Result(FAILED, "toil-cwl-runner printed an output object larger than 16 MB")
                return Result(SUCCEEDED, outputs=json.loads(printed or b"{}"))
            except ValueError as exc:
                return Result(INFRA, f"toil-cwl-runner printed no output object: {exc}")
        if code == 33:
            return Result(FAILED, "toil-cwl-runner: unsupported requirement")
        if code < 0:  # killed by a signal we did not send: the machine, not the pipeline
            return Result(INFRA, f"toil-cwl-runner was killed by signal {-code}")
        spec = handle.spec
        if spec.cluster is not None and (why := toil_slurm.controller_failure(spec.log, spec.cluster)):
            return Result(INFRA, why)
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
        if handle.spec.cluster is not None:  # the leader is gone: its jobs would run on
            try:
                placement.cancel_jobs(handle.spec.cluster, handle.spec.run_id)
            except Exception as exc:
                with open(handle.spec.log, "a", encoding="utf-8") as log:
                    log.write(f"WARNING cancelling the run's Slurm jobs failed: {exc}\n")


def input_binds(spec: RunSpec) -> list[tuple[str, str]]:
    """Each private snapshot folder of the run's inputs whole (the files next to an input, its secondary
    files, come with it); inputs read in place (data volumes) one by one."""
    snapshots = f"{spec.workdir.parent / 'inputs'}/"
    binds = set()
    for path in host_paths(spec.job):
        if path.startswith(snapshots):
            path = snapshots + path[len(snapshots) :].split("/")[0]
        binds.add((path, path))
    return sorted(binds)


def host_paths(value: Any) -> list[str]:
    """The host paths of the job's File and Directory inputs (and their secondary files)."""
    if isinstance(value, dict):
        location = value.get("location", "") if value.get("class") in ("File", "Directory") else ""
        own = [unquote(location[len("file://") :])] if location.startswith("file://") else []
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
