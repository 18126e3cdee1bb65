"""The job script of a lab on a Slurm cluster: only validated values reach it (runtimes/slurm.py explains
the whole design). Its only variable parts are `#SBATCH` lines built from values that must match
`DIRECTIVE_VALUE` (letters, digits and `_ . , : -`, starting with a letter or digit: no whitespace,
newline, quote, `$` or option dash), checked here again although `ClusterOptions` already refuses
anything else, so a value that bypassed the settings (model_construct, a future field) still cannot
add a line or a shell word. Pipelines' Slurm placement holds its sbatch/srun options to the same form
(`directive`)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from datalabs.clusters.settings import ClusterSettings
from datalabs.runtimes.base import LabSpec, StartError

JOB_SCRIPT = """#!/bin/sh
# A Datalabs lab as a Slurm job: the sandboxed lab starts on this node (datalabs/runtimes/slurm_job.py).
{directives}
exec "$1" -m datalabs.runtimes.slurm_job "$2"
"""
DIRECTIVE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,:-]{0,199}")
LAB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
JOB_NAME, JOB_COMMENT = "datalabs-", "datalabs-platform-"  # + lab id; + the platform's tag


def directive(option: str, value: str) -> str:
    """One `#SBATCH --option=value` line; a value of any other form is refused."""
    if not DIRECTIVE_VALUE.fullmatch(value):
        raise StartError(f"refused to submit the job: {option} {value[:40]!r} is not a plain Slurm value")
    return f"#SBATCH --{option}={value}"


def render_script(spec: LabSpec, cluster: ClusterSettings, platform: str = "") -> str:
    """The job script of `spec` on `cluster`: only validated values, one `#SBATCH` line each. `platform`
    (a plain tag) goes into the job's comment: the jobs of this platform, among others on the cluster."""
    if not LAB_ID.fullmatch(spec.lab_id):
        raise StartError(f"refused to submit the job: lab id {spec.lab_id[:40]!r} is not a plain name")
    if not (0 < spec.cpu <= 10_000 and 0 < spec.memory_bytes <= 2**60 and 0 <= spec.gpu <= 1_000):
        raise StartError(
            f"refused to submit the job: resources out of range ({spec.cpu}, {spec.memory_bytes}, {spec.gpu})"
        )
    o = cluster.options
    lines = [
        directive("job-name", f"{JOB_NAME}{spec.lab_id}"),
        directive("cpus-per-task", str(max(1, math.ceil(spec.cpu)))),
        directive("mem", f"{max(1, math.ceil(spec.memory_bytes / 2**20))}M"),
    ]
    if platform:
        lines.append(directive("comment", f"{JOB_COMMENT}{platform}"))
    for option, value in (
        ("partition", o.partition),
        ("account", o.account),
        ("qos", o.qos),
        ("time", o.time_limit),
    ):
        if value:
            lines.append(directive(option, value))
    if spec.gpu:
        lines.append(
            directive("gres", ":".join(["gpu", *([o.gpu_type] if o.gpu_type else []), str(int(spec.gpu))]))
        )
    return JOB_SCRIPT.format(directives="\n".join(lines))


def plain_path(path: Path, what: str) -> str:
    text = str(path)
    if not text.startswith("/") or "%" in text or not text.isprintable():
        raise StartError(
            f"refused to submit the job: the {what} path {text[:80]!r} is not a plain absolute path"
        )
    return text
