"""The part of the warm cwltool engine that runs one tool: `_SandboxedJob`, a cwltool CommandLineJob whose
command runs inside bubblewrap as the run's owner (pipelines/sandbox.py), with the staged inputs bound
read-only at the paths the command names, and its output folder confined (sandbox/fs.py `confine`) before
cwltool, as root, collects it. `_Run` is the engine's record of one run, shared with `cwltool.py`.

On a Slurm cluster (`spec.cluster`) the command runs through `srun` instead, and the node builds the same
sandbox (engines/slurm_step.py); staging, confinement and collection stay here, on shared storage.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import cwltool.job
from cwltool.command_line_tool import CommandLineTool, ExpressionTool
from cwltool.context import RuntimeContext
from cwltool.errors import WorkflowException
from cwltool.job import CommandLineJob
from cwltool.stdfsaccess import StdFsAccess
from cwltool.utils import processes_to_kill
from cwltool.workflow import Workflow, default_make_tool
from schema_salad.ref_resolver import uri_file_path

from datalabs.pipelines import placement, sandbox
from datalabs.pipelines.engines import slurm_step
from datalabs.pipelines.engines.base import Handle, Result, RunSpec
from datalabs.runtimes.base import StartError
from datalabs.sandbox import cgroups, fs, launch
from datalabs.sandbox import network as network_mod
from datalabs.sandbox.bwrap import NOBODY, become_path, sandbox_path


@dataclass(eq=False)
class _Run(Handle):
    spec: RunSpec
    log: Any = None  # the log file (binary, append)
    procs: set = field(default_factory=set)
    js: list = field(default_factory=list)  # the run's Node.js processes (SandboxedNode)
    cancelled: bool = False
    infra: str = ""  # why the cluster, not the pipeline, failed a step (Slurm refused or unreachable)
    in_slurm_job: bool = False  # this process is a Slurm job (Toil's worker): Slurm allocated its GPUs
    result: Result | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # One pids cgroup for all the run's tools (sandbox.tool_pids_max processes between them): made at the
    # first tool, removed when the run ends. Not one per tool: each made and removed costs the kernel
    # ~5 ms of CPU in its workers (offlining, freeing), seconds for a 500-way scatter. Each tool's own
    # processes all end with it all the same (its pid namespace).
    cgroup: cgroups.LabCgroup | None = None
    # Likewise one network namespace with only a loopback for the run's tools without network access.
    netns: str | None = None
    netns_name: str = ""

    @functools.cached_property
    def roots(self) -> tuple[str, ...]:
        return run_roots(self.spec)

    def tool_cgroup(self) -> cgroups.LabCgroup | None:
        pids = self.spec.policy.pids_max
        with self.lock:
            if self.cgroup is None and pids is not None and cgroups.available()[0]:
                self.cgroup = cgroups.LabCgroup.create(
                    f"run-{self.spec.run_id}-{uuid.uuid4().hex[:6]}", pids=pids
                )
            return self.cgroup

    def tool_netns(self) -> str | None:
        """The run's shared namespace, made at the first tool (None where it cannot be: each tool's
        sandbox then makes its own)."""
        with self.lock:
            if self.netns is None and not self.netns_name and os.geteuid() == 0 and become_path():
                self.netns_name = f"run-{self.spec.run_id}-{uuid.uuid4().hex[:6]}"
                try:
                    self.netns = network_mod.create_isolated(self.netns_name)
                except (network_mod.NetworkError, OSError) as exc:
                    self.write(f"INFO each tool gets a network namespace of its own: {exc}\n")
            return self.netns

    def release_shared(self) -> None:
        """End what the run's tools shared: kill what is left in their cgroup and remove it, and remove
        their network namespace."""
        with self.lock:
            cgroup, self.cgroup = self.cgroup, None
            netns, self.netns = self.netns, None
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.remove()
        if netns is not None:
            network_mod.remove(self.netns_name)

    def write(self, text: str) -> None:
        if self.log is not None and not self.log.closed:
            self.log.write(text.encode(errors="replace"))
            self.log.flush()


# Log records of cwltool go to the run whose thread (or whose cwltool job thread) wrote them.
_threads: dict[int, _Run] = {}

# cwltool checks a CUDARequirement against this host's GPUs (nvidia-smi) before a job starts; a step
# placed on Slurm gets its GPUs from Slurm on the node (--gres), so on its thread the check is Slurm's.
_placed_on_slurm = threading.local()
_host_cuda_check = cwltool.job.cuda_check


def _cuda_check(requirement, count: int) -> int:
    return count if getattr(_placed_on_slurm, "active", False) else _host_cuda_check(requirement, count)


cwltool.job.cuda_check = _cuda_check
# What Slurm sets in a job with GPUs for the programs that use them (srun's steps pass it on likewise).
SLURM_GPU_ENV = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES")


class _SandboxedJob(CommandLineJob):
    """CommandLineJob whose command runs inside bubblewrap, and that the engine can kill."""

    def run(self, runtimeContext: RuntimeContext, tmpdir_lock=None) -> None:
        run: _Run | None = getattr(runtimeContext, "datalabs_run", None)
        if run is not None and run.cancelled:
            raise WorkflowException("the run was cancelled")
        if not self.spec_sandbox(run):
            return super().run(runtimeContext, tmpdir_lock)
        slurm = run.spec.cluster
        os.makedirs(self.tmpdir, exist_ok=True)
        self._setup(runtimeContext)
        refuse_foreign_entries((self.pathmapper, self.generatemapper), run.roots)
        from cwltool.job import relink_initialworkdir, stage_files

        stage_files(
            self.pathmapper, ignore_writable=True, symlink=True, secret_store=runtimeContext.secret_store
        )
        if self.generatemapper is not None:
            stage_files(self.generatemapper, ignore_writable=self.inplace_update, symlink=True)
            relink_initialworkdir(self.generatemapper, self.outdir, self.builder.outdir, self.inplace_update)
        policy = run.spec.policy
        identity = policy.identity or (NOBODY if os.geteuid() == 0 else None)
        if identity is not None:  # the tool runs as the run's owner: its folders (and staged files) are its
            for d in (self.outdir, self.tmpdir):
                fs.chown_tree(d, identity.uid, identity.gid)
        # Inputs appear at their staged paths, bound read-only from the real files: the tool sees them and
        # nothing else of the host.
        readonly = staged_binds(self.pathmapper, self.outdir)
        if self.generatemapper is not None:
            readonly += linked_inputs(self.generatemapper, self.pathmapper, self.outdir, run.spec)
        network = policy.network if self.networkaccess else "none"
        # One root-only folder of generated files (passwd, group, seccomp program) for all the run's tools:
        # they are the same for each, written once (bwrap._state_file), removed with the run's folder.
        state = Path(run.spec.workdir) / "sandbox"
        allowed = fs.Allowed.of(src for src, _ in readonly)
        if slurm is not None:
            return self._run_on_slurm(run, runtimeContext, readonly, network, state, allowed)
        box = sandbox.tool_box(self.outdir, self.tmpdir, readonly, {})
        if policy.api is not None:  # the platform's API on the tool's loopback (pipelines/tracking.py)
            box = replace(box, launcher=True)
        try:
            prepared = launch.prepare(
                f"tool-{uuid.uuid4().hex[:12]}",
                box,
                policy.with_network(network),
                state,
                shared_cgroup=run.tool_cgroup(),
                # A shared namespace has one loopback: each tool's API forwarder needs its own.
                shared_netns=run.tool_netns() if network == "none" and policy.api is None else None,
            )
        except (network_mod.NetworkError, OSError) as exc:
            raise WorkflowException(f"the tool's sandbox could not be prepared: {exc}") from None
        # Checked with the run's inputs as the only way out of the output folder, once the tool's processes
        # are all gone (its sandbox's pid namespace ends with it) and before cwltool, as root, reads it.
        collect = self.collect_outputs

        def confined_collect(outdir, rcode):
            fs.confine(outdir, allowed, lambda why: run.write(f"WARNING {why}\n"))
            return collect(outdir, rcode)

        self.collect_outputs = confined_collect
        try:
            self._execute(prepared.argv, self.environment, runtimeContext, lambda proc: _watch(run, proc))
        finally:
            prepared.release()

    def _run_on_slurm(self, run: _Run, runtimeContext, readonly, network: str, state: Path, allowed) -> None:
        """The tool's command as a Slurm job (srun): the node builds the sandbox from a step file."""
        sandbox.make_private(state)
        step_file = state / f"step-{uuid.uuid4().hex[:12]}.json"
        policy = run.spec.policy
        started = slurm_step.write_step(
            step_file, outdir=self.outdir, tmpdir=self.tmpdir, readonly=readonly, network=network,
            policy=policy, state=state,
        )  # fmt: skip
        resources = self.builder.resources
        srun = shutil.which("srun")
        try:
            if srun is None:
                raise StartError("srun is not installed on the platform's host")
            runtime = slurm_step.srun_argv(
                run.spec.cluster,
                run.spec.run_id,
                step_file,
                cores=float(resources.get("cores", 1)),
                ram_mib=float(resources.get("ram", 256)),
                gpus=int(resources.get("cudaDeviceCount", 0) or 0),
            )
        except (StartError, ValueError) as exc:
            run.infra = f"step {self.name} was not submitted to Slurm: {exc}"
            raise WorkflowException(run.infra) from None
        runtime[0] = srun
        collect = self.collect_outputs

        def confined_collect(outdir, rcode):
            if rcode != 0 and not started.exists():  # srun failed before the tool started: Slurm's doing
                run.infra = (
                    f"Slurm did not run step {self.name} on cluster {run.spec.cluster.name} "
                    f"(srun exited with {rcode}; its message is in the run's log)"
                )
                raise WorkflowException(run.infra)
            fs.confine(outdir, allowed, lambda why: run.write(f"WARNING {why}\n"))
            return collect(outdir, rcode)

        self.collect_outputs = confined_collect
        env = {**self.environment, **placement.slurm_env(run.spec.cluster)}
        try:
            self._execute(runtime, env, runtimeContext, lambda proc: _watch(run, proc))
        finally:
            step_file.unlink(missing_ok=True)
            started.unlink(missing_ok=True)

    def _setup(self, runtimeContext: RuntimeContext) -> None:
        run: _Run | None = getattr(runtimeContext, "datalabs_run", None)
        _placed_on_slurm.active = run is not None and (run.spec.cluster is not None or run.in_slurm_job)
        try:
            super()._setup(runtimeContext)
        finally:
            _placed_on_slurm.active = False

    def prepare_environment(self, runtimeContext: RuntimeContext, envVarReq) -> None:
        super().prepare_environment(runtimeContext, envVarReq)
        run: _Run | None = getattr(runtimeContext, "datalabs_run", None)
        if run is not None and run.in_slurm_job:  # the GPUs Slurm gave this job, as Slurm names them
            self.environment.update({k: os.environ[k] for k in SLURM_GPU_ENV if k in os.environ})
        if run is not None:
            self.environment.update(run.spec.environment)  # MLflow tracking (pipelines/tracking.py)

    def _required_env(self) -> dict[str, str]:
        # The platform's environment first on PATH (python3 with astropy, hatanaka, ...), as in labs.
        return {**super()._required_env(), "PATH": sandbox_path()}

    @staticmethod
    def spec_sandbox(run: _Run | None) -> bool:
        # On Slurm always: the node builds the sandbox (and says so if it cannot).
        return run is not None and (run.spec.sandbox or run.spec.cluster is not None)


