"""The warm cwltool engine: cwltool runs as a library inside the worker process. Each pipeline version is
loaded and validated once and kept (loading is what makes a cold `cwltool` take ~0.9 s; a cached tool
runs a one-step job in milliseconds). Each run executes on its own thread; its tools run as
subprocesses inside sandboxes as the run's owner (pipelines/sandbox.py), their stdout/stderr and
cwltool's messages about the run go to the run's log.

cwltool itself runs as root here, so nothing a run's code could shape reaches it unchecked: inputs are
private snapshots (the worker's staging), JavaScript expressions are evaluated in a sandbox
(`SandboxedNode`), and a tool's output folder is confined (sandbox/fs.py `confine`: links out of it,
FIFOs, devices and hard links removed, each reported in the log) after its processes are gone and
before cwltool collects, checksums and moves the outputs — which follows links, as root.

On a Slurm cluster (`spec.cluster`) each tool's command is a Slurm job (cwltool_job.py, slurm_step.py):
the run's steps wait in Slurm's queue, not in this host's cores, memory and GPUs; a cancel `scancel`s
the run's jobs; a step Slurm refused or could not be asked for fails the run as infrastructure.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cwl_utils.sandboxjs import set_js_engine
from cwltool.context import LoadingContext, RuntimeContext
from cwltool.errors import UnsupportedRequirement, WorkflowException
from cwltool.executors import MultithreadedJobExecutor, SingleJobExecutor
from cwltool.load_tool import load_tool

from datalabs.pipelines import placement, sandbox
from datalabs.pipelines.documents import quiet_cwltool
from datalabs.pipelines.engines.base import FAILED, INFRA, SUCCEEDED, Handle, PipelineEngine, Result, RunSpec
from datalabs.pipelines.engines.cwltool_job import ConfinedFsAccess, _make_tool, _Run, _threads

CACHE_SIZE = 64  # versions whose loaded tools are kept
IDLE_PER_VERSION = 4  # loaded tools kept per version (one per run at once)
# Loaded once at start (schemas, validators, caches: ~0.5 s of the GIL), so the first run does not pay it.
# Packed, as the platform stores every version ($graph, #main): a plain document leaves part of it cold.
WARM_DOCUMENT = """{"cwlVersion": "v1.2", "$graph": [
  {"class": "CommandLineTool", "id": "#echo", "baseCommand": "echo",
   "inputs": [{"id": "#echo/text", "type": "string", "inputBinding": {}}],
   "outputs": [{"id": "#echo/out", "type": "stdout"}]},
  {"class": "Workflow", "id": "#main", "requirements": [{"class": "ScatterFeatureRequirement"}],
   "inputs": [{"id": "#main/texts", "type": {"type": "array", "items": "string"}}],
   "outputs": [{"id": "#main/outs", "type": {"type": "array", "items": "File"},
                "outputSource": "#main/s/out"}],
   "steps": [{"id": "#main/s", "run": "#echo", "scatter": "#main/s/text",
              "in": [{"id": "#main/s/text", "source": "#main/texts"}], "out": ["#main/s/out"]}]}
]}
"""
SANDBOX_OVERLAP = 3.0  # see _Executor
# Steps of one run a Slurm cluster gets at once (each is one srun and one thread here): Slurm queues
# them against the cluster's cores, memory and GPUs, not this host's.
SLURM_CORES, SLURM_RAM_MIB, SLURM_GPUS = 256.0, float(2**30), 256
JOB_REQUIREMENTS = "https://w3id.org/cwl/cwl#requirements"  # cwltool's executor adds them to the tool
_cwl_logger = logging.getLogger("cwltool")


class _SharedFile:
    """The run log handed to cwltool as the tools' default stdout/stderr. cwltool closes the file after
    each tool; this one stays open for the next step."""

    def __init__(self, f) -> None:
        self._f = f

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        pass


class _RunLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        run = _threads.get(threading.get_ident())
        if run is not None:
            with contextlib.suppress(Exception):  # logging must never break a run
                run.write(f"{record.levelname} {self.format(record)}\n")


class _OutputDirs(set):
    """The job output folders of one run, all made under `parent` (the run's tmp_outdir_prefix, which
    holds nothing else). cwltool iterates over them once per output it delivers, asking whether the output
    lies in one (os.path.commonprefix in Python, folder by folder): quadratic in a scatter's width, 1.6 s
    of the GIL for 500 jobs. Iterated, this set yields `parent` alone while every member is below it:
    the same answer in one comparison, and removing it at the end removes them all."""

    def __init__(self, parent: str) -> None:
        super().__init__()
        self.parent = parent.rstrip("/") + "/"
        self.all_below = True

    def add(self, path: str) -> None:
        self.all_below = self.all_below and path.startswith(self.parent)
        super().add(path)

    def __iter__(self):
        return iter((self.parent,)) if self.all_below and len(self) else super().__iter__()


class _Executor(MultithreadedJobExecutor):
    """cwltool's parallel executor, with the run's log routed per thread. Sandboxed jobs overlap: starting
    a tool's sandbox (bubblewrap, namespaces, cgroup) is mostly waiting on the kernel, not computing, so
    `overlap` times as many one-core jobs as the machine has cores may be starting or running at once
    (a wide scatter of small tools is bound by sandbox starts, not by the cores)."""

    def __init__(self, outdirs: str, overlap: float = 1.0) -> None:
        super().__init__()
        self.max_cores *= overlap
        self.output_dirs = _OutputDirs(outdirs)

    def _runner(self, job, runtime_context, TMPDIR_LOCK) -> None:
        run = getattr(runtime_context, "datalabs_run", None)
        if run is not None:
            _threads[threading.get_ident()] = run
        try:
            super()._runner(job, runtime_context, TMPDIR_LOCK)
        finally:
            _threads.pop(threading.get_ident(), None)


def _loading_context() -> LoadingContext:
    # Relaxed path checks: file names with spaces, '#' or other characters are the user's business;
    # tools never get them through a shell unquoted, and outputs are confined all the same.
    return LoadingContext({"construct_tool_object": _make_tool, "do_update": True, "relax_path_checks": True})


class CwltoolEngine(PipelineEngine):
    name = "cwltool"

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        quiet_cwltool()
        from cwltool.loghandler import defaultStreamHandler

        _cwl_logger.removeHandler(defaultStreamHandler)  # messages belong in the runs' logs, not stderr
        self._tools: OrderedDict[tuple[int, str], list[Any]] = OrderedDict()  # idle loaded tools
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._handler = _RunLogHandler()
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        _cwl_logger.addHandler(self._handler)
        set_js_engine(sandbox.SandboxedNode(_js_context))
        self._warm = threading.Thread(target=self._load_warm_document, name="cwl-warm", daemon=True)
        self._warm.start()

    @staticmethod
    def _load_warm_document() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="datalabs-cwl-warm-") as tmp:
                path = Path(tmp) / "warm.json"
                path.write_text(WARM_DOCUMENT)
                load_tool(str(path), _loading_context())
        except Exception:  # only a cold first run follows
            logging.getLogger(__name__).warning(
                "warming cwltool failed: the first run loads it", exc_info=True
            )

    def checkout(self, spec: RunSpec, fresh: bool = False):
        """The loaded process of a version for one run, for that run alone until `checkin`: loaded once
        (per document file) and kept between runs, but never shared by two at once (cwltool's process
        objects hold per-job state; concurrent runs of one version load one more). `fresh`: a new one,
        never kept (the job's own requirements are added to it)."""
        key = (spec.version_id, str(spec.document))
        with self._lock:
            idle = self._tools.get(key)
            if idle and not fresh:
                self._tools.move_to_end(key)
                return idle.pop()
        self._warm.join()
        return load_tool(str(spec.document), _loading_context())

    def checkin(self, spec: RunSpec, tool) -> None:
        key = (spec.version_id, str(spec.document))
        with self._lock:
            idle = self._tools.setdefault(key, [])
            if len(idle) < IDLE_PER_VERSION:
                idle.append(tool)
            self._tools.move_to_end(key)
            while len(self._tools) > self._cache_size:
                self._tools.popitem(last=False)

    def submit(self, spec: RunSpec) -> Handle:
        for d in (spec.workdir / "tmp", spec.workdir / "out", spec.log.parent):
            d.mkdir(parents=True, exist_ok=True)
        run = _Run(spec, log=open(spec.log, "ab", buffering=0))  # noqa: SIM115 (closed when the run ends)
        threading.Thread(target=self._execute, args=(run,), name=f"run-{spec.run_id}", daemon=True).start()
        return run

    def _execute(self, run: _Run) -> None:
        spec = run.spec
        _threads[threading.get_ident()] = run
        try:
            run.result = self._run(run)
        except UnsupportedRequirement as exc:
            run.write(f"ERROR unsupported requirement: {exc}\n")
            run.result = Result(FAILED, f"unsupported requirement: {exc}"[:2000])
        except WorkflowException as exc:
            run.write(f"ERROR {exc}\n")
            run.result = Result(FAILED, str(exc)[:2000])
        except Exception as exc:  # the engine itself broke: an infrastructure failure, worth a retry
            _cwl_logger.exception("cwltool engine error in run %s", spec.run_id)
            run.result = Result(INFRA, f"engine error: {type(exc).__name__}: {exc}"[:2000])
        finally:
            _threads.pop(threading.get_ident(), None)
            for proc in run.js:  # the run's Node.js processes end with it
                with contextlib.suppress(OSError):
                    proc.kill()
            run.release_shared()
            if run.cancelled and run.result is not None and run.result.state != SUCCEEDED:
                run.result = Result(FAILED, "cancelled")
            run.log.close()
            run.done.set()

    def _run(self, run: _Run) -> Result:
        spec = run.spec
        fresh = JOB_REQUIREMENTS in spec.job
        tool = self.checkout(spec, fresh)
        try:
            return self._run_tool(run, tool)
        finally:
            if not fresh:
                self.checkin(spec, tool)

    def _run_tool(self, run: _Run, tool) -> Result:
        spec = run.spec
        shared = _SharedFile(run.log)
        ctx = RuntimeContext(
            {
                "outdir": str(spec.outdir),
                "basedir": str(spec.workdir),
                "tmpdir_prefix": str(spec.workdir / "tmp") + "/",
                "tmp_outdir_prefix": str(spec.workdir / "out") + "/",
                "stagedir": str(spec.workdir / "stage"),
                "use_container": False,
                "move_outputs": "move",
                "default_stdout": shared,
                "default_stderr": shared,
                "on_error": "stop",
                # As root, cwltool reads only the run's own files, whatever File an expression makes.
                "make_fs_access": functools.partial(ConfinedFsAccess, roots=run.roots),
            }
        )
        ctx.datalabs_run = run
        overlap = SANDBOX_OVERLAP if spec.sandbox else 1.0
        executor = _Executor(ctx.tmp_outdir_prefix, overlap) if spec.parallel else SingleJobExecutor()
        if spec.cluster is not None and isinstance(executor, _Executor):
            executor.max_cores, executor.max_ram, executor.max_cuda = SLURM_CORES, SLURM_RAM_MIB, SLURM_GPUS
        outputs, status = executor(tool, spec.job, ctx, logger=_cwl_logger)
        if run.infra and not run.cancelled:
            return Result(INFRA, run.infra)
        if status == "success" and not run.cancelled:
            return Result(SUCCEEDED, outputs=outputs or {})
        if run.cancelled:
            return Result(FAILED, "cancelled")
        if status == "temporaryFail":
            return Result(INFRA, "a tool reported a temporary failure")
        return Result(FAILED, _last_error(spec.log) or f"the pipeline failed ({status})")

    def poll(self, handle: Handle) -> Result | None:
        assert isinstance(handle, _Run)
        return handle.result if handle.done.is_set() else None

    def wait(self, handle: Handle, timeout: float) -> Result | None:
        assert isinstance(handle, _Run)
        handle.done.wait(timeout)
        return self.poll(handle)

    def cancel(self, handle: Handle) -> None:
        assert isinstance(handle, _Run)
        with handle.lock:
            handle.cancelled = True
        if handle.spec.cluster is not None:
            cancel_slurm_jobs(handle)
        with handle.lock:
            for proc in list(handle.procs):
                with contextlib.suppress(OSError):
                    proc.kill()  # bwrap is the sandbox's init: killing it ends everything inside

    def close(self) -> None:
        _cwl_logger.removeHandler(self._handler)
        with self._lock:
            self._tools.clear()


def cancel_slurm_jobs(run) -> None:
    """scancel the run's jobs; a controller that cannot be asked is said in the run's log (the local
    processes are killed all the same, and Slurm ends a job whose srun is gone)."""
    try:
        ids = placement.cancel_jobs(run.spec.cluster, run.spec.run_id)
    except Exception as exc:
        run.write(f"WARNING cancelling the run's Slurm jobs failed: {exc}\n")
    else:
        if ids:
            run.write(f"INFO cancelled Slurm job(s) {', '.join(ids)}\n")


def _js_context() -> sandbox.JsContext:
    """Whose sandbox a JavaScript expression evaluated on this thread gets: its run's (or nobody's)."""
    run = _threads.get(threading.get_ident())
    if run is None:
        return None, None, None
    return run.spec.policy, run.spec.workdir, run.js.append


def _last_error(log: Path, limit: int = 600) -> str:
    """The tail of the run's log: the tool's own words about why it failed."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
