"""Toil on a Slurm cluster: `toil-cwl-runner --batchSystem slurm`, with the tools sandboxed as locally.

On one machine the Toil engine puts the whole `toil-cwl-runner` tree in one sandbox as the run's owner.
On Slurm that cannot be: the leader must reach the controller, and Slurm runs only jobs of users it
knows (the platform's per-user uids are not in the nodes' passwd), so the leader runs on the platform's
host and its jobs run as the platform's user, like labs' jobs (runtimes/slurm.py). What user code must
never reach as root is then kept from it here, in both kinds of Toil process:

- the leader is `python -m datalabs.pipelines.engines.toil_slurm leader RUN.json -- <toil options>`,
  and every Toil worker on a node `... worker RUN.json <worker arguments>`: Toil starts workers as
  `_toil_worker` found on PATH, and the run's PATH starts with a folder (on shared storage) whose
  `_toil_worker` is this module. Jobs get the leader's environment (Toil exports it), so the run file's
  path reaches them in DATALABS_TOIL_RUN;
- in both, each CommandLineTool's command runs in the same bubblewrap sandbox as the cwltool engine's
  tools (cwltool_job.`_SandboxedJob`: the run owner's uid, inputs read-only, only its output and temp
  folders writable, its output folder confined before it is collected), and JavaScript expressions are
  evaluated by a sandboxed Node.js (pipelines/sandbox.py), never by the root process;
- so a tool cannot write Toil's job store (pickles the root leader loads) nor anything outside its folders.

The leader's environment is built from nothing (no platform secret is exported to jobs): PATH, HOME and
TMPDIR in the run's work folder, SLURM_CONF, and the run file. Partition, QoS and the GPU partition go
through Toil's own options (--slurmPartition, --slurmQOS, --slurmGPUPartition), account, time limit and
the run's job comment (placement.job_comment: what a cancel scancels by) through --slurmArgs.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datalabs.clusters.settings import ClusterSettings
from datalabs.pipelines import placement, sandbox
from datalabs.pipelines.engines.base import RunSpec
from datalabs.sandbox.bwrap import sandbox_path

RUN_ENV = "DATALABS_TOIL_RUN"
WORKER = "_toil_worker"
STATE_POLLING_TIMEOUT = 60
# What Toil's log says when it gave up on the controller, not on the pipeline (Slurm's and Toil's words).
CONTROLLER_FAILURES = (
    "Unable to contact slurm controller",
    "Exceeded retry attempts talking to scheduler",
    "Batch job submission failed",
)


def batch_options(spec: RunSpec, cluster: ClusterSettings) -> list[str]:
    """Toil's Slurm options for the run (every value checked as #SBATCH values are)."""
    o = cluster.options
    logs = spec.workdir / "batch-logs"
    logs.mkdir(parents=True, exist_ok=True)
    extra = [placement.argument("comment", placement.job_comment(spec.run_id))]
    if o.account:
        extra.append(placement.argument("account", o.account))
    if o.time_limit and o.time_limit not in ("UNLIMITED", "INFINITE"):
        extra.append(placement.argument("time", o.time_limit))
    # One argument (=): a value starting with a dash would be read as an option of its own.
    options = [
        "--batchSystem", "slurm", "--batchLogsDir", str(logs), "--slurmArgs=" + " ".join(extra),
        # A controller that does not answer fails the run after this long (Toil's default: 20 minutes).
        "--statePollingTimeout", str(STATE_POLLING_TIMEOUT),
    ]  # fmt: skip
    for flag, value in (("--slurmPartition", o.partition), ("--slurmQOS", o.qos)):
        if value:
            options += [flag, placement.argument("x", value).removeprefix("--x=")]
    gpu = o.gpu_partition or o.partition
    if gpu:
        options += ["--slurmGPUPartition", placement.argument("x", gpu).removeprefix("--x=")]
    return options