def _watch(run: _Run | None, proc) -> None:
    if run is not None:
        with run.lock:
            run.procs.add(proc)
            if run.cancelled:
                proc.kill()
    try:
        proc.wait()
    finally:
        if run is not None:
            with run.lock:
                run.procs.discard(proc)
        with contextlib.suppress(ValueError):
            processes_to_kill.remove(proc)  # cwltool keeps every process it started; a warm worker must not


class _ReusableInputs:
    """A loaded process the warm engine reuses across runs (and runs at once). cwltool binds each job's
    inputs against `inputs_record_schema` and, for `Any` inputs, rewrites that schema in place to the
    value's type (builder.bind_input): after a job with a File, the next job's record or array failed.
    Once built, every reader gets its own copy."""

    _built = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._built = True

    @property
    def inputs_record_schema(self):
        return copy.deepcopy(self._inputs_record_schema) if self._built else self._inputs_record_schema

    @inputs_record_schema.setter
    def inputs_record_schema(self, value) -> None:
        self._inputs_record_schema = value


class _Tool(_ReusableInputs, CommandLineTool):
    def make_job_runner(self, runtimeContext: RuntimeContext):
        base = super().make_job_runner(runtimeContext)
        return _SandboxedJob if base is CommandLineJob else base


class _ExpressionTool(_ReusableInputs, ExpressionTool):
    pass


