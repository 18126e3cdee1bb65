"""One CWL step on a Slurm node: `python -m datalabs.pipelines.engines.slurm_step STEP.json -- COMMAND...`.

The cwltool engine, when a run is placed on a Slurm cluster, runs each tool's command through `srun`
(`srun_argv`): srun allocates the job (the step's cores, memory, GPUs, the cluster's partition) and
runs this module on the node with the tool's stdin/stdout/stderr forwarded, so cwltool redirects and
collects exactly as it does locally. Here, on the node, the SAME sandbox the local engine builds is
prepared (pipelines/sandbox.py `tool_box`, sandbox/launch.py: bubblewrap, the run owner's uid, its
network policy, a pids cgroup), from the step file the platform wrote (root's, 0600, on shared
storage) - never from anything the command line or the job's environment says. The node's cgroup and
network namespace are made and released here, on the node, as runtimes/slurm_job.py does for labs.

Before the tool starts, the module creates the step's `started` marker: a failed srun whose marker is
missing never reached the tool (the controller refused or could not be reached), which the engine
reports as an infrastructure failure, not as the tool's. The exit status is the tool's (128+N when it
was killed by signal N, as a shell says it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from datalabs.pipelines import placement, sandbox
from datalabs.sandbox import launch
from datalabs.sandbox.policy import Policy

STEP_FAILED = 125  # the step could not start on the node (its reason is on stderr: the run's log)


def write_step(
    path: Path, *, outdir: str, tmpdir: str, readonly, network: str, policy: Policy, state: Path
) -> Path:
    """The step file for the node (0600, root's); returns the `started` marker the node will create."""
    started = state / f"{path.stem}.started"
    data = {
        "outdir": outdir,
        "tmpdir": tmpdir,
        "readonly": [list(pair) for pair in readonly],
        "network": network,
        "policy": asdict(policy),
        "state": str(state),
        "started": str(started),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return started


def srun_argv(cluster, run_id: str, step_file: Path, *, cores: float, ram_mib: float, gpus: int) -> list[str]:
    """`srun ... python -m datalabs.pipelines.engines.slurm_step STEP --`: cwltool appends the command.
    Every value is checked as runtimes/slurm.py checks #SBATCH values (a hostile one raises StartError)."""
    comment = placement.job_comment(run_id)
    return [
        "srun",
        "--quiet",
        "--ntasks=1",
        placement.argument("job-name", comment),
        placement.argument("comment", comment),
        placement.argument("cpus-per-task", str(max(1, int(-(-cores // 1))))),
        placement.argument("mem", f"{max(1, int(-(-ram_mib // 1)))}M"),
        *placement.slurm_options(cluster, gpus),
        sys.executable,
        "-m",
        "datalabs.pipelines.engines.slurm_step",
        str(step_file),
        "--",
    ]


def policy_of(data: dict[str, Any]) -> Policy:
    return replace(Policy.from_dict(data), api=None)  # tools never get the platform API


def run(step: dict[str, Any], command: list[str]) -> int:
    policy = policy_of(dict(step["policy"])).with_network(step["network"])
    box = sandbox.tool_box(step["outdir"], step["tmpdir"], [tuple(p) for p in step["readonly"]], {})
    try:
        prepared = launch.prepare(f"step-{uuid.uuid4().hex[:12]}", box, policy, Path(step["state"]))
    except Exception as exc:  # the node cannot build the sandbox: said, never run unsandboxed
        print(f"datalabs: the step's sandbox could not be prepared on this node: {exc}", file=sys.stderr)
        return STEP_FAILED
    Path(step["started"]).touch()
    # The tool's environment is cwltool's; what srun and Slurm added is not the tool's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    try:
        proc = subprocess.Popen(prepared.argv + command, env=env, cwd=step["outdir"], pass_fds=prepared.fds)
        prepared.close_fds()
        for sig in (signal.SIGTERM, signal.SIGINT):  # scancel: the sandbox's init ends everything inside
            signal.signal(sig, lambda *_: proc.kill())
        code = proc.wait()
    finally:
        prepared.release()
    return 128 + (-code & 0x7F) if code < 0 else code


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m datalabs.pipelines.engines.slurm_step STEP.json -- COMMAND...", file=sys.stderr
        )
        return 2
    try:
        step = json.loads(Path(argv[0]).read_text())
    except (OSError, ValueError) as exc:
        print(f"datalabs: cannot read the step file {argv[0]}: {exc}", file=sys.stderr)
        return STEP_FAILED
    return run(step, argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