def leader(spec: RunSpec, toil_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the run's leader: this module wrapping toil-cwl-runner, and its worker on PATH."""
    state = spec.workdir / "sandbox"
    sandbox.make_private(state)
    run_file = state / "toil-run.json"
    data = {
        "run_id": spec.run_id,
        "document": str(spec.document),
        "workdir": str(spec.workdir),
        "outdir": str(spec.outdir),
        "log": str(spec.log),
        "policy": asdict(spec.policy),
    }
    fd = os.open(run_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    bin_dir = spec.workdir / "toil-bin"
    bin_dir.mkdir(exist_ok=True)
    worker = bin_dir / WORKER
    python = shlex.quote(sys.executable)
    worker.write_text(f'#!/bin/sh\nexec {python} -m {__name__} worker "${RUN_ENV}" "$@"\n')
    worker.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{sandbox_path()}",
        "HOME": str(spec.workdir),
        "TMPDIR": str(spec.workdir),
        "LANG": "C.UTF-8",
        RUN_ENV: str(run_file),
        **placement.slurm_env(spec.cluster),
    }
    argv = [sys.executable, "-m", __name__, "leader", str(run_file), "--", *toil_args]
    return argv, env


def controller_failure(log: Path, cluster: ClusterSettings, limit: int = 64 * 1024) -> str:
    """Why a failed leader's run is the cluster's fault ("" if the log does not say so)."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - limit))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    said = next((words for words in CONTROLLER_FAILURES if words in tail), "")
    return f"Toil could not work with Slurm on cluster {cluster.name}: {said}" if said else ""


def _run_of(run_file: str):
    from datalabs.pipelines.engines.cwltool_job import _Run
    from datalabs.pipelines.engines.slurm_step import policy_of

    data: dict[str, Any] = json.loads(Path(run_file).read_text())
    spec = RunSpec(
        data["run_id"],
        0,
        Path(data["document"]),
        {},
        Path(data["workdir"]),
        Path(data["outdir"]),
        Path(data["log"]),
        sandbox=True,
        policy=policy_of(dict(data["policy"])),
    )
    return _Run(spec, log=open(spec.log, "ab", buffering=0))  # noqa: SIM115 (the process's own)


def sandbox_tools(run) -> None:
    """In this Toil process: tools' commands in `_SandboxedJob`, expressions in a sandboxed Node.js."""
    from cwl_utils.sandboxjs import set_js_engine
    from cwltool.job import CommandLineJob
    from toil.cwl import cwltoil

    from datalabs.pipelines.engines.cwltool_job import _SandboxedJob

    toil_runner = cwltoil.ToilCommandLineTool.make_job_runner

    def make_job_runner(self, runtime_context):
        job_class = toil_runner(self, runtime_context)
        if job_class is CommandLineJob:
            runtime_context.datalabs_run = run
            return _SandboxedJob
        return job_class

    cwltoil.ToilCommandLineTool.make_job_runner = make_job_runner
    set_js_engine(sandbox.SandboxedNode(lambda: (run.spec.policy, run.spec.workdir, run.js.append)))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("leader", "worker"):
        print(
            "usage: python -m datalabs.pipelines.engines.toil_slurm leader|worker RUN.json ...",
            file=sys.stderr,
        )
        return 2
    mode, run_file, rest = argv[0], argv[1], argv[2:]
    run = _run_of(run_file)
    # A worker is a Slurm job: its GPUs are the ones Slurm allocated (--gres), which cwltool's own check
    # (nvidia-smi) cannot see as such.
    run.in_slurm_job = mode == "worker" and "SLURM_JOB_ID" in os.environ
    sandbox_tools(run)
    try:
        if mode == "leader":
            from toil.cwl import cwltoil

            return cwltoil.main(rest[1:] if rest[:1] == ["--"] else rest)
        from toil import worker

        sys.argv = [WORKER, *rest]
        worker.main()
        return 0
    finally:
        for proc in run.js:
            proc.kill()
        run.release_shared()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