class _Workflow(_ReusableInputs, Workflow):
    """A workflow's own inputs are bound the same way: after a run with a record for an `Any` input, the
    next run's array failed to bind (conformance: workflow_any_input_with_mixed_array_provided)."""


def _make_tool(toolpath_object, loadingContext):
    if toolpath_object.get("class") == "CommandLineTool":
        return _Tool(toolpath_object, loadingContext)
    if toolpath_object.get("class") == "ExpressionTool":
        return _ExpressionTool(toolpath_object, loadingContext)
    if toolpath_object.get("class") == "Workflow":
        return _Workflow(toolpath_object, loadingContext)
    return default_make_tool(toolpath_object, loadingContext)


def staged_binds(pathmapper, outdir: str) -> list[tuple[str, str]]:
    """(host path, path the tool sees) of every staged input outside the output folder: files and folders
    at their real paths, literals (files made from `contents`, folders from a `listing`) where cwltool
    made them in the run's staging folder. Files cwltool made read-only for root are made readable to the
    run's owner (they hold what the job gave)."""
    binds = []
    for _, ent in pathmapper.items_exclude_children():
        if not ent.staged or ent.target.startswith(outdir.rstrip("/") + "/"):
            continue
        if ent.type in ("File", "Directory") and not ent.resolved.startswith("_:"):
            binds.append((ent.resolved, ent.target))
        elif ent.type in (
            "Directory",
            "CreateFile",
            "CreateWritableFile",
            "WritableFile",
            "WritableDirectory",
        ):
            with contextlib.suppress(OSError):
                _readable(Path(ent.target))
            binds.append((ent.target, ent.target))
    return binds


