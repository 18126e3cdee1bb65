"""Where a run's jobs go: the cluster a run is placed on, and what a Slurm cluster needs of it.

A run names a configured cluster (`[[clusters]]`, checked like a lab's: unknown and other groups'
clusters get the same `unknown_cluster`). On a `local` cluster the engines run as they always did; on a
`slurm` cluster Toil runs with `--batchSystem slurm` and cwltool submits each step as a Slurm job.

Slurm jobs run on nodes that must see the run's folders (job store, work, outputs) at the same paths:
the cluster's `options.shared_dirs` lists the folders the nodes share, and `check_shared` refuses a run
whose folders lie elsewhere before anything is submitted. Every job of a run carries the comment
`datalabs-run-<id>`, by which a cancel finds and `scancel`s them all, whichever engine submitted them.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from datalabs.accounts.principal import Principal
from datalabs.clusters import service as clusters
from datalabs.clusters.settings import ClusterSettings
from datalabs.config import Settings
from datalabs.runtimes.slurm_queue import SlurmUnavailable, run_slurm
from datalabs.runtimes.slurm_script import directive

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class NotShared(RuntimeError):
    """A folder of the run is not on storage the cluster's nodes share (nothing was submitted)."""


def cluster_for_run(settings: Settings, principal: Principal, name: str | None) -> ClusterSettings:
    """The cluster a new run goes to: `name`, or the first the principal may use (labs' rules)."""
    return clusters.for_launch(settings, principal, name)


def configured(settings: Settings, name: str) -> ClusterSettings | None:
    """The run's cluster as configured now (None: no longer configured)."""
    return next((c for c in settings.clusters if c.name == name), None)


def on_slurm(cluster: ClusterSettings | None) -> bool:
    return cluster is not None and cluster.backend == "slurm"


def check_shared(cluster: ClusterSettings, folders: dict[str, Path]) -> None:
    """Every folder (what -> path) lies below one of the cluster's `shared_dirs`, else NotShared naming
    the first that does not and the option to set."""
    shared = cluster.options.shared_dirs
    for what, path in folders.items():
        real = os.path.realpath(path)
        if not any(real == d or real.startswith(d + "/") for d in map(os.path.realpath, shared)):
            where = ", ".join(shared) if shared else "none configured"
            raise NotShared(
                f"the run's {what} {real} is not on storage shared with the nodes of cluster "
                f"'{cluster.name}' (options.shared_dirs: {where}); nothing was submitted"
            )


def job_comment(run_id: str) -> str:
    """The comment every Slurm job of the run carries (a plain name: it goes on sbatch/srun argv)."""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id[:40]!r} is not a plain name")
    return f"datalabs-run-{run_id}"


def slurm_options(cluster: ClusterSettings, gpus: int = 0) -> list[str]:
    """The cluster's partition/account/QoS/time as `--option=value` arguments (runtimes.slurm's checks);
    a job with GPUs goes to `gpu_partition` (when set) with --gres=gpu[:type]:N."""
    o = cluster.options
    partition = (o.gpu_partition or o.partition) if gpus else o.partition
    pairs = [("partition", partition), ("account", o.account), ("qos", o.qos), ("time", o.time_limit)]
    if gpus:
        pairs.append(("gres", ":".join(["gpu", *([o.gpu_type] if o.gpu_type else []), str(int(gpus))])))
    return [argument(option, value) for option, value in pairs if value]


def argument(option: str, value: str) -> str:
    """`--option=value`, with the value held to the form #SBATCH lines get (runtimes/slurm.py)."""
    return directive(option, value).removeprefix("#SBATCH ")


def slurm_env(cluster: ClusterSettings) -> dict[str, str]:
    """What Slurm's clients need to find the cluster (nothing else of the platform's environment)."""
    return {"SLURM_CONF": cluster.options.slurm_conf} if cluster.options.slurm_conf else {}


def cancel_jobs(cluster: ClusterSettings, run_id: str) -> list[str]:
    """scancel every job of the run still known to the controller; returns their ids. Raises
    SlurmUnavailable when the controller cannot be asked (the caller reports it)."""
    comment = job_comment(run_id)
    conf = cluster.options.slurm_conf
    rc, out, err = asyncio.run(run_slurm(conf, "squeue", "-h", "-t", "PD,CF,R,S,CG", "-o", "%i %k"))
    if rc != 0:
        raise SlurmUnavailable(f"squeue on cluster {cluster.name} failed: {err.strip() or rc}")
    ids = [
        p[0] for p in (line.split(None, 1) for line in out.splitlines()) if len(p) == 2 and p[1] == comment
    ]
    if ids:
        rc, _, err = asyncio.run(run_slurm(conf, "scancel", *ids))
        if rc != 0 and "already completing or completed" not in err:
            raise SlurmUnavailable(f"scancel on cluster {cluster.name} failed: {err.strip() or rc}")
    return ids