def run_roots(spec: RunSpec) -> tuple[str, ...]:
    """The host folders a run may make cwltool (root) read or stage from: its own attempt folder (inputs
    snapshots, work, outputs), its version's document and data files, and the job's files and folders in
    place (data volumes, read where they are) with the folders holding them (their secondary files)."""
    roots = {
        str(Path(spec.workdir).parent),
        str(spec.document),
        str(spec.document.with_name(spec.document.stem + ".files")),
    }
    stack: list[Any] = [spec.job]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            location = value.get("location") or value.get("path")
            if value.get("class") in ("File", "Directory") and isinstance(location, str):
                path = location[7:] if location.startswith("file://") else location
                path = unquote(path)
                roots.add(path if value["class"] == "Directory" else os.path.dirname(path))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return tuple(sorted({os.path.realpath(r) for r in roots if r.startswith("/")}))


def within(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


class ConfinedFsAccess(StdFsAccess):
    """cwltool's file access for one run, refusing to open, list or measure what lies outside the run's
    folders, and answering as if it did not exist: cwltool runs as root, and expressions and output globs
    name any path (`loadContents` and checksums read it; `exists`, `size` and `glob` would tell whether
    another user's file is there and how big it is)."""

    def __init__(self, basedir: str, roots: tuple[str, ...]) -> None:
        super().__init__(basedir)
        self.roots = roots

    def _checked(self, fn: str) -> str:
        path = self._abs(fn)
        if not within(path, self.roots):
            raise WorkflowException(f"'{fn}' is not one of the run's files: not read")
        return path

    def open(self, fn: str, mode: str):
        return open(self._checked(fn), mode)  # noqa: SIM115 (cwltool closes it)

    def listdir(self, fn: str) -> list[str]:
        self._checked(fn)
        return super().listdir(fn)

    def size(self, fn: str) -> int:
        return os.stat(self._checked(fn)).st_size

    def exists(self, fn: str) -> bool:
        return within(self._abs(fn), self.roots) and super().exists(fn)

    def isfile(self, fn: str) -> bool:
        return within(self._abs(fn), self.roots) and super().isfile(fn)

    def isdir(self, fn: str) -> bool:
        return within(self._abs(fn), self.roots) and super().isdir(fn)

    def glob(self, pattern: str) -> list[str]:
        return [uri for uri in super().glob(pattern) if within(uri_file_path(uri), self.roots)]


def refuse_foreign_entries(mappers, roots: tuple[str, ...]) -> None:
    """Before cwltool (root) stages the job (copies writable entries, links the rest, which the sandbox
    then binds): every file or folder it names must be one of the run's (an expression can name any)."""
    for mapper in mappers:
        if mapper is None:
            continue
        for _, ent in mapper.items_exclude_children():
            if ent.type not in ("File", "Directory", "WritableFile", "WritableDirectory"):
                continue
            if (
                ent.resolved.startswith("_:")
                or "://" in ent.resolved
                and not ent.resolved.startswith("file:")
            ):
                continue
            if not within(ent.resolved, roots):
                raise WorkflowException(
                    f"the tool names '{ent.resolved}', which is not one of the run's inputs or files: refused"
                )


def linked_inputs(generatemapper, pathmapper, outdir: str, spec: RunSpec) -> list[tuple[str, str]]:
    """(host path, same path) of the inputs InitialWorkDirRequirement put in the output folder as links
    (`entry: $(inputs.f)`, renamed or not): bound at their own paths so the links resolve inside the
    sandbox, and so allowed as link targets when the folder is confined. Only what the tool is given
    anyway qualifies (one of the job's files or folders, or below one, or the version's data files); any
    other target stays unbound: its link dangles and is removed at confinement."""
    prefix = outdir.rstrip("/") + "/"
    given = [
        os.path.normpath(ent.resolved)
        for _, ent in pathmapper.items_exclude_children()
        if ent.type in ("File", "Directory") and not ent.resolved.startswith("_:")
    ]
    given.append(str(spec.document.with_name(spec.document.stem + ".files")))
    links = []
    for _, ent in generatemapper.items_exclude_children():
        if not ent.staged or ent.type not in ("File", "Directory") or not ent.target.startswith(prefix):
            continue
        source = os.path.normpath(ent.resolved)
        if any(source == g or source.startswith(g + "/") for g in given) and Path(source).exists():
            links.append((source, source))
    return links


def _readable(path: Path) -> None:
    """Made by cwltool as root in the run's own staging folder: nothing a run shaped; read by the tool."""
    if path.is_symlink():
        return
    if path.is_dir():
        for top, _, names in os.walk(path):
            os.chmod(top, 0o755)
            for name in names:
                inner = Path(top) / name
                if not inner.is_symlink():
                    os.chmod(inner, 0o644)
        return
    os.chmod(path, 0o644)
